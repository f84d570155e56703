"""Figures of the benchmark: UMAP grid per method, scaling curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def umap_grid(panels: dict[str, np.ndarray], labels: np.ndarray, keep: np.ndarray, path: Path):
    """One UMAP per method (cells without a reference label left out), coloured by label."""
    names = list(panels)
    cols = 4
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    codes, uniques = pd.factorize(labels[keep])
    colours = plt.get_cmap("tab20")(np.arange(len(uniques)) % 20)
    for ax, name in zip(axes.ravel(), names, strict=False):
        xy = panels[name][keep]
        ax.scatter(xy[:, 0], xy[:, 1], s=1, c=colours[codes], rasterized=True)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=colours[i], label=u)
        for i, u in enumerate(uniques)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(uniques), 8), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def scaling_plot(table: pd.DataFrame, path: Path) -> None:
    """Seconds per epoch and peak RSS against cells (and against peaks), log-log."""
    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    cells = table[table["axis"] == "cells"].sort_values("n_cells")
    base = cells[cells["n_cells"] == cells["n_cells"].min()].assign(axis="peaks")
    peaks = pd.concat([table[table["axis"] == "peaks"], base]).sort_values("n_peaks")
    axes[0].loglog(cells["n_cells"], cells["s_per_epoch"], "o-", label="vs cells")
    axes[0].set(xlabel="cells", ylabel="s / epoch (CPU)", title="time per epoch vs cells")
    axes[1].loglog(cells["n_cells"], cells["peak_rss_mib"], "o-", label="vs cells")
    axes[1].set(xlabel="cells", ylabel="peak RSS (MiB)", title="peak memory vs cells")
    axes[2].plot(peaks["n_peaks"], peaks["s_per_step"], "o-")
    axes[2].set(xlabel="peaks (10k cells)", ylabel="s / step (CPU)", title="step time vs peaks")
    for axis, part in table.groupby("axis"):
        axes[3].plot(part["nnz"] / 1e6, part["peak_rss_mib"], "o", label=f"vs {axis}")
    if len(table) > 1:
        slope, intercept = np.polyfit(table["nnz"] / 1e6, table["peak_rss_mib"], 1)
        grid = np.linspace(0, table["nnz"].max() / 1e6, 50)
        axes[3].plot(grid, intercept + slope * grid, "k--", label=f"{slope:.1f} MiB / M nnz")
    axes[3].set(xlabel="non-zeros (millions)", ylabel="peak RSS (MiB)", title="memory vs nnz")
    axes[3].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
