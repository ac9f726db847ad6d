"""Checkpoint commit records on real folders: what counts as committed, what is set aside (never
deleted), what `latest` may and may not decide, and the refusal to rewrite a committed tag."""

import json

import pytest

from pipeline.train.checkpoint import (
    COMMIT_FILE,
    CheckpointError,
    commit_problem,
    committed_tags,
    prune,
    read_latest,
    resume_choice,
    set_aside_uncommitted,
    tag_for,
    write_latest,
)


def make(ckpt, *steps, commit=True):
    for step in steps:
        tag = ckpt / tag_for(step)
        tag.mkdir(parents=True)
        (tag / "mp_rank_00_model_states.pt").write_bytes(b"x" * step)
        (tag / "trainer_state.json").write_text(json.dumps({"step": step}))
        if commit:
            files = {p.name: p.stat().st_size for p in tag.iterdir()}
            (tag / COMMIT_FILE).write_text(json.dumps({"tag": tag.name, "step": step, "files": files}))


def names(ckpt):
    return sorted(p.name for p in ckpt.glob("step_*"))


def test_prune_keeps_last_k_and_the_best(tmp_path):
    make(tmp_path, 10, 20, 30, 40)
    write_latest(tmp_path, tag_for(40))
    assert prune(tmp_path, keep_last=2, keep={tag_for(10)}) == [tag_for(20)]
    assert names(tmp_path) == [tag_for(10), tag_for(30), tag_for(40)]


def test_uncommitted_folders_are_moved_aside_never_deleted(tmp_path):
    make(tmp_path, 10, 20)
    make(tmp_path, 30, commit=False)
    write_latest(tmp_path, tag_for(20))
    moved = set_aside_uncommitted(tmp_path)
    assert [(tag, where.name) for tag, _, where in moved] == [(tag_for(30), tag_for(30))]
    assert (tmp_path / ".incomplete" / tag_for(30) / "mp_rank_00_model_states.pt").read_bytes() == b"x" * 30
    assert names(tmp_path) == [tag_for(10), tag_for(20)]
    make(tmp_path, 30, commit=False)  # interrupted again: a second copy, the first one kept
    set_aside_uncommitted(tmp_path)
    assert sorted(p.name for p in (tmp_path / ".incomplete").iterdir()) == [tag_for(30), tag_for(30) + ".1"]


@pytest.mark.parametrize("latest", [None, b"", b"\xff\xfe garbage \x00", b"step_99999999", b"../../etc"])
def test_missing_or_bad_latest_loses_nothing(tmp_path, latest):
    """The old trainer deleted every step_* folder when `latest` was missing or empty."""
    make(tmp_path, 10, 20)
    if latest is not None:
        (tmp_path / "latest").write_bytes(latest)
    assert set_aside_uncommitted(tmp_path) == []
    assert names(tmp_path) == [tag_for(10), tag_for(20)]
    assert read_latest(tmp_path) == tag_for(20)
    assert resume_choice(tmp_path, None) == (tmp_path, tag_for(20))


def test_truncated_file_uncommits_the_tag(tmp_path):
    make(tmp_path, 10, 20)
    (tmp_path / tag_for(20) / "mp_rank_00_model_states.pt").write_bytes(b"x" * 7)
    assert "7 bytes, the record says 20" in commit_problem(tmp_path / tag_for(20))
    assert committed_tags(tmp_path) == [tag_for(10)]
    assert resume_choice(tmp_path, None) == (tmp_path, tag_for(10))


def test_copied_record_does_not_commit_another_tag(tmp_path):
    make(tmp_path, 10)
    make(tmp_path, 20, commit=False)
    (tmp_path / tag_for(20) / COMMIT_FILE).write_text((tmp_path / tag_for(10) / COMMIT_FILE).read_text())
    assert "names tag" in commit_problem(tmp_path / tag_for(20))


def test_resume_from_an_older_tag_is_refused_when_newer_are_committed(tmp_path):
    make(tmp_path, 10, 20)
    with pytest.raises(CheckpointError, match="never rewritten.*--output NEW_RUN"):
        resume_choice(tmp_path, str(tmp_path / tag_for(10)))
    assert resume_choice(tmp_path, str(tmp_path / tag_for(20))) == (tmp_path, tag_for(20))
    other = tmp_path / "new_run" / "checkpoints"  # branching into a new run directory is fine
    assert resume_choice(other, str(tmp_path / tag_for(10))) == (tmp_path, tag_for(10))


def test_resume_from_an_uncommitted_tag_is_refused(tmp_path):
    make(tmp_path, 10, commit=False)
    with pytest.raises(CheckpointError, match="not a committed checkpoint"):
        resume_choice(tmp_path, str(tmp_path / tag_for(10)))


def test_prune_removes_the_universal_copy_with_its_tag(tmp_path):
    make(tmp_path, 10, 20, 30)
    make(tmp_path / "universal", 10, 20)  # converted copies, each with its own record
    assert prune(tmp_path, keep_last=2, keep=set()) == [tag_for(10)]
    assert names(tmp_path / "universal") == [tag_for(20)]


@pytest.mark.slow  # starts DeepSpeed's converter (~12 s)
def test_a_committed_universal_copy_is_reused_a_damaged_one_moved_aside(tmp_path):
    from pipeline.train import universal

    make(tmp_path, 10)
    make(tmp_path / "universal", 10)
    root, line = universal.convert(tmp_path, tmp_path / tag_for(10), source_world=2)
    assert root == tmp_path / "universal" and "reusing its universal copy" in line
    (tmp_path / "universal" / tag_for(10) / "mp_rank_00_model_states.pt").write_bytes(b"x")  # cut short
    # the source here is no DeepSpeed checkpoint: the converter fails, in one line naming the source
    with pytest.raises(CheckpointError, match=f"{tag_for(10)}: DeepSpeed's universal conversion failed .*resume on 2"):
        universal.convert(tmp_path, tmp_path / tag_for(10), source_world=2)
    assert (tmp_path / ".incomplete" / f"{tag_for(10)}.universal" / "mp_rank_00_model_states.pt").read_bytes() == b"x"
    assert not (tmp_path / "universal" / tag_for(10)).exists()
