"""Crash-safe file writes: write under a temporary name, fsync, rename into place.

A reader (or a re-run after `kill -9`) sees either the old file or the complete new one,
never a torn one. The temporary name is fixed (`.NAME.tmp`), not per process: every output
has exactly one writer (the task that owns it), and the re-run of a killed task writes the
same name again, so it reclaims the leftover instead of leaving it beside the output forever.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


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


class AtomicFileWriter:
    """Base of streaming writers whose file appears under its name only when complete.

    Subclasses write to `self.sink` and implement `_finish()` (flush what they buffer, close
    their encoder); `close()` then commits, an exception inside `with` discards the file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._context = write_atomically(self.path, "wb")
        self.sink = self._context.__enter__()

    def _finish(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._finish()
        self._context.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        self._context.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)


def write_json_atomically(path: str | Path, data, indent: int | None = 2) -> None:
    with write_atomically(path, "w") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=indent, sort_keys=False)
        handle.write("\n")
