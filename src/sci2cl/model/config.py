"""Model hyperparameters (serialised into every saved model)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of scI2CL; defaults are chosen for robustness across datasets."""

    latent_dim: int = 64
    hidden_dims: tuple[int, ...] = (256, 128)
    dropout: float = 0.2
    n_views: int = 4
    mask_rate: float = 0.3
    n_heads: int = 4
    n_tokens: int = 4
    temperature: float = 0.2
    decoder_features_per_step: int = 4096
    lambda_rec: float = 1.0
    lambda_mse: float = 0.1
    lambda_moc: float = 1.0
    lambda_mom: float = 0.1
    inter_gradient: str = "atac"
    use_views: bool = True
    use_cross_attention: bool = True
    joint_half_counts: float = 200.0
    learn_reliability: bool = False
    modalities: tuple[str, ...] = field(default=("rna", "atac"))
    # Several samples: n_samples is set from the data; the decoders are conditioned on the
    # sample (batch_covariate) and MOC/MOM negatives come from any cell of the batch or only
    # from cells of the same sample (negatives).
    n_samples: int = 1
    batch_covariate: bool = True
    negatives: str = "any"

    def __post_init__(self) -> None:
        if self.latent_dim % self.n_heads:
            raise ValueError(
                f"latent_dim ({self.latent_dim}) must be divisible by n_heads ({self.n_heads})"
            )
        if not 0.0 <= self.mask_rate < 1.0:
            raise ValueError(f"mask_rate must be in [0, 1), got {self.mask_rate}")
        if self.inter_gradient not in ("both", "rna", "atac", "none", "reliability", "atac_depth"):
            raise ValueError(
                f"inter_gradient must be both, rna, atac or none: {self.inter_gradient}"
            )
        if self.negatives not in ("any", "within_sample"):
            raise ValueError(f"negatives must be any or within_sample, got {self.negatives!r}")
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {self.n_samples}")
        if self.joint_half_counts < 0:
            raise ValueError(f"joint_half_counts must be >= 0, got {self.joint_half_counts}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        values = dict(values)
        for key in ("hidden_dims", "modalities"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)
