"""Train-and-write orchestration: fit, embed, assemble outputs, write them atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mudata as md
import torch

from sci2cl.api import fit
from sci2cl.embed import TrainedModel, embed
from sci2cl.io import staged_outputs, write_h5mu, write_parquet
from sci2cl.model import ModelConfig
from sci2cl.model.inter import MATCHING_CHANCE
from sci2cl.report import plot_losses, plot_umap, umap_coordinates
from sci2cl.results import (
    annotate_mudata,
    cell_identity,
    embedding_table,
    history_frame,
    table_metadata,
)
from sci2cl.train import FitResult, TrainConfig
from sci2cl.train.trainer import EpochCallback

TRAIN_OUTPUTS = (".embeddings.parquet", ".h5mu", ".model.pt", ".history.csv")
FIGURES = (".umap.png", ".losses.png")


@dataclass(frozen=True)
class TrainingSummary:
    result: FitResult
    n_cells: int
    outputs: tuple[Path, ...]

    def __str__(self) -> str:
        r = self.result
        early = ", stopped early" if r.stopped_early else ""
        return (
            f"trained {r.epochs_run} epochs{early} on {self.n_cells} cells in "
            f"{r.wall_time_s:.1f}s ({r.device}); best validation loss {r.best_validation_loss:.4f}"
            f" at epoch {r.best_epoch}; wrote {len(self.outputs)} files{self._fusion()}"
        )

    def _fusion(self) -> str:
        r = self.result
        if r.fusion_untested:
            return "; fusion check skipped (no held-out cells): cross-attention residual kept"
        if r.fusion_residual_kept is None:
            return ""
        verdict = "kept" if r.fusion_residual_kept else "dropped"
        return (
            f"; cross-attention residual {verdict} (held-out MOM loss "
            f"{r.best_validation_mom:.3f} vs chance {MATCHING_CHANCE:.3f})"
        )


def output_paths(prefix: str | Path, figures: bool) -> dict[str, Path]:
    suffixes = TRAIN_OUTPUTS + (FIGURES if figures else ())
    return {s: Path(f"{prefix}{s}") for s in suffixes}


def write_embedding_outputs(
    mdata: md.MuData,
    embeddings: dict,
    trained: TrainedModel,
    params: dict,
    paths: dict[str, Path],
    seed: int,
) -> None:
    """Write parquet, h5mu, history (+ model, figures when their paths are given)."""
    identity = cell_identity(mdata)
    table = embedding_table(identity, embeddings["joint"])
    history = history_frame(trained.history)
    with staged_outputs(paths) as temp:
        write_parquet(table, temp[".embeddings.parquet"], table_metadata(params))
        write_h5mu(annotate_mudata(mdata, embeddings, params, trained.history), temp[".h5mu"])
        if ".history.csv" in temp:
            history.to_csv(temp[".history.csv"], index=False)
        if ".model.pt" in temp:
            torch.save(trained.to_payload(), temp[".model.pt"])
        if ".umap.png" in temp:
            coords = umap_coordinates(embeddings["joint"], seed)
            groups = identity["sample"]
            plot_umap(coords, groups, temp[".umap.png"], "sci2cl joint embedding (UMAP)")
        if ".losses.png" in temp:
            plot_losses(history, temp[".losses.png"])


def write_training_outputs(
    mdata: md.MuData,
    prefix: str | Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    on_epoch: EpochCallback | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    figures: bool = True,
) -> TrainingSummary:
    """Train on ``mdata`` and write ``prefix`` + each of TRAIN_OUTPUTS (and FIGURES)."""
    paths = output_paths(prefix, figures)
    trained, result, data = fit(
        mdata, model_config, train_config, on_epoch, checkpoint, checkpoint if resume else None
    )
    embeddings = embed(trained.module, data, device=train_config.device)
    params = {
        "model": trained.module.config.to_dict(),
        "train": train_config.to_dict(),
        "n_features": trained.module.n_features,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "prepare": dict(mdata.uns.get("sci2cl", {}).get("prepare", {})),
    }
    if result.fusion_residual_kept is not None:
        params["fusion_check"] = {
            "tested": True,
            "residual_kept": result.fusion_residual_kept,
            "held_out_mom": result.best_validation_mom,
            "chance": MATCHING_CHANCE,
        }
    elif result.fusion_untested:
        params["fusion_check"] = {"tested": False, "residual_kept": True}
    trained.train_params = params
    write_embedding_outputs(mdata, embeddings, trained, params, paths, train_config.seed)
    return TrainingSummary(result, mdata.n_obs, tuple(paths.values()))
