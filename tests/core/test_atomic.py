"""Atomic writes: unique temporaries per writer, the directory fsynced after every rename,
errors that name the output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.core import atomic
from pipeline.core.atomic import PublishError, write_atomically, write_json_atomically


def test_two_writers_of_one_output_never_share_a_temporary_file(tmp_path):
    path = tmp_path / "out.bin"
    first = write_atomically(path)
    second = write_atomically(path)
    a, b = first.__enter__(), second.__enter__()
    assert a.name != b.name and Path(a.name).parent == path.parent
    a.write(b"first")
    b.write(b"second")
    second.__exit__(None, None, None)  # the other writer's rename cannot take this one's file away
    first.__exit__(None, None, None)
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_every_rename_is_followed_by_an_fsync_of_its_directory(tmp_path, monkeypatch):
    # a spy on the real system calls (they still happen): the order is what a power loss needs
    calls: list[tuple[str, str]] = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src, dst):
        real_replace(src, dst)
        calls.append(("rename", str(Path(dst).parent)))

    def fsync(fd):
        real_fsync(fd)
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))

    monkeypatch.setattr(atomic.os, "replace", replace)
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    write_json_atomically(tmp_path / "a" / "x.json", {"x": 1})
    write_json_atomically(tmp_path / "b" / "y.json", {"y": 2})
    renames = [i for i, call in enumerate(calls) if call[0] == "rename"]
    assert len(renames) == 2
    for i in renames:
        assert calls[i + 1] == ("fsync", calls[i][1]), calls


def test_a_failed_write_names_the_output_and_publishes_nothing(tmp_path):
    path = tmp_path / "shard.bin"
    with pytest.raises(PublishError, match=r"cannot write .*shard\.bin"):
        with write_atomically(path) as handle:
            handle.write(b"x")
            raise OSError(28, "No space left on device")  # what a full disk raises from write()
    assert list(tmp_path.iterdir()) == []
