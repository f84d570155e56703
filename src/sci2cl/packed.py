"""Compact cells x features counts that any device can slice and decode without host syncs.

Each cell's non-zeros are a run of fixed-size pages of ``page_size`` entries. An entry is a
pair (column step from the previous entry, count): one byte for the step and the narrowest
exact integer type for the counts, so 10x ATAC takes 2 bytes per non-zero instead of CSR's 8.
Steps above 255 are bridged by explicit zeros (step 255, count 0), and the last page of a cell
is filled with zeros (step 0, count 0): zeros add nothing to a sum, so both are harmless to
the encoder and the ZINB target. Pages record the column before their first entry
(``start``) and of their last entry (``end``), so the pages of a mini-batch decode with one
flat cumulative sum, on the CPU or on an accelerator alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
import torch

MAX_STEP = 255  # largest column step an entry holds (one byte)
CHUNK_ROWS = 4096  # rows packed at a time (bounds the temporaries)


@dataclass
class PackedRows:
    """Some cells' pages, gathered: what travels from the store to the compute device."""

    steps: torch.Tensor  # (n, P) uint8
    counts: torch.Tensor  # (n, P) counts (narrowest exact dtype)
    start: torch.Tensor  # (n,) int32 column before each page's first entry
    end: torch.Tensor  # (n,) int32 column of each page's last entry
    page_cell: torch.Tensor  # (n,) int64 position of each page's cell in the batch
    offsets: torch.Tensor  # (B,) int64 first entry of each cell (flat, page-aligned)
    library: torch.Tensor  # (B,) float32 total counts per cell

    def to(self, device: torch.device) -> PackedRows:
        return PackedRows(*(t.to(device, non_blocking=True) for t in self.__dict__.values()))

    def columns(self) -> torch.Tensor:
        """(n * P,) int64 column of every entry: one flat cumulative sum, no host sync."""
        cols = self.steps.to(torch.int64)
        jump = self.start.to(torch.int64, copy=True)
        jump[1:] -= self.end[:-1].to(torch.int64)
        cols[:, 0] += jump
        return cols.view(-1).cumsum(0)


@dataclass
class PackedCounts:
    """Counts of ``shape[0]`` cells x ``shape[1]`` features in pages (see the module doc)."""

    shape: tuple[int, int]
    steps: torch.Tensor  # (n_pages, P) uint8
    counts: torch.Tensor  # (n_pages, P) uint8 / int16 / int32 / float32
    start: torch.Tensor  # (n_pages,) int32
    end: torch.Tensor  # (n_pages,) int32
    library: torch.Tensor  # (n_cells,) float32
    cell_pages: np.ndarray  # (n_cells + 1,) int64 first page of each cell (host memory)

    @property
    def page_size(self) -> int:
        return int(self.steps.shape[1])

    @property
    def device(self) -> torch.device:
        return self.steps.device

    @property
    def nbytes(self) -> int:
        tensors = (self.steps, self.counts, self.start, self.end, self.library)
        return sum(t.numel() * t.element_size() for t in tensors) + self.cell_pages.nbytes

    def to(self, device: torch.device | str) -> PackedCounts:
        """A copy on ``device`` (the page table used to plan batches stays in host memory)."""
        moved = {
            k: getattr(self, k).to(device) for k in ("steps", "counts", "start", "end", "library")
        }
        return replace(self, **moved)

    def gather(self, rows: np.ndarray, pin: bool = False) -> PackedRows:
        """The pages of ``rows`` (on this store's device; in pinned memory when ``pin``)."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        first = self.cell_pages[rows]
        n_pages = self.cell_pages[rows + 1] - first
        before = np.cumsum(n_pages) - n_pages
        ids = np.repeat(first - before, n_pages) + np.arange(int(n_pages.sum()))
        plan = {
            "ids": torch.from_numpy(ids),
            "rows": torch.from_numpy(rows),
            "page_cell": torch.from_numpy(np.repeat(np.arange(len(rows)), n_pages)),
            "offsets": torch.from_numpy(before * self.page_size),
        }
        if self.device.type != "cpu":
            plan = {k: v.to(self.device, non_blocking=True) for k, v in plan.items()}

        def take(source: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            if not pin:
                return source.index_select(0, index)
            shape = (len(index), *source.shape[1:])
            out = torch.empty(shape, dtype=source.dtype, pin_memory=True)
            return torch.index_select(source, 0, index, out=out)

        pages = [take(getattr(self, k), plan["ids"]) for k in ("steps", "counts", "start", "end")]
        library = take(self.library, plan["rows"])
        return PackedRows(*pages, plan["page_cell"], plan["offsets"], library)

    def to_csr(self) -> sp.csr_matrix:
        """Decoded back to float32 CSR (for inspection and tests; not used in training)."""
        blocks = []
        for begin in range(0, self.shape[0], CHUNK_ROWS):
            rows = np.arange(begin, min(begin + CHUNK_ROWS, self.shape[0]))
            part = self.to("cpu").gather(rows)
            cols = part.columns().numpy()
            values = part.counts.to(torch.float32).view(-1).numpy()
            cell = np.repeat(part.page_cell.numpy(), self.page_size)
            block = sp.csr_matrix(
                (values, (cell, cols)), shape=(len(rows), self.shape[1]), dtype=np.float32
            )
            block.eliminate_zeros()
            blocks.append(block)
        if not blocks:
            return sp.csr_matrix(self.shape, dtype=np.float32)
        return sp.csr_matrix(sp.vstack(blocks, format="csr"))

    @classmethod
    def from_csr(cls, matrix: sp.spmatrix, page_size: int | None = None) -> PackedCounts:
        """Pack a cells x features sparse matrix (rows packed ``CHUNK_ROWS`` at a time)."""
        matrix = sp.csr_matrix(matrix)
        size = page_size or choose_page_size(matrix.nnz / max(matrix.shape[0], 1))
        builder = PackedBuilder(matrix.shape[1], size, count_dtype(matrix.data))
        for begin in range(0, matrix.shape[0], CHUNK_ROWS):
            builder.add(matrix[begin : begin + CHUNK_ROWS])
        return builder.finish()


def choose_page_size(mean_nnz: float) -> int:
    """A power of two near a sixteenth of the mean non-zeros per cell, within [8, 256]: the
    half-empty last page of a cell then costs about 3% more entries."""
    return int(np.clip(2 ** round(np.log2(max(mean_nnz, 1.0) / 16)), 8, 256))


def count_dtype(values: np.ndarray, current: np.dtype | None = None) -> np.dtype:
    """The narrowest type that holds ``values`` exactly (and everything ``current`` holds):
    uint8, int16, int32, else float32."""
    ladder = [np.dtype(t) for t in (np.uint8, np.int16, np.int32, np.float32)]
    low = 0 if current is None else ladder.index(np.dtype(current))
    if not len(values):
        return ladder[low]
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        return ladder[-1]
    if values.min() < 0:
        return ladder[-1]
    top = values.max()
    return next((t for t in ladder[low:-1] if top <= np.iinfo(t).max), ladder[-1])


class PackedBuilder:
    """Packs CSR row blocks as they arrive into growable page arrays (resized in place, so
    the store is never held twice, nor more than one block unpacked); ``finish`` returns the
    store. ``dtype`` is the starting count type; it widens when a block needs it."""

    def __init__(self, n_features: int, page_size: int, dtype: np.dtype) -> None:
        self.n_features = n_features
        self.size = page_size
        self.n_pages = 0
        self.steps = np.zeros((1024, page_size), np.uint8)
        self.counts = np.zeros((1024, page_size), dtype)
        self.start = np.zeros(1024, np.int32)
        self.end = np.zeros(1024, np.int32)
        self.cell_pages = [np.zeros(1, np.int64)]
        self.library: list[np.ndarray] = []

    def add(self, m: sp.csr_matrix) -> None:
        if m.shape[1] != self.n_features:
            raise ValueError(f"block has {m.shape[1]} features, expected {self.n_features}")
        m = m.copy()
        m.sum_duplicates()  # also sorts the indices
        m.eliminate_zeros()
        dtype = count_dtype(m.data, self.counts.dtype)
        if dtype != self.counts.dtype:
            self.counts = self.counts.astype(dtype)
        steps, counts, start, end, pages = _pack(m, self.size)
        total = self.n_pages + len(start)
        if total > len(self.start):
            # room for about 8 more blocks like this one: growth (zero-filled, so resident)
            # never overshoots by more than that, and a realloc moves pages without copying
            self._resize(total + 8 * len(start))
        window = slice(self.n_pages, total)
        self.steps[window], self.counts[window] = steps, counts
        self.start[window], self.end[window] = start, end
        self.cell_pages.append(self.n_pages + np.cumsum(pages))
        self.library.append(np.asarray(m.sum(axis=1), dtype=np.float64).ravel())
        self.n_pages = total

    def _resize(self, n_pages: int) -> None:
        """Grow or trim the page arrays, in place, to ``n_pages`` pages."""
        for array in (self.steps, self.counts, self.start, self.end):
            array.resize((n_pages, *array.shape[1:]), refcheck=False)

    def finish(self) -> PackedCounts:
        self._resize(self.n_pages)
        cell_pages = np.concatenate(self.cell_pages)
        library = np.concatenate(self.library) if self.library else np.zeros(0)
        return PackedCounts(
            shape=(len(cell_pages) - 1, self.n_features),
            steps=torch.from_numpy(self.steps),
            counts=torch.from_numpy(self.counts),
            start=torch.from_numpy(self.start),
            end=torch.from_numpy(self.end),
            library=torch.from_numpy(library.astype(np.float32)),
            cell_pages=cell_pages,
        )


def _pack(m: sp.csr_matrix, size: int):
    """Pages of one row block (sorted, duplicate-free CSR): steps, counts, start, end and the
    number of pages of each row. Vectorised over all entries; no per-row loop."""
    n_rows = m.shape[0]
    nnz_row = np.diff(m.indptr)
    row = np.repeat(np.arange(n_rows), nnz_row)
    cols = m.indices.astype(np.int64)
    previous = np.empty_like(cols)
    previous[1:] = cols[:-1]
    first = m.indptr[:-1][nnz_row > 0]  # the first entry of each non-empty row
    previous[first] = 0
    step = cols - previous
    bridges = np.maximum(step - 1, 0) // MAX_STEP  # zero entries inserted before this one
    length = nnz_row + np.bincount(row, weights=bridges, minlength=n_rows).astype(np.int64)
    pages = -(-length // size)
    first_page = np.cumsum(pages) - pages
    row_base = first_page * size  # first slot of each row
    # slot of each real entry: its row's base + its position in the row, bridges included
    taken = np.cumsum(bridges + 1) - 1
    row_taken = np.repeat(taken[first] - bridges[first], nnz_row[nnz_row > 0])
    slot = np.repeat(row_base, nnz_row) + taken - row_taken
    n_slots = int(pages.sum()) * size
    steps = np.zeros(n_slots, np.uint8)
    counts = np.zeros(n_slots, m.data.dtype)
    column = np.zeros(n_slots, np.int64)
    filled = np.zeros(n_slots, bool)  # slots holding an entry or a bridge; the rest is filler
    bridged = np.flatnonzero(bridges)
    if len(bridged):  # rare: bridge slots sit just before their entry
        k = bridges[bridged]
        back = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)  # 0..k-1 per entry
        at = np.repeat(slot[bridged] - k, k) + back
        steps[at] = MAX_STEP
        column[at] = np.repeat(previous[bridged], k) + (back + 1) * MAX_STEP
        filled[at] = True
    steps[slot] = step - bridges * MAX_STEP
    counts[slot] = m.data
    column[slot] = cols
    filled[slot] = True
    # trailing filler keeps the column of the row's last entry; pages read their bounds
    last = np.maximum.accumulate(np.where(filled, np.arange(n_slots), 0))
    end = column[last].reshape(-1, size)[:, -1]
    start = np.zeros(len(end), np.int64)
    start[1:] = end[:-1]
    start[first_page[pages > 0]] = 0  # a row's first page starts at 0
    return (
        steps.reshape(-1, size),
        counts.reshape(-1, size),
        start.astype(np.int32),
        end.astype(np.int32),
        pages,
    )
