"""Crash-safe file writes: write under a temporary name, fsync, rename into place, fsync the directory.

A reader (or a re-run after `kill -9`) sees either the old file or the complete new one,
never a torn one; the directory fsync makes the rename itself survive a power loss.

The temporary name is unique per writer (`.NAME.tmp-PID-RANDOM`): two writers of the same
output — a re-run beside the orphan of a killed run, a requeued SLURM task beside a late
original — never share one file. Inside a task (`task_scope`, set by the executor, which
also holds the task's lock) every temporary name is first appended to the task's journal,
so the next start of that task deletes exactly the leftovers of its killed predecessors;
and every published path is recorded, so the task's marker can list its outputs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


class PublishError(OSError):
    """Writing or renaming an output failed (disk full, file too large, a directory gone):
    the message names the file; nothing was published under its name."""


class _TaskScope:
    def __init__(self, journal: Path):
        self.journal = journal
        self.published: list[Path] = []


_scope: _TaskScope | None = None


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def fsync_directory(directory: str | Path) -> None:
    """Make a rename (or a create/unlink) in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, path: Path) -> None:
    """Rename `tmp` (complete and fsynced) to `path`, then fsync the directory."""
    try:
        os.replace(tmp, path)
        fsync_directory(path.parent)
    except OSError as exc:
        raise PublishError(exc.errno, f"cannot publish {path}: {exc.strerror or exc}") from None
    if _scope is not None:
        _scope.published.append(path)


def _journal(tmp: Path) -> None:
    if _scope is not None:
        _scope.journal.parent.mkdir(parents=True, exist_ok=True)
        with open(_scope.journal, "a", encoding="utf-8") as handle:
            handle.write(f"{tmp}\n")  # before the file exists: a kill now leaves nothing unlisted


@contextlib.contextmanager
def task_scope(journal: str | Path) -> Iterator[list[Path]]:
    """Run one task's writes: delete the temporaries listed in `journal` by earlier (killed)
    starts of this task, journal the new ones, and yield the list of paths published.

    The caller must hold the task's lock: only then can no other writer own those leftovers."""
    global _scope
    journal = Path(journal)
    remove_journaled_temporaries(journal)
    previous, _scope = _scope, _TaskScope(journal)
    try:
        yield _scope.published
    finally:
        _scope = previous


def remove_journaled_temporaries(journal: Path) -> list[str]:
    """Delete every temporary file or directory listed in `journal`, then empty it."""
    if not journal.is_file():
        return []
    removed = []
    for line in journal.read_text(encoding="utf-8").splitlines():
        target = Path(line)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            removed.append(line)
        elif target.exists():
            target.unlink(missing_ok=True)
            removed.append(line)
    journal.unlink(missing_ok=True)
    return removed


def journal_temporary(path: Path) -> None:
    """For writers that build a temporary directory themselves (the tokenizer): list it in the
    current task's journal before creating it."""
    _journal(path)


def describe_os_error(exc: OSError) -> str:
    """One line: which file and what went wrong ('No space left on device', 'File too large')."""
    if isinstance(exc, PublishError):
        reason, where = str(exc.strerror), None
    else:
        reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
        where = exc.filename
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        reason = f"{reason} (disk full or file size limit)"
    return f"{where}: {reason}" if where else reason


def _named(exc: BaseException, path: Path) -> BaseException:
    """An OSError from writing into an open handle carries no file name: give it the output's."""
    if isinstance(exc, OSError) and not isinstance(exc, PublishError) and exc.filename is None:
        return PublishError(exc.errno, f"cannot write {path}: {exc.strerror or exc}")
    return exc


@contextlib.contextmanager
def write_atomically(path: str | Path, mode: str = "wb") -> Iterator:
    """Open a temporary file; on clean exit fsync it, rename it to `path` and fsync the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    _journal(tmp)
    try:
        try:
            with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            named = _named(exc, path)
            if named is exc:
                raise
            raise named from None
        publish(tmp, path)
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
        try:
            self._finish()
        except BaseException as exc:
            self._fail(exc)
            raise
        self._context.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        """Discard the temporary file (the exception itself is the caller's to raise)."""
        with contextlib.suppress(BaseException):
            self._context.__exit__(type(exc), exc, exc.__traceback__)

    def _fail(self, exc: BaseException) -> None:
        """Discard the file; an unnamed OSError is raised again naming it (else `exc` goes on)."""
        self.abort(exc)
        named = _named(exc, self.path)
        if named is not exc:
            raise named from None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self._fail(exc)


def write_json_atomically(path: str | Path, data, indent: int | None = 2) -> None:
    with write_atomically(path, "w") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=indent, sort_keys=False)
        handle.write("\n")
