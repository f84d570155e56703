"""Model hyperparameters (serialised into every saved model)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sci2cl.knobs import check_bounds, knob


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of scI2CL; defaults are chosen for robustness across datasets."""

    latent_dim: int = knob(64, "Latent size per modality.", 2)
    hidden_dims: tuple[int, ...] = knob((256, 128), "Encoder hidden sizes (decoder mirrors).", 1)
    dropout: float = knob(0.2, "Dropout rate of the hidden layers.", 0, 0.9)
    n_views: int = knob(0, "Masked views per cell for intra-omics attention (0: off).", 0)
    mask_rate: float = knob(0.3, "Fraction of each cell's measured features masked.", 0, 0.95)
    n_heads: int = knob(4, "Attention heads (must divide --latent-dim).", 1)
    n_tokens: int = knob(4, "Tokens per modality latent for cross-attention.", 1)
    temperature: float = knob(0.2, "InfoNCE temperature of the MOC loss.", 0.001)
    decoder_features_per_step: int = knob(4096, "ZINB loss features per step (random subset).", 16)
    lambda_rec: float = knob(1.0, "Weight of the ZINB reconstruction losses (lambda1).", 0)
    lambda_mse: float = knob(0.1, "Weight of the masked-view consistency MSE (lambda2).", 0)
    lambda_moc: float = knob(1.0, "Weight of the contrastive MOC loss (lambda3).", 0)
    lambda_mom: float = knob(0.1, "Weight of the matching MOM loss (lambda4).", 0)
    inter_gradient: str = knob(
        "atac",
        "Encoders that MOC/MOM update.",
        choices=("both", "rna", "atac", "none"),
    )
    use_cross_attention: bool = knob(
        True, "Fuse by cross-attention (else: no MOM).", flag="cross-attention"
    )
    joint_half_counts: float = knob(50.0, "Counts giving a modality half weight in the joint.", 0)
    # Principal components of each modality's decoded expression that place a cell in the
    # joint (set after training; 0: the latents themselves, as in model files saved before).
    joint_components: int = 50
    # Several samples: n_samples is set from the data; the decoders are conditioned on the
    # sample (batch_covariate) and MOC/MOM negatives come from any cell of the batch or only
    # from cells of the same sample (negatives).
    n_samples: int = 1
    batch_covariate: bool = knob(True, "Several samples: decoders conditioned on the sample.")
    negatives: str = knob(
        "any", "Several samples: source of MOC/MOM negatives.", choices=("any", "within_sample")
    )

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.latent_dim % self.n_heads:
            raise ValueError(
                f"latent_dim ({self.latent_dim}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.joint_components < 0:
            raise ValueError(f"joint_components must be >= 0, got {self.joint_components}")
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {self.n_samples}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        values = dict(values)
        for gone in ("modalities", "use_views"):  # written by format /1 and /2 model files
            values.pop(gone, None)
        values.setdefault("joint_components", 0)  # saved before the expression space
        if "hidden_dims" in values:
            values["hidden_dims"] = tuple(values["hidden_dims"])
        return cls(**values)
