"""scI2CL torch modules: they compute tensors and a loss dict; the trainer does the rest."""

from sci2cl.model.config import ModelConfig
from sci2cl.model.scicl import Sci2clModule

__all__ = ["ModelConfig", "Sci2clModule"]
