"""Genomic intervals of peaks: parse, merge across samples, map counts by overlap, recount.

Intervals are half-open ``[start, end)`` as in BED (10x writes ``chr:start-end``). Two
intervals overlap when they share at least one base; bookended intervals (one ends where the
next starts) do not overlap and are not merged. Everything is vectorised on one sorted axis:
a position becomes ``chromosome_code * STRIDE + position``, so sorting, running maxima and
``searchsorted`` work across chromosomes at once without Python loops over peaks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

STRIDE = np.int64(1) << np.int64(36)  # > any chromosome length; leaves room for 2^26 contigs
_INTERVAL = re.compile(r"^(?P<chrom>.+)[:_-](?P<start>\d+)[-_](?P<end>\d+)$")


@dataclass(frozen=True)
class Intervals:
    """Peaks as parallel arrays (chromosome names, 0-based starts, exclusive ends)."""

    chrom: np.ndarray  # (n,) str
    start: np.ndarray  # (n,) int64
    end: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def names(self) -> list[str]:
        """``chr:start-end`` per interval."""
        return [f"{c}:{s}-{e}" for c, s, e in zip(self.chrom, self.start, self.end, strict=True)]

    def keys(self, chromosomes: pd.Index) -> tuple[np.ndarray, np.ndarray]:
        """Start and end on the global axis of ``chromosomes`` (which hold every contig)."""
        base = chromosomes.get_indexer(pd.Index(self.chrom)).astype(np.int64) * STRIDE
        return base + self.start, base + self.end


def parse_intervals(names) -> Intervals:
    """Parse ``chr:start-end`` (also ``chr_start_end`` / ``chr-start-end``); ValueError with
    the first bad name otherwise."""
    series = pd.Series(np.asarray(names, dtype=str))
    parts = series.str.extract(_INTERVAL)
    bad = parts["chrom"].isna()
    if bad.any():
        raise ValueError(f"not a genomic interval (chr:start-end): {series[bad].iloc[0]!r}")
    start = parts["start"].astype(np.int64).to_numpy()
    end = parts["end"].astype(np.int64).to_numpy()
    if (end <= start).any():
        first = series[end <= start].iloc[0]
        raise ValueError(f"interval with end <= start: {first!r}")
    return Intervals(parts["chrom"].to_numpy(dtype=str), start, end)


def var_intervals(var: pd.DataFrame) -> Intervals:
    """Intervals of an ATAC ``var``: the ``interval`` column, else the feature names."""
    names = var.get("interval", var.index.to_series())
    return parse_intervals(names.astype(str))


def _chromosomes(sets: list[Intervals]) -> pd.Index:
    return pd.Index(pd.unique(np.concatenate([s.chrom for s in sets])))


def merge_intervals(sets: list[Intervals]) -> Intervals:
    """One sorted set of non-overlapping regions covering every interval of ``sets``:
    overlapping intervals (also of the same set) become one region spanning them all."""
    chromosomes = _chromosomes(sets)
    keys = [s.keys(chromosomes) for s in sets]
    start, end = np.concatenate([k[0] for k in keys]), np.concatenate([k[1] for k in keys])
    order = np.lexsort((end, start))
    start, end = start[order], end[order]
    reach = np.maximum.accumulate(end)  # furthest end so far: contigs never overlap (STRIDE)
    new = np.ones(start.size, dtype=bool)
    new[1:] = start[1:] >= reach[:-1]
    first = np.flatnonzero(new)
    region_end = np.maximum.reduceat(end, first) if first.size else end[:0]
    region_start = start[first]
    code = region_start // STRIDE
    return Intervals(
        chromosomes.to_numpy(dtype=str)[code] if code.size else np.array([], dtype=str),
        region_start - code * STRIDE,
        region_end - code * STRIDE,
    )


def overlap_matrix(query: Intervals, target: Intervals) -> sp.csr_matrix:
    """Sparse (len(query), len(target)) 0/1 matrix: 1 where the two intervals overlap.

    ``counts @ overlap_matrix(...)`` sums each cell's query-peak counts into every target
    region they overlap (a query peak spanning two targets counts in both).
    """
    chromosomes = _chromosomes([query, target])
    q_lo, q_hi = query.keys(chromosomes)
    t_lo, t_hi = target.keys(chromosomes)
    order = np.argsort(t_lo, kind="stable")
    t_lo, t_hi = t_lo[order], t_hi[order]
    reach = np.maximum.accumulate(t_hi) if t_hi.size else t_hi
    first = np.searchsorted(reach, q_lo, side="right")  # targets before end at or before q_lo
    stop = np.searchsorted(t_lo, q_hi, side="left")  # targets from here start at or after q_hi
    n = np.maximum(stop - first, 0)
    rows = np.repeat(np.arange(len(query)), n)
    offsets = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    cols = np.repeat(first, n) + offsets
    hit = t_hi[cols] > q_lo[rows]  # candidates past a long earlier target may not overlap
    rows, cols = rows[hit], order[cols[hit]]
    data = np.ones(rows.size, dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(query), len(target)))


def recount_fragments(
    path: str | Path, barcodes, regions: Intervals, chunksize: int = 2_000_000
) -> sp.csr_matrix:
    """Cut-site counts (cells x regions) from a 10x ``fragments.tsv.gz``.

    Each fragment contributes its two Tn5 insertion sites (``start`` and ``end - 1``), as Cell
    Ranger ARC counts peaks; fragments of barcodes not in ``barcodes`` are skipped. Read in
    chunks, each reduced to its (cell, region) counts and all summed once at the end (memory ~
    chunk + non-zeros; fragments files are position-sorted, so chunks barely share pairs);
    ``regions`` must not overlap (e.g. merged ones).
    """
    cells = pd.Index(np.asarray(barcodes, dtype=str))
    chromosomes = _chromosomes([regions])
    r_lo, r_hi = regions.keys(chromosomes)
    order = np.argsort(r_lo, kind="stable")
    r_lo, r_hi = r_lo[order], r_hi[order]
    shape = (len(cells), len(regions))
    parts = [sp.coo_matrix(shape, dtype=np.float32)]  # no fragments: no counts
    reader = pd.read_csv(
        path,
        sep="\t",
        comment="#",
        header=None,
        usecols=[0, 1, 2, 3],
        names=["chrom", "start", "end", "barcode"],
        dtype={"chrom": str, "start": np.int64, "end": np.int64, "barcode": str},
        chunksize=chunksize,
    )
    for chunk in reader:
        row = cells.get_indexer(chunk["barcode"].to_numpy())
        code = chromosomes.get_indexer(chunk["chrom"].to_numpy())
        keep = (row >= 0) & (code >= 0)
        base = code[keep].astype(np.int64) * STRIDE
        start = base + chunk["start"].to_numpy()[keep]
        sites = np.concatenate([start, base + chunk["end"].to_numpy()[keep] - 1])
        rows = np.tile(row[keep], 2)
        region = np.searchsorted(r_lo, sites, side="right") - 1
        inside = (region >= 0) & (sites < r_hi[np.maximum(region, 0)])
        data = np.ones(int(inside.sum()), dtype=np.float32)
        part = sp.csr_matrix((data, (rows[inside], order[region[inside]])), shape=shape)
        parts.append(part.tocoo())
    total = sp.coo_matrix(
        (
            np.concatenate([p.data for p in parts]),
            (np.concatenate([p.row for p in parts]), np.concatenate([p.col for p in parts])),
        ),
        shape=shape,
    )
    return total.tocsr()  # sums the (cell, region) pairs that several chunks share
