"""Cell QC, feature filtering and feature selection on raw counts (counts stay untouched)."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.interpolate import CubicHermiteSpline

from sci2cl.errors import InputError
from sci2cl.io.read import assemble_multiome
from sci2cl.knobs import check_bounds, knob

SELECTED = "sci2cl_selected"
MITO_PATTERN = r"^(?:MT|mt|Mt)-"


@dataclass(frozen=True)
class PrepareConfig:
    """QC thresholds and feature-selection sizes (0 or None switches a filter off)."""

    min_rna_counts: int = knob(10, "Minimum RNA UMIs per cell.", 0)
    max_rna_counts: int | None = knob(None, "Maximum RNA UMIs per cell (doublet guard).", 0)
    min_rna_genes: int = knob(0, "Minimum detected genes per cell.", 0)
    max_mito_pct: float | None = knob(
        20.0, "Maximum % of RNA UMIs from mitochondrial (MT-/mt-) genes.", 0, 100
    )
    min_atac_counts: int = knob(5, "Minimum ATAC counts per cell.", 0)
    max_atac_counts: int | None = knob(None, "Maximum ATAC counts per cell.", 0)
    min_atac_peaks: int = knob(0, "Minimum accessible peaks per cell.", 0)
    min_cells_per_gene: int = knob(3, "Drop genes detected in fewer cells.", 0)
    min_cells_per_peak: int = knob(3, "Drop peaks accessible in fewer cells.", 0)
    n_top_genes: int = knob(4000, "Highly variable genes to select (seurat_v3 style).", 1)
    n_top_peaks: int = knob(10000, "Most frequently accessible peaks to select.", 1)

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class FilterStep:
    """One filter (a config field and its value) and the counts before and after it."""

    name: str
    threshold: float | None
    before: int
    after: int

    @property
    def label(self) -> str:
        value = float(self.threshold or 0)
        return f"{self.name}={int(value) if value.is_integer() else f'{value:g}'}"


@dataclass(frozen=True)
class PrepareReport:
    """What :func:`prepare` removed and selected."""

    sample: str
    cells: tuple[FilterStep, ...]
    genes: tuple[FilterStep, ...]
    peaks: tuple[FilterStep, ...]
    n_genes_selected: int
    n_peaks_selected: int
    n_mito_genes: int

    @staticmethod
    def _span(steps: tuple[FilterStep, ...]) -> tuple[int, int]:
        return steps[0].before, steps[-1].after

    def summary_lines(self) -> list[str]:
        """Human-readable summary, one line per modality plus one for cells."""

        def detail(steps: tuple[FilterStep, ...]) -> str:
            removed = [f"{s.label}: -{s.before - s.after}" for s in steps[1:]]
            return f" ({', '.join(removed)})" if removed else ""

        (c0, c1), (g0, g1), (p0, p1) = map(self._span, (self.cells, self.genes, self.peaks))
        mito = "" if self.n_mito_genes else "; no MT- genes, mito filter not applied"
        return [
            f"sample {self.sample}: {c0} cells -> {c1}{detail(self.cells)}{mito}",
            f"rna: {g0} genes -> {g1}{detail(self.genes)}; {self.n_genes_selected} selected",
            f"atac: {p0} peaks -> {p1}{detail(self.peaks)}; {self.n_peaks_selected} selected",
        ]

    def as_dict(self) -> dict:
        """Counts before/after each step, for ``uns``."""
        out: dict = {"sample": self.sample, "n_mito_genes": self.n_mito_genes}
        for kind in ("cells", "genes", "peaks"):
            steps = getattr(self, kind)
            out[f"n_{kind}_in"], out[f"n_{kind}_out"] = self._span(steps)
            out[f"{kind}_removed"] = {s.name: s.before - s.after for s in steps[1:]}
        out["n_genes_selected"] = self.n_genes_selected
        out["n_peaks_selected"] = self.n_peaks_selected
        return out


def prepare(
    mdata: mudata.MuData, config: PrepareConfig, sample: str
) -> tuple[mudata.MuData, PrepareReport]:
    """QC-filter cells and features, mark selected features; returns a new MuData."""
    rna, atac = mdata["rna"], mdata["atac"]
    if not rna.obs_names.equals(atac.obs_names):
        raise ValueError("'rna' and 'atac' must hold the same cells in the same order")
    source = mdata.uns.get("files", {}).get("input", sample)
    rna_x, atac_x = sp.csr_matrix(rna.X), sp.csr_matrix(atac.X)
    mito = rna_mito_mask(rna.var)
    rna_qc = cell_qc(rna_x, mito if mito.any() else None)
    atac_qc = cell_qc(atac_x)

    cell_steps, keep = _apply(rna.n_obs, _cell_filters(config, rna_qc, atac_qc))
    if not keep.any():
        step = next(s for s in cell_steps if s.after == 0)
        raise InputError(source, f"no cells pass QC ({step.label} left 0 of {step.before} cells)")
    rna_x, atac_x = rna_x[keep], atac_x[keep]

    gene_cells, peak_cells = detection_counts(rna_x), detection_counts(atac_x)
    gene_steps, gene_keep = _feature_filter(rna.n_vars, "min_cells_per_gene", config, gene_cells)
    peak_steps, peak_keep = _feature_filter(atac.n_vars, "min_cells_per_peak", config, peak_cells)
    for kind, steps in (("genes", gene_steps), ("peaks", peak_steps)):
        if steps[-1].after == 0:
            raise InputError(source, f"no {kind} pass {steps[-1].label} in {int(keep.sum())} cells")
    rna_x, atac_x = rna_x[:, gene_keep], atac_x[:, peak_keep]
    gene_selected = highly_variable_genes(rna_x, config.n_top_genes)
    peak_selected = top_detected(peak_cells[peak_keep], config.n_top_peaks)

    new_rna = _subset(rna, rna_x, keep, gene_keep, rna_qc, gene_cells, gene_selected)
    new_atac = _subset(atac, atac_x, keep, peak_keep, atac_qc, peak_cells, peak_selected)
    out = assemble_multiome(new_rna, new_atac)
    kept_obs = mdata.obs.loc[keep]
    for column in kept_obs.columns:
        out.obs[column] = kept_obs[column].values
    out.obs["sample"] = pd.Categorical.from_codes(np.zeros(out.n_obs, int), [sample])
    out.obs["barcode"] = out.obs_names.astype(str).to_numpy()
    report = PrepareReport(
        sample=sample,
        cells=tuple(cell_steps),
        genes=tuple(gene_steps),
        peaks=tuple(peak_steps),
        n_genes_selected=int(gene_selected.sum()),
        n_peaks_selected=int(peak_selected.sum()),
        n_mito_genes=int(mito.sum()),
    )
    out.uns.update(copy.deepcopy(dict(mdata.uns)))
    out.uns.setdefault("sci2cl", {})["prepare"] = {"config": asdict(config), **report.as_dict()}
    return out, report


# --- QC metrics and filters ----------------------------------------------------------------


def rna_mito_mask(var: pd.DataFrame) -> np.ndarray:
    """Mitochondrial genes, by ``gene_name`` (else var_names) starting with MT- / mt-."""
    names = var["gene_name"] if "gene_name" in var else var.index.to_series()
    return names.astype(str).str.match(MITO_PATTERN).to_numpy(dtype=bool)


def cell_qc(counts: sp.csr_matrix, mito: np.ndarray | None = None) -> pd.DataFrame:
    """Per-cell ``total_counts``, ``n_features`` and (given a mito mask) ``pct_mito``."""
    total = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    qc = pd.DataFrame({"total_counts": total, "n_features": np.diff(counts.indptr)})
    if mito is not None:
        mito_total = np.asarray(counts[:, mito].sum(axis=1), dtype=np.float64).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            qc["pct_mito"] = np.nan_to_num(100 * mito_total / total).astype(np.float32)
    return qc


def _cell_filters(
    config: PrepareConfig, rna: pd.DataFrame, atac: pd.DataFrame
) -> list[tuple[str, float, np.ndarray]]:
    """Active cell filters as (field, threshold, passing mask), in the order applied."""
    bounds = [
        ("min_rna_counts", rna["total_counts"], np.greater_equal),
        ("max_rna_counts", rna["total_counts"], np.less_equal),
        ("min_rna_genes", rna["n_features"], np.greater_equal),
        ("max_mito_pct", rna.get("pct_mito"), np.less_equal),
        ("min_atac_counts", atac["total_counts"], np.greater_equal),
        ("max_atac_counts", atac["total_counts"], np.less_equal),
        ("min_atac_peaks", atac["n_features"], np.greater_equal),
    ]
    filters = []
    for name, metric, passes in bounds:
        threshold = getattr(config, name)
        if threshold is None or metric is None or (passes is np.greater_equal and not threshold):
            continue
        filters.append((name, threshold, passes(metric.to_numpy(), threshold)))
    return filters


def _apply(
    n: int, filters: list[tuple[str, float, np.ndarray]]
) -> tuple[list[FilterStep], np.ndarray]:
    """Apply masks in order, recording counts; the first step is the unfiltered input."""
    keep = np.ones(n, dtype=bool)
    steps = [FilterStep("input", None, n, n)]
    for name, threshold, mask in filters:
        before = int(keep.sum())
        keep &= mask
        steps.append(FilterStep(name, threshold, before, int(keep.sum())))
    return steps, keep


def _feature_filter(
    n: int, name: str, config: PrepareConfig, detected: np.ndarray
) -> tuple[list[FilterStep], np.ndarray]:
    threshold = getattr(config, name)
    return _apply(n, [(name, threshold, detected >= threshold)])


def detection_counts(counts: sp.csr_matrix) -> np.ndarray:
    """Number of cells with a non-zero count, per feature."""
    nonzero = counts.indices[counts.data != 0]
    return np.bincount(nonzero, minlength=counts.shape[1])


# --- feature selection ---------------------------------------------------------------------


def top_detected(detected: np.ndarray, n_top: int) -> np.ndarray:
    """Mask of the ``n_top`` features detected in most cells (ties: original order)."""
    mask = np.zeros(detected.size, dtype=bool)
    mask[np.argsort(-detected, kind="stable")[:n_top]] = True
    return mask


def highly_variable_genes(counts: sp.csr_matrix, n_top: int, span: float = 0.3) -> np.ndarray:
    """Mask of the ``n_top`` most variable genes, Seurat v3 style, on raw counts.

    The expected variance per gene comes from a local quadratic (loess) fit of log variance on
    log mean; each gene's counts are standardised by it, clipped at sqrt(n_cells), and genes
    are ranked by the variance of the standardised values. All genes when fewer than n_top.
    """
    n_cells, n_genes = counts.shape
    if n_top >= n_genes:
        return np.ones(n_genes, dtype=bool)
    columns, values = counts.indices, counts.data.astype(np.float64)
    mean = np.bincount(columns, values, n_genes) / n_cells
    sq_sum = np.bincount(columns, values**2, n_genes)
    var = np.maximum(sq_sum - n_cells * mean**2, 0) / max(n_cells - 1, 1)
    varying = var > 0
    expected = np.ones(n_genes)
    expected[varying] = 10 ** loess_trend(np.log10(mean[varying]), np.log10(var[varying]), span)
    clipped = np.minimum(values, (mean + np.sqrt(expected * n_cells))[columns])
    clip_sum = np.bincount(columns, clipped, n_genes)
    clip_sq = np.bincount(columns, clipped**2, n_genes)
    spread = n_cells * mean**2 + clip_sq - 2 * mean * clip_sum
    score = np.where(varying, spread / (max(n_cells - 1, 1) * expected), -np.inf)
    return top_detected(score, n_top)


def loess_trend(x: np.ndarray, y: np.ndarray, span: float, n_grid: int = 200) -> np.ndarray:
    """Local quadratic regression (tricube weights, ``span`` of points), fitted on a grid.

    Like R's ``loess(surface = "interpolate")``: fit value and slope at quantiles of ``x``,
    cubic Hermite interpolation in between.
    """
    n = x.size
    k = int(min(n, max(3, np.ceil(span * n))))
    grid = np.unique(np.quantile(x, np.linspace(0, 1, min(n_grid, n))))
    chunks = np.array_split(grid, max(1, grid.size // 32))
    fit = np.concatenate([_local_quadratic(x, y, chunk, k) for chunk in chunks])
    if grid.size == 1:
        return np.full(n, fit[0, 0])
    return CubicHermiteSpline(grid, fit[:, 0], fit[:, 1])(x)


def _local_quadratic(x: np.ndarray, y: np.ndarray, at: np.ndarray, k: int) -> np.ndarray:
    """Value and slope of the weighted quadratic fit around each point of ``at``."""
    offset = x[None, :] - at[:, None]
    dist = np.abs(offset)
    radius = np.maximum(np.partition(dist, k - 1, axis=1)[:, k - 1], 1e-12) * 1.000001
    weight = np.clip(1 - (dist / radius[:, None]) ** 3, 0, None) ** 3
    moments = np.stack([(weight * offset**p).sum(axis=1) for p in range(5)], axis=1)
    targets = np.stack([(weight * y * offset**p).sum(axis=1) for p in range(3)], axis=1)
    normal = moments[:, [[0, 1, 2], [1, 2, 3], [2, 3, 4]]]
    return np.einsum("gij,gj->gi", np.linalg.pinv(normal), targets)[:, :2]


def _subset(
    adata: ad.AnnData,
    counts: sp.csr_matrix,
    cells: np.ndarray,
    features: np.ndarray,
    qc: pd.DataFrame,
    detected: np.ndarray,
    selected: np.ndarray,
) -> ad.AnnData:
    """New AnnData of the kept cells/features with QC metrics and selection flags."""
    obs = adata.obs.iloc[cells].copy()
    for column in qc:
        obs[column] = qc[column].to_numpy()[cells]
    var = adata.var.iloc[features].copy()
    var["n_cells"] = detected[features]
    var[SELECTED] = selected
    x = sp.csr_matrix(counts, dtype=np.float32)
    return ad.AnnData(X=x, obs=obs, var=var, uns=copy.deepcopy(dict(adata.uns)))
