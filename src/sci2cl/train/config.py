"""Training hyperparameters."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TrainConfig:
    """How to train; ``max_epochs`` caps warm-up plus joint epochs."""

    max_epochs: int = 100
    warmup_epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    patience: int = 10
    min_delta: float = 1e-3
    validation_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    fusion_check: bool = True  # keep the cross-attention residual only if MOM generalises

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")
        if not 0.0 <= self.validation_fraction < 0.5:
            raise ValueError("validation_fraction must be in [0, 0.5)")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in ("auto", "32", "bf16", "16"):
            raise ValueError(f"precision must be auto, 32, bf16 or 16, got {self.precision!r}")

    @property
    def effective_warmup(self) -> int:
        """Warm-up epochs, shortened to half the budget when ``max_epochs`` is small."""
        return min(self.warmup_epochs, self.max_epochs // 2)

    def to_dict(self) -> dict:
        return asdict(self)
