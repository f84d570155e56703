"""Mini-batches on the training device: the packed counts live on the accelerator when they
fit (batches are then sliced there), else a background thread gathers the next batches'
pages into pinned host memory while the device works. Either way only packed bytes move and
decoding runs on the device without host syncs; on the CPU the same code runs in-line."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from queue import Full, Queue
from typing import TypeVar

import numpy as np
import torch

from sci2cl.data import MODALITIES, MultiomeBatch, MultiomeDataset, decode
from sci2cl.packed import PackedRows

RESIDENT_SHARE = 0.25  # copy the counts to an accelerator when they take <= this of its free memory
PREFETCH_DEPTH = 3  # batches gathered ahead by the background thread

T = TypeVar("T")


class BatchLoader:
    """Batches of ``data`` decoded on ``device``; call it with the rows to iterate."""

    def __init__(self, data: MultiomeDataset, device: torch.device | str, batch_size: int):
        self.data = data
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.resident = self.device.type == "cpu" or fits_on(self.device, data)
        self.stores = {
            m: data.packed[m].to(self.device) if self.resident else data.packed[m]
            for m in MODALITIES
        }
        self.scale = {
            m: torch.from_numpy(data.transforms[m].scale).to(self.device) for m in MODALITIES
        }
        self.sample = None if data.sample is None else torch.from_numpy(data.sample)

    def __call__(
        self,
        rows: np.ndarray,
        target_features: int | None = None,
        shuffle: bool = False,
        rng: np.random.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[MultiomeBatch]:
        """Batches over ``rows`` (shuffled with ``rng`` when asked); ``target_features``
        adds the ZINB target on that many features, else batches are encode-only."""
        order = rng.permutation(rows) if shuffle and rng is not None else np.asarray(rows)
        stop = len(order) - (len(order) % self.batch_size if drop_last else 0)
        chunks = [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]
        chunks = [np.asarray(c, dtype=np.int64) for c in chunks if len(c)]
        pin = self.device.type == "cuda" and not self.resident
        gathered = ({m: self.stores[m].gather(c, pin) for m in MODALITIES} for c in chunks)
        if not self.resident:
            gathered = prefetched(gathered, PREFETCH_DEPTH)
        for rows_, parts in zip(chunks, gathered, strict=True):
            yield self._decode(rows_, parts, target_features)

    def _decode(
        self, rows: np.ndarray, parts: dict[str, PackedRows], target_features: int | None
    ) -> MultiomeBatch:
        out = {}
        for m in MODALITIES:
            t = self.data.transforms[m]
            part = parts[m].to(self.device)
            out[m] = decode(
                part, self.scale[m], t.target_sum, self.data.n_features(m), target_features
            )
        index = torch.from_numpy(rows)
        sample = (
            None if self.sample is None else self.sample[index].to(self.device, non_blocking=True)
        )
        return MultiomeBatch(
            out["rna"], out["atac"], index.to(self.device, non_blocking=True), sample
        )


def fits_on(device: torch.device, data: MultiomeDataset) -> bool:
    """Whether the packed counts take at most RESIDENT_SHARE of the device's free memory."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return sum(p.nbytes for p in data.packed.values()) <= RESIDENT_SHARE * free


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetched(items: Iterable[T], depth: int) -> Iterator[T]:
    """``items`` produced by a background thread, up to ``depth`` ahead, in order. An error
    in the thread is raised here; leaving the loop early stops the thread."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.05)
                return True
            except Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            put(_Failure(err))

    thread = threading.Thread(target=work, name="sci2cl-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()  # the thread sees it within one put timeout and returns
        thread.join()
