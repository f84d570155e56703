"""The trainer: owns the optimiser, device, precision, early stopping and checkpoints."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sci2cl.data import MultiomeDataset, train_validation_split
from sci2cl.io import staged_outputs
from sci2cl.loader import BatchLoader
from sci2cl.model import Sci2clModule
from sci2cl.model.inter import MATCHING_CHANCE
from sci2cl.train.config import TrainConfig
from sci2cl.train.device import autocast, resolve_device, resolve_precision

EpochCallback = Callable[[dict], None]


@dataclass
class FitResult:
    """What a training run produced besides the weights (which stay in the module)."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_validation_loss: float = float("nan")
    epochs_run: int = 0
    wall_time_s: float = 0.0
    stopped_early: bool = False
    device: str = "cpu"
    # fusion check: None = not run; else whether the cross-attention residual was kept
    fusion_residual_kept: bool | None = None
    fusion_untested: bool = False  # MOM on but no held-out cells: the residual stays
    best_validation_mom: float = float("nan")


class Trainer:
    """Train a :class:`Sci2clModule` on a :class:`MultiomeDataset`."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.amp_dtype = resolve_precision(config.precision, self.device)

    def fit(
        self,
        module: Sci2clModule,
        data: MultiomeDataset,
        on_epoch: EpochCallback | None = None,
        checkpoint: Path | None = None,
        resume: Path | None = None,
    ) -> FitResult:
        cfg = self.config
        start = time.perf_counter()
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        train_rows, val_rows = train_validation_split(
            data.n_cells, cfg.validation_fraction, cfg.seed
        )
        module.to(self.device)
        optimiser = torch.optim.AdamW(
            module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True
        )
        scaler = torch.amp.GradScaler(enabled=self.amp_dtype == torch.float16)
        state = _State()
        if resume is not None and Path(resume).exists():
            state = _load_checkpoint(Path(resume), module, optimiser, rng)
        result = FitResult(device=str(self.device), history=state.history)
        warmup = cfg.effective_warmup
        loader = BatchLoader(data, self.device, cfg.batch_size)
        for epoch in range(state.epoch, cfg.max_epochs):
            full = epoch >= warmup
            module.train()
            train_terms = self._run_epoch(module, loader, train_rows, full, optimiser, scaler, rng)
            val_terms = self._validate(module, loader, val_rows, full) if len(val_rows) else {}
            record = {"epoch": epoch + 1, "stage": "joint" if full else "warmup"}
            record.update({f"train_{k}": v for k, v in train_terms.items()})
            record.update({f"val_{k}": v for k, v in val_terms.items()})
            state.history.append(record)
            monitored = val_terms.get("loss", train_terms["loss"])
            if full:
                if monitored < state.best_loss - cfg.min_delta:
                    state.best_loss, state.best_epoch, state.bad_epochs = monitored, epoch + 1, 0
                    state.best_state = copy.deepcopy(module.state_dict())
                else:
                    state.bad_epochs += 1
            state.epoch = epoch + 1
            if checkpoint is not None:
                _save_checkpoint(Path(checkpoint), module, optimiser, rng, state)
            if on_epoch is not None:
                on_epoch(record)
            if full and state.bad_epochs >= cfg.patience:
                result.stopped_early = True
                break
        if state.best_state is not None:
            module.load_state_dict(state.best_state)
        else:
            state.best_epoch = state.epoch
            state.best_loss = state.history[-1].get("val_loss", state.history[-1]["train_loss"])
        module.eval()
        if cfg.fusion_check:
            self._check_fusion(module, state, result)
        module.calibrate_joint(loader(np.arange(data.n_cells)))
        result.history = state.history
        result.best_epoch = state.best_epoch
        result.best_validation_loss = float(state.best_loss)
        result.epochs_run = state.epoch
        result.wall_time_s = time.perf_counter() - start
        return result

    @staticmethod
    def _check_fusion(module: Sci2clModule, state: _State, result: FitResult) -> None:
        """Keep the MOM-trained cross-attention residual only if matching generalises: the
        selected epoch's held-out MOM loss must beat its chance level (ln 2). Otherwise the
        residual is instance-level detail learnt from training pairs and is switched off."""
        c = module.config
        if not (c.use_cross_attention and c.lambda_mom > 0):
            return  # no matching loss: no residual to test
        val_mom = state.history[state.best_epoch - 1].get("val_mom")
        if val_mom is None:
            result.fusion_untested = True
            return
        result.best_validation_mom = float(val_mom)
        result.fusion_residual_kept = bool(val_mom < MATCHING_CHANCE)
        if not result.fusion_residual_kept:
            module.fusion.cross.residual_gate.fill_(0.0)

    def _run_epoch(self, module, loader, rows, full, optimiser, scaler, rng) -> dict[str, float]:
        sums: dict[str, torch.Tensor] = {}
        n = 0
        drop_last = len(rows) > self.config.batch_size
        k = module.config.decoder_features_per_step
        for batch in loader(rows, k, shuffle=True, rng=rng, drop_last=drop_last):
            with autocast(self.device, self.amp_dtype):
                terms = module.loss(batch, full=full)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(terms["loss"]).backward()
            scaler.unscale_(optimiser)
            torch.nn.utils.clip_grad_norm_(module.parameters(), 10.0)
            scaler.step(optimiser)
            scaler.update()
            _accumulate(sums, terms, batch.rna.size)
            n += batch.rna.size
        return {k: float(v) / max(n, 1) for k, v in sums.items()}

    @torch.no_grad()
    def _validate(self, module, loader, rows, full) -> dict[str, float]:
        """Validation loss with fixed masks and negatives, so epochs are comparable."""
        module.eval()
        sums: dict[str, torch.Tensor] = {}
        n = 0
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.seed + 1)
            for batch in loader(rows, module.config.decoder_features_per_step):
                with autocast(self.device, self.amp_dtype):
                    terms = module.loss(batch, full=full)
                _accumulate(sums, terms, batch.rna.size)
                n += batch.rna.size
        return {k: float(v) / max(n, 1) for k, v in sums.items()}


def _accumulate(sums: dict[str, torch.Tensor], terms: dict[str, torch.Tensor], n: int) -> None:
    for key, value in terms.items():
        value = value.detach().float() * n
        sums[key] = sums[key] + value if key in sums else value


@dataclass
class _State:
    epoch: int = 0
    best_loss: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict | None = None
    history: list[dict] = field(default_factory=list)


def _save_checkpoint(path: Path, module, optimiser, rng: np.random.Generator, state: _State):
    """Everything needed to resume, written atomically (temp name, then rename)."""
    payload = {
        "module": module.state_dict(),
        "optimiser": optimiser.state_dict(),
        "rng_numpy": rng.bit_generator.state,
        "rng_torch": torch.get_rng_state(),
        "state": state.__dict__,
    }
    with staged_outputs({"checkpoint": path}) as temp:
        torch.save(payload, temp["checkpoint"])


def _load_checkpoint(path: Path, module, optimiser, rng: np.random.Generator) -> _State:
    payload = torch.load(path, map_location="cpu", weights_only=False)
    module.load_state_dict(payload["module"])
    optimiser.load_state_dict(payload["optimiser"])
    rng.bit_generator.state = payload["rng_numpy"]
    torch.set_rng_state(payload["rng_torch"])
    return _State(**payload["state"])
