"""The trainer: owns the optimiser, device, precision, early stopping and checkpoints."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sci2cl.data import MultiomeDataset, train_validation_split
from sci2cl.loader import BatchLoader
from sci2cl.model import Sci2clModule
from sci2cl.model.inter import MATCHING_CHANCE
from sci2cl.train.averaging import averaged_weights, update_average
from sci2cl.train.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from sci2cl.train.config import TrainConfig
from sci2cl.train.device import (
    autocast,
    keep_freed_memory,
    resolve_device,
    resolve_precision,
)
from sci2cl.train.errors import TrainingDiverged, TrainingInterrupted
from sci2cl.train.interrupt import StopRequest

EpochCallback = Callable[[dict], None]
CHECKPOINT_EVERY_S = 600.0  # long epochs also checkpoint mid-epoch, at most this far apart


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
    encoders_released_epoch: int = 0  # MOC/MOM stopped updating the encoders after it


@dataclass
class _Run:
    """What one fit() threads through its epochs."""

    module: Sci2clModule
    loader: BatchLoader
    optimiser: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    rng: np.random.Generator
    state: TrainingState
    checkpoint: Path | None
    stop: StopRequest
    saved_at: float = field(default_factory=time.monotonic)

    def save(self) -> None:
        if self.checkpoint is not None:
            args = (self.module, self.optimiser, self.scaler, self.rng, self.state)
            save_checkpoint(self.checkpoint, *args)
            self.saved_at = time.monotonic()

    def save_or_stop(self, epoch: int) -> None:
        """Mid-epoch: save progress (never a run whose losses went non-finite); after
        SIGTERM, then stop."""
        if all(math.isfinite(v[0]) for v in self.state.sums.values()):
            self.save()
        if self.stop.requested:
            raise TrainingInterrupted(epoch + 1, self.checkpoint)


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
        """Train; with ``checkpoint`` save progress after every epoch (and every
        CHECKPOINT_EVERY_S within long ones); ``resume`` continues from such a file, exactly
        where it stopped, even mid-epoch. SIGTERM saves progress and raises
        :class:`TrainingInterrupted`; a non-finite loss raises :class:`TrainingDiverged`."""
        cfg = self.config
        start = time.perf_counter()
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        train_rows, val_rows = train_validation_split(
            data.n_cells, cfg.validation_fraction, cfg.seed
        )
        module.to(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        optimiser = torch.optim.AdamW(
            module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True
        )
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        state = TrainingState()
        if resume is not None and resume.exists():
            state = load_checkpoint(resume, module, optimiser, scaler, rng)
        result = FitResult(device=str(self.device), history=state.history)
        loader = BatchLoader(data, self.device, cfg.batch_size)
        with StopRequest() as stop:
            run = _Run(module, loader, optimiser, scaler, rng, state, checkpoint, stop)
            for epoch in range(state.epoch, cfg.max_epochs):
                if state.bad_epochs >= cfg.patience:  # a resumed run that had stopped early
                    break
                record = self._epoch(run, epoch, train_rows, val_rows)
                if on_epoch is not None:
                    on_epoch(record)
            if stop.requested:  # arrived after the last step: the epoch's checkpoint stands
                raise TrainingInterrupted(state.epoch, checkpoint)
        result.stopped_early = state.bad_epochs >= cfg.patience
        if state.best_state is not None:
            module.load_state_dict(state.best_state)
        else:
            state.best_epoch = state.epoch
            state.best_loss = state.history[-1].get("val_loss", state.history[-1]["train_loss"])
        module.eval()
        if cfg.fusion_check:
            self._check_fusion(module, state, result)
        module.calibrate_joint(loader(np.arange(data.n_cells)))
        result.best_epoch = state.best_epoch
        result.best_validation_loss = float(state.best_loss)
        result.epochs_run = state.epoch
        result.encoders_released_epoch = state.released_epoch
        result.wall_time_s = time.perf_counter() - start
        return result

    def _epoch(self, run: _Run, epoch: int, train_rows, val_rows) -> dict:
        """One epoch (or the rest of one): train, validate, track the best, checkpoint."""
        cfg, state = self.config, run.state
        full = epoch >= cfg.effective_warmup
        run.module.inter_to_encoders = not state.released_epoch
        train_terms = self._run_epoch(run, epoch, train_rows, full)
        val_terms = self._validate(run, epoch, val_rows, full) if len(val_rows) else {}
        for stage, terms in (("training", train_terms), ("validation", val_terms)):
            bad = [(k, v) for k, v in terms.items() if not math.isfinite(v)]
            if bad:
                raise TrainingDiverged(epoch + 1, stage, *bad[0])
        record = {"epoch": epoch + 1, "stage": "joint" if full else "warmup"}
        record.update({f"train_{k}": v for k, v in train_terms.items()})
        record.update({f"val_{k}": v for k, v in val_terms.items()})
        state.history.append(record)
        monitored = val_terms.get("loss", train_terms["loss"])
        if full and cfg.release_encoders and not state.released_epoch and "moc" in val_terms:
            if val_terms["moc"] < state.best_moc - cfg.min_delta:
                state.best_moc = val_terms["moc"]
            else:  # alignment stopped generalising: from now on it leaves the encoders alone
                state.released_epoch = epoch + 1
                state.best_loss, state.bad_epochs = float("inf"), 0
        if state.released_epoch:  # the encoders only reconstruct now: stop when that overfits
            terms = val_terms or train_terms
            monitored = sum(v for k, v in terms.items() if k.startswith("zinb_"))
        if full:
            if monitored < state.best_loss - cfg.min_delta:
                state.best_loss, state.best_epoch, state.bad_epochs = monitored, epoch + 1, 0
                with averaged_weights(run.module, state.average):
                    state.best_state = copy.deepcopy(run.module.state_dict())
            else:
                state.bad_epochs += 1
        state.batches_done, state.epoch_rng, state.sums = 0, None, {}
        state.epoch = epoch + 1
        run.save()
        return record

    @staticmethod
    def _check_fusion(module: Sci2clModule, state: TrainingState, result: FitResult) -> None:
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

    def _run_epoch(self, run: _Run, epoch: int, rows: np.ndarray, full: bool) -> dict:
        """Shuffled steps over ``rows``; resumes after ``state.batches_done`` batches with the
        epoch's own shuffle. Mean loss terms per cell."""
        module, optimiser, scaler, state = run.module, run.optimiser, run.scaler, run.state
        batch_size = self.config.batch_size
        if state.epoch_rng is None:
            state.epoch_rng = run.rng.bit_generator.state
        else:  # mid-epoch checkpoint: replay this epoch's shuffle
            run.rng.bit_generator.state = state.epoch_rng
        order = run.rng.permutation(rows)
        stop = len(order) - (len(order) % batch_size if len(order) > batch_size else 0)
        sums = {k: torch.tensor(v, device=self.device) for k, v in state.sums.items()}
        module.train()
        todo = order[state.batches_done * batch_size : stop]
        for batch in run.loader(todo, module.config.decoder_features_per_step):
            with autocast(self.device, self.amp_dtype):
                terms = module.loss(batch, full=full)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(terms["loss"]).backward()
            scaler.unscale_(optimiser)
            torch.nn.utils.clip_grad_norm_(module.parameters(), 10.0)
            scaler.step(optimiser)
            scaler.update()
            if self.config.ema_decay > 0:
                state.average = update_average(state.average, module, self.config.ema_decay)
            _accumulate(sums, terms, batch.rna.size)
            state.batches_done += 1
            due = time.monotonic() - run.saved_at > CHECKPOINT_EVERY_S
            if run.stop.requested or (due and run.checkpoint is not None):
                state.sums = {k: v.tolist() for k, v in sums.items()}
                run.save_or_stop(epoch)
        state.sums = {k: v.tolist() for k, v in sums.items()}  # the epoch's training is done
        return _means(state.sums)

    @torch.no_grad()
    def _validate(self, run: _Run, epoch: int, rows, full) -> dict[str, float]:
        """Validation loss with fixed masks, negatives and decoder features, so epochs are
        comparable, under the moving average of the weights. SIGTERM abandons it; a resumed run
        validates the epoch again."""
        module = run.module
        module.eval()
        sums: dict[str, torch.Tensor] = {}
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), averaged_weights(module, run.state.average):
            torch.manual_seed(self.config.seed + 1)
            for batch in run.loader(rows, module.config.decoder_features_per_step):
                if run.stop.requested:
                    break
                with autocast(self.device, self.amp_dtype):
                    terms = module.loss(batch, full=full)
                _accumulate(sums, terms, batch.rna.size)
        if run.stop.requested:  # out of fork_rng: the training RNG state is what is saved
            run.save_or_stop(epoch)
        return _means({k: v.tolist() for k, v in sums.items()})


def _accumulate(sums: dict[str, torch.Tensor], terms: dict[str, torch.Tensor], n: int) -> None:
    """Add ``n`` cells' worth of each term, and count the cells each term was computed on
    (MOM skips batches of one cell: they must not count as a loss of 0)."""
    for key, value in terms.items():
        value = torch.stack([value.detach().float() * n, value.new_tensor(float(n))])
        sums[key] = sums[key] + value if key in sums else value


def _means(sums: dict) -> dict[str, float]:
    return {k: float(v[0]) / max(float(v[1]), 1.0) for k, v in sums.items()}
