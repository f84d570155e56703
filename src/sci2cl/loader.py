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

from sci2cl.data import MODALITIES, MultiomeBatch, MultiomeDataset

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

    def __call__(
        self, rows: np.ndarray, target_features: int | None = None
    ) -> Iterator[MultiomeBatch]:
        """Batches over ``rows``, in order; ``target_features`` adds the ZINB target on that
        many features, else batches are encode-only."""
        rows = np.asarray(rows, dtype=np.int64)
        chunks = [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        pin = self.device.type == "cuda" and not self.resident
        gathered = ({m: self.stores[m].gather(c, pin) for m in MODALITIES} for c in chunks)
        if not self.resident:
            gathered = prefetched(gathered, PREFETCH_DEPTH)
        for chunk, parts in zip(chunks, gathered, strict=True):
            parts = {m: part.to(self.device) for m, part in parts.items()}
            yield self.data.batch_from(chunk, parts, self.scale, target_features)


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
