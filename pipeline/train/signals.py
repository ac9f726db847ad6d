"""Stop requests: SIGTERM / SIGUSR1 set a flag; ranks agree at the next vote.

Installed first thing (`install()` at the top of launch/pretrain.py and of the `train` command,
before torch, DeepSpeed, configs or the rendezvous are touched): a signal at any moment of
start-up is remembered, never the default "terminate". This module imports nothing heavy for
that reason. The trainer votes on the flag (all-reduce MAX) after the rendezvous, before the
first step and after every step, so every rank stops at the same point even when the scheduler
signalled only some of them: before the first step it exits 75 without a checkpoint (there is
nothing new to save), later it saves and exits 75.

The handler only sets a flag (no I/O, no torch calls: a signal can arrive mid-collective or
mid-save). Further signals while a save runs just set the flag again, so they are harmless.
"""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped on request (checkpoint saved if there was anything new); start me again
EXIT_ERROR = 2  # a clear error (bad input, config or state, the run directory in use), message on stderr


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


STOP = StopFlag()  # one per process: installed early, read by the trainer


def install() -> StopFlag:
    """Install the process's stop handlers (idempotent; re-installing keeps a flag already set)."""
    return STOP.install()
