"""Trained-model bundle and batch-independent inference."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from sci2cl import __version__
from sci2cl.data import MODALITIES, InputTransform, MultiomeDataset
from sci2cl.loader import BatchLoader
from sci2cl.model import ModelConfig, Sci2clModule
from sci2cl.train.device import resolve_device

FORMAT = "sci2cl-model/2"
# /1 models predate the fusion check: no residual gate was saved and the residual was always on
UPGRADES = {"sci2cl-model/1": {"fusion.cross.residual_gate": 1.0}}


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
        return {
            "format": FORMAT,
            "sci2cl_version": __version__,
            "model_config": self.module.config.to_dict(),
            "n_features": self.module.n_features,
            "features": self.features,
            "transforms": {
                m: {"target_sum": t.target_sum, "scale": t.scale}
                for m, t in self.transforms.items()
            },
            "train_params": self.train_params,
            "history": self.history,
            "samples": self.samples,
            "state_dict": self.module.state_dict(),
        }

    @classmethod
    def from_payload(cls, payload: dict) -> TrainedModel:
        version = payload.get("format")
        if version != FORMAT and version not in UPGRADES:
            raise ValueError(f"not a sci2cl model (format {version!r})")
        state = dict(payload["state_dict"])
        for key, value in UPGRADES.get(version, {}).items():
            state.setdefault(key, torch.tensor(value))
        module = Sci2clModule(payload["n_features"], ModelConfig.from_dict(payload["model_config"]))
        module.load_state_dict(state)
        module.eval()
        transforms = {
            m: InputTransform(float(t["target_sum"]), np.asarray(t["scale"], np.float32))
            for m, t in payload["transforms"].items()
        }
        return cls(
            module,
            payload["features"],
            transforms,
            payload["train_params"],
            payload["history"],
            list(payload.get("samples", [])),
        )

    def dataset(self, counts) -> MultiomeDataset:
        return MultiomeDataset(counts, self.transforms)


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
