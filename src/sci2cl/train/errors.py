"""Why training stopped early, as errors the CLI reports in one line."""

from __future__ import annotations

from pathlib import Path

from sci2cl.errors import Sci2clError


class TrainingDiverged(Sci2clError):
    """A loss term became NaN or infinite: the message names the epoch and the term."""

    def __init__(self, epoch: int, stage: str, term: str, value: float) -> None:
        self.epoch, self.stage, self.term, self.value = epoch, stage, term, value
        super().__init__(
            f"training diverged: {stage} loss term '{term}' is {value} at epoch {epoch}; "
            "try a lower --lr, or --precision 32"
        )


class TrainingInterrupted(Sci2clError):
    """SIGTERM arrived during training; ``checkpoint`` holds the progress, if one was asked
    for. Schedulers expect a process stopped by SIGTERM to exit with 128 + 15."""

    exit_code = 143

    def __init__(self, epoch: int, checkpoint: Path | None) -> None:
        self.epoch, self.checkpoint = epoch, checkpoint
        saved = (
            f"progress saved to {checkpoint}; rerun with --resume to continue"
            if checkpoint is not None
            else "nothing saved (no --checkpoint)"
        )
        super().__init__(f"training stopped by SIGTERM at epoch {epoch}; {saved}")
