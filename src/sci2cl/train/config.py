"""Training hyperparameters."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sci2cl.knobs import check_bounds, knob


@dataclass(frozen=True)
class TrainConfig:
    """How to train; ``max_epochs`` caps warm-up plus joint epochs."""

    max_epochs: int = knob(100, "Cap on total epochs (warm-up + joint).", 1)
    warmup_epochs: int = knob(10, "Reconstruction-only epochs before all losses.", 0)
    batch_size: int = knob(256, "Cells per mini-batch.", 2)
    lr: float = knob(1e-3, "AdamW learning rate.", 0, min_open=True)
    weight_decay: float = knob(1e-5, "AdamW weight decay.", 0)
    ema_decay: float = knob(
        0.99,
        "Decay of the moving average of the weights that is validated and kept (0: off).",
        0,
        1,
        max_open=True,
    )
    patience: int = knob(10, "Early stopping: epochs without validation improvement.", 1)
    min_delta: float = 1e-3
    validation_fraction: float = knob(
        0.1, "Held-out cells (early stopping).", 0, 0.5, max_open=True
    )
    seed: int = knob(0, "Random seed (weights, batches, masks, split).")
    device: str = knob("auto", "auto, cpu, cuda or cuda:N.")
    precision: str = knob(
        "auto", "auto: bf16 on CUDA, 32 on CPU.", choices=("auto", "32", "bf16", "16")
    )
    release_encoders: bool = knob(
        True, "Once held-out MOC stops improving, MOC/MOM no longer update the encoders."
    )
    fusion_check: bool = knob(True, "Keep the cross-attention residual only if MOM generalises.")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")

    @property
    def effective_warmup(self) -> int:
        """Warm-up epochs, shortened to half the budget when ``max_epochs`` is small."""
        return min(self.warmup_epochs, self.max_epochs // 2)

    def to_dict(self) -> dict:
        return asdict(self)
