"""Small builders shared by the model / CLI tests."""

from __future__ import annotations

from sci2cl.model import ModelConfig
from sci2cl.train import TrainConfig

SMALL_MODEL = ModelConfig(
    latent_dim=8,
    hidden_dims=(32, 16),
    n_views=2,
    n_heads=2,
    n_tokens=2,
    decoder_features_per_step=512,
)
SMALL_TRAIN = TrainConfig(max_epochs=3, warmup_epochs=1, batch_size=128, patience=5)
SMALL_CLI_ARGS = [
    "--latent-dim",
    "8",
    "--hidden-dims",
    "32,16",
    "--n-views",
    "2",
    "--n-heads",
    "2",
    "--n-tokens",
    "2",
    "--max-epochs",
    "3",
    "--warmup-epochs",
    "1",
    "--batch-size",
    "128",
    "--threads",
    "1",
]
