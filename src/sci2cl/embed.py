"""Trained-model bundle and batch-independent inference."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sci2cl import __version__
from sci2cl.data import MODALITIES, InputTransform, MultiomeDataset
from sci2cl.errors import InputError, one_line
from sci2cl.io.write import json_value
from sci2cl.loader import BatchLoader
from sci2cl.model import ModelConfig, Sci2clModule
from sci2cl.train.device import resolve_device

FORMAT = "sci2cl-model/3"
# /1 and /2 were pickled dicts holding numpy arrays. /1 models predate the fusion check: no
# residual gate was saved and the residual was always on.
LEGACY = ("sci2cl-model/1", "sci2cl-model/2")
UPGRADES = {"sci2cl-model/1": {"fusion.cross.residual_gate": 1.0}}
# what reading a legacy file's numpy arrays takes (no code runs: weights_only stays on)
_multiarray = (np._core if hasattr(np, "_core") else np.core).multiarray
LEGACY_GLOBALS = [
    np.ndarray,
    np.dtype,
    *(getattr(np.dtypes, name) for name in np.dtypes.__all__),
    *(getattr(_multiarray, f) for f in ("_reconstruct", "scalar")),
    *((getattr(_multiarray, f), f"numpy.core.multiarray.{f}") for f in ("_reconstruct", "scalar")),
]


@dataclass
class TrainedModel:
    """Weights + everything needed to map new cells of the same features into the space."""

    module: Sci2clModule
    features: dict[str, list[str]]
    transforms: dict[str, InputTransform]
    train_params: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)  # sample categories (covariate codes)

    def to_payload(self) -> dict:
        """CPU tensors and one JSON string: reads back with ``torch.load(weights_only=True)``."""
        config = {
            "sci2cl_version": __version__,
            "model_config": self.module.config.to_dict(),
            "n_features": self.module.n_features,
            "features": self.features,
            "transforms": {m: {"target_sum": t.target_sum} for m, t in self.transforms.items()},
            "train_params": self.train_params,
            "history": self.history,
            "samples": self.samples,
        }
        return {
            "format": FORMAT,
            "config": json.dumps(config, default=json_value),
            "state_dict": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
            "scales": {m: torch.from_numpy(t.scale.copy()) for m, t in self.transforms.items()},
        }

    @classmethod
    def from_payload(cls, payload: dict) -> TrainedModel:
        version = payload.get("format") if isinstance(payload, dict) else None
        if version == FORMAT:
            meta = json.loads(payload["config"])
            scales = {m: s.numpy() for m, s in payload["scales"].items()}
        elif version in LEGACY:
            meta = payload
            scales = {m: t["scale"] for m, t in payload["transforms"].items()}
        else:
            raise ValueError(f"not a sci2cl model (format {version!r})")
        state = dict(payload["state_dict"])
        for key, value in UPGRADES.get(version, {}).items():
            state.setdefault(key, torch.tensor(value))
        module = Sci2clModule(meta["n_features"], ModelConfig.from_dict(meta["model_config"]))
        module.load_state_dict(state)
        module.eval()
        transforms = {
            m: InputTransform(float(t["target_sum"]), np.asarray(scales[m], np.float32))
            for m, t in meta["transforms"].items()
        }
        return cls(
            module,
            meta["features"],
            transforms,
            meta["train_params"],
            meta["history"],
            list(meta.get("samples", [])),
        )

    def dataset(self, counts) -> MultiomeDataset:
        return MultiomeDataset(counts, self.transforms)

    def save(self, path: str | Path) -> None:
        torch.save(self.to_payload(), path)

    @classmethod
    def load(cls, path: str | Path) -> TrainedModel:
        """Read a model file with ``weights_only=True`` (legacy /1 and /2 files too);
        anything else is an :class:`InputError` naming the file."""
        try:
            with torch.serialization.safe_globals(LEGACY_GLOBALS):
                payload = torch.load(path, map_location="cpu", weights_only=True)
            return cls.from_payload(payload)
        except FileNotFoundError:
            raise InputError(path, "no such file") from None
        except OSError as err:
            raise InputError(path, f"cannot read ({err.strerror or err})") from err
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError) as err:
            raise InputError(path, f"not a readable sci2cl model ({one_line(err)})") from err


@torch.no_grad()
def embed(
    module: Sci2clModule, data: MultiomeDataset, batch_size: int = 1024, device: str = "auto"
) -> dict[str, np.ndarray]:
    """Joint and per-modality embeddings of every cell, in dataset order.

    The module is put in eval mode; no operation mixes cells, so the result does not depend on
    ``batch_size`` or on which cells share a batch.
    """
    target = resolve_device(device)
    module.eval().to(target)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("joint", *MODALITIES)}
    for batch in BatchLoader(data, target, batch_size)(np.arange(data.n_cells)):
        out = module.encode(batch)
        for key in parts:
            parts[key].append(out[key].float().cpu().numpy())
    return {k: np.concatenate(v).astype(np.float32) for k, v in parts.items()}
