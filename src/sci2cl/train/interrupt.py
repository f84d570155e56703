"""SIGTERM during training: note it, so the trainer can checkpoint and stop cleanly."""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """While active (main thread only), SIGTERM sets ``requested`` instead of killing the
    process; the previous handler is restored on exit."""

    def __init__(self) -> None:
        self.requested = False
        self._installed = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)
            self._installed = False
