"""Crash-safe file writes: write under a temporary name, fsync, rename into place.

A reader (or a re-run after `kill -9`) sees either the old file or the complete new one,
never a torn one. Temporary names carry the pid so two writers never share one.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def write_atomically(path: str | Path, mode: str = "wb") -> Iterator:
    """Open a temporary file; on clean exit fsync and rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json_atomically(path: str | Path, data, indent: int | None = 2) -> None:
    with write_atomically(path, "w") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=indent, sort_keys=False)
        handle.write("\n")


def remove_stale_temporaries(directory: str | Path) -> int:
    """Delete `.NAME.tmp-PID` leftovers of killed writers; returns how many."""
    removed = 0
    directory = Path(directory)
    if not directory.exists():
        return 0
    for tmp in directory.rglob(".*.tmp-*"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            tmp.unlink()
            removed += 1
    return removed
