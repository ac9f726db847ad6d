"""Stop requests: SIGTERM / SIGUSR1 set a flag; ranks agree at the step boundary.

The handler only sets a flag (no I/O, no torch calls: a signal can arrive mid-collective or
mid-save). Further signals while a save runs just set the flag again, so they are harmless.
At each step boundary the loop all-reduces the flag (MAX), so every rank stops at the same
step even when the scheduler signalled only some of them.
"""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: checkpoint saved, start me again to resume


class StopFlag:
    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> StopFlag:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def ignore_further(self) -> None:
        """After the stop checkpoint: ignore repeats. Python resets its own handlers to the default
        (terminate) during interpreter shutdown, so a repeated SIGTERM arriving then would turn the
        orderly exit 75 into a death by signal; SIG_IGN survives shutdown."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    @property
    def raised(self) -> bool:
        return self.signum is not None
