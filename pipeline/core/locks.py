"""Advisory file locks (`fcntl.flock`) that the kernel drops when their holder dies.

A lock lives as long as its open file: `kill -9`, an OOM kill or a node crash release it, so
a lock can never go stale. Lock files stay empty (who holds one is not written down: the
file would then differ from run to run inside an output that must be byte-identical) and are
never deleted (deleting a lock file someone waits on splits the lock in two). On a shared file system flock needs the file system's support
(NFSv4 and Lustre with `-o flock` have it; docs/slurm.md).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LockBusy(RuntimeError):
    """A non-blocking lock was held by another process."""


class FileLock:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    def holder(self) -> str:
        return f"lock {self.path} is held"

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return self._fd

    def try_acquire(self, shared: bool = False) -> bool:
        fd = self._open()
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def acquire(self, shared: bool = False, wait: bool = True, on_wait=None) -> None:
        """Take the lock; if someone else holds it, call `on_wait(holder)` and block until it
        is free (or raise LockBusy when `wait` is false)."""
        if self.try_acquire(shared):
            return
        if not wait:
            raise LockBusy(self.holder())
        if on_wait is not None:
            on_wait(self.holder())
        fcntl.flock(self._open(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __del__(self) -> None:
        self.release()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
