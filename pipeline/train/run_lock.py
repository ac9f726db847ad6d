"""One trainer per run directory: an exclusive lock on RUN/.trainer.lock held by rank 0.

`flock(LOCK_EX | LOCK_NB)` on an open file: the kernel releases it when the process ends however
it ends (kill -9 included), so a stale lock cannot block a requeued job. The file holds the
holder's host, pid and SLURM job id, for the message the second trainer prints. On NFS, Linux
implements flock with NFS byte-range locks, so the lock also holds across nodes (NFSv4, or v3
with lockd); on a filesystem without locking the acquire fails loudly instead of passing.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_FILE = ".trainer.lock"


class RunInUse(RuntimeError):
    pass


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._handle = None

    def acquire(self) -> None:
        """Take the lock or raise RunInUse naming the holder. Keep the object alive for the run."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise RunInUse(
                f"{self.path.parent}: in use by another trainer ({describe(holder)}); one trainer per run "
                f"directory — wait for it to end, stop it, or use another --output"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder_info()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the flock
            self._handle = None


def holder_info() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def describe(holder_text: str) -> str:
    try:
        info = json.loads(holder_text)
    except ValueError:
        return "holder unknown"
    job = f", SLURM job {info['slurm_job_id']}" if info.get("slurm_job_id") else ""
    return f"host {info.get('host')} pid {info.get('pid')}{job}, since {info.get('since')}"
