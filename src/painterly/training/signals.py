"""Stopping a run on SIGINT or SIGTERM: finish the current step, checkpoint, exit 130 or 143.

While :class:`StopSignals` is active, the first SIGINT (Ctrl-C) or SIGTERM (``kill``, a
scheduler's pre-emption) only records itself; the training loop looks after each step
(:meth:`StopSignals.requested`), writes a checkpoint and raises :class:`TrainingInterrupted`,
which the CLI prints as one line and turns into the shell's exit status for that signal. A second
signal stops at once, without a checkpoint (the last one written stays intact).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

#: The signals that stop a run cleanly, and their names in messages.
STOP_SIGNALS = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by a signal; ``exit_code`` is 128 + the signal number (130, 143)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + int(signum)


class StopSignals:
    """A context manager: SIGINT/SIGTERM set :attr:`received` instead of stopping the process
    (in the main thread only; elsewhere it does nothing). The old handlers come back on exit."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # a second signal: stop now, no checkpoint
            raise TrainingInterrupted(f"{STOP_SIGNALS[signum]} received again: stopped without a "
                                      f"new checkpoint (the last one written is intact)", signum)
        self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._old[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old.clear()

    @property
    def name(self) -> str:
        return STOP_SIGNALS.get(self.received, "a signal") if self.received is not None else ""
