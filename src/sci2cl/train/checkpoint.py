"""Resumable checkpoints: weights, optimiser, every RNG and the position inside an epoch,
as tensors and plain values that load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from sci2cl.errors import InputError, one_line
from sci2cl.io import staged_outputs

FORMAT = "sci2cl-checkpoint/3"


@dataclass
class TrainingState:
    """Progress of a run: finished epochs, early stopping, history, the moving average of the
    weights, and where the current epoch stands (batches done, the shuffling RNG at its start,
    partial loss sums)."""

    epoch: int = 0
    best_loss: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    best_moc: float = float("inf")
    released_epoch: int = 0  # epoch after which MOC/MOM stopped updating the encoders
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict] = field(default_factory=list)
    batches_done: int = 0
    epoch_rng: dict | None = None
    sums: dict[str, list[float]] = field(default_factory=dict)  # term: [sum, cells]
    average: list[torch.Tensor] | None = None  # moving average (TrainConfig.ema_decay)


def save_checkpoint(
    path: Path, module, optimiser, scaler, rng: np.random.Generator, state: TrainingState
) -> None:
    """Write atomically (temporary name, then rename): a kill never leaves half a file."""
    # every random state training draws from: numpy (shuffling), torch CPU, each CUDA device
    rng_states = {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng_states["cuda"] = torch.cuda.get_rng_state_all()
    payload = {
        "format": FORMAT,
        "module": module.state_dict(),
        "optimiser": optimiser.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_states,
        "state": asdict(state),
    }
    with staged_outputs({"checkpoint": path}) as temp:
        torch.save(payload, temp["checkpoint"])


def load_checkpoint(
    path: Path, module, optimiser, scaler, rng: np.random.Generator
) -> TrainingState:
    """Restore everything ``save_checkpoint`` wrote; a file that is not a checkpoint of this
    model is an :class:`InputError`."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        raise InputError(path, f"not a readable checkpoint ({type(err).__name__})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "not a checkpoint of this sci2cl version; start without --resume")
    try:
        module.load_state_dict(payload["module"])
        optimiser.load_state_dict(payload["optimiser"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise InputError(path, f"checkpoint does not match this model ({one_line(err)})") from err
    if payload["scaler"]:  # empty when mixed precision was off
        scaler.load_state_dict(payload["scaler"])
    rng.bit_generator.state = payload["rng"]["numpy"]
    torch.set_rng_state(payload["rng"]["torch"])
    cuda = payload["rng"].get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return TrainingState(**payload["state"])
