"""Training loop: optimiser, device, precision, warm-up, early stopping, checkpoints."""

from sci2cl.train.config import TrainConfig
from sci2cl.train.trainer import FitResult, Trainer

__all__ = ["FitResult", "TrainConfig", "Trainer"]
