"""Report figures: loss curves and a UMAP of the joint embedding (PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_losses(history: pd.DataFrame, path: Path) -> None:
    """One panel per loss term, train and validation curves against epoch."""
    terms = [c[len("train_") :] for c in history.columns if c.startswith("train_")]
    cols = min(4, len(terms))
    rows = int(np.ceil(len(terms) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms, strict=False):
        for split in ("train", "val"):
            if f"{split}_{term}" in history:
                ax.plot(history["epoch"], history[f"{split}_{term}"], label=split)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
    for ax in list(axes.flat)[len(terms) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def umap_coordinates(embedding: np.ndarray, seed: int) -> np.ndarray:
    import umap

    n_neighbors = max(2, min(15, embedding.shape[0] - 1))
    return umap.UMAP(n_neighbors=n_neighbors, random_state=seed).fit_transform(embedding)


def plot_umap(coords: np.ndarray, groups: pd.Series | None, path: Path, title: str) -> None:
    """Scatter of 2-D coordinates, coloured by ``groups`` (e.g. sample) when given."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    size = max(1.0, 40000 / max(len(coords), 1) ** 1.2)
    if groups is None or groups.nunique() <= 1:
        ax.scatter(coords[:, 0], coords[:, 1], s=size, c="#3b6ea8", linewidths=0)
    else:
        for name in sorted(groups.unique()):
            sel = (groups == name).to_numpy()
            ax.scatter(coords[sel, 0], coords[sel, 1], s=size, label=str(name), linewidths=0)
        ax.legend(markerscale=4, fontsize=7, frameon=False, loc="best")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
