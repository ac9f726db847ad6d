"""The exactly-once audit checker on real audit files: it fails on a step logged twice, on a
repeated sample and on a skipped one; a resumed start drops the records it redoes."""

import json

import pytest

from pipeline.train.audit import AuditError, SampleAudit, check_exactly_once, read_audit
from pipeline.train.sampler import ResumableSampler

N = 24  # blocks; global batch 8 (2 micro × 2 accum × 2 ranks): an epoch is 3 steps


def write_run(run, steps, resume_at=None, world=2):
    """Audit files as the trainer writes them, from the real sampler; a resume at `resume_at`
    redoes the steps after it (as after a kill -9 that lost them)."""
    audits = [SampleAudit(run, rank, 0, world) for rank in range(world)]
    samplers = [ResumableSampler(N, 2, 2, rank, world, seed=3) for rank in range(world)]
    for step in range(1, steps + 1):
        for audit, sampler in zip(audits, samplers):
            audit.record(step, sampler.next_step(), ["0x1p+0"] * 2)
    for audit in audits:
        audit.close()
    if resume_at is not None:
        audits = [SampleAudit(run, rank, resume_at, world) for rank in range(world)]
        samplers = [
            ResumableSampler(N, 2, 2, rank, world, seed=3, consumed_samples=resume_at * 8) for rank in range(world)
        ]
        for step in range(resume_at + 1, steps + 1):
            for audit, sampler in zip(audits, samplers):
                audit.record(step, sampler.next_step(), ["0x1p+0"] * 2)
        for audit in audits:
            audit.close()


def test_a_clean_run_passes(tmp_path):
    write_run(tmp_path, 7)
    assert check_exactly_once(read_audit(tmp_path, 2), N) == 2


def test_a_resume_that_redoes_steps_keeps_each_step_once(tmp_path):
    write_run(tmp_path, 7, resume_at=2)
    assert sorted(read_audit(tmp_path, 2)) == list(range(1, 8))


def test_a_step_logged_twice_fails(tmp_path):
    """What the old trainer left after a kill -9: the redone steps appended a second time."""
    write_run(tmp_path, 5)
    path = tmp_path / "audit" / "rank0.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + lines[3:]) + "\n")
    with pytest.raises(AuditError, match="step 4 logged twice"):
        read_audit(tmp_path, 2)


def test_a_repeated_or_skipped_sample_fails(tmp_path):
    write_run(tmp_path, 6)
    for rank in range(2):
        path = tmp_path / "audit" / f"rank{rank}.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        records[1]["samples"][0][0] = records[0]["samples"][0][0]  # a sample used twice, another never
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(AuditError, match="epoch 0: not every sample exactly once"):
        check_exactly_once(read_audit(tmp_path, 2), N)


def test_legs_of_different_world_sizes_are_checked_over_their_union(tmp_path):
    """2 ranks to step 4 (a kill -9 after step 4 lost it: the checkpoint is step 3), resumed at 3 on
    1 rank to step 6, then on 4 ranks to step 8 — the global batch (8) kept by grad accum. Rank 0
    cuts rank 1's file back too (rank 1 is gone in the 1-rank leg), so step 4 is logged once."""
    legs = ((2, 2, 0, 4), (1, 4, 3, 6), (4, 1, 6, 8))  # (world, accum, resume step, last step); micro 2
    for world, accum, resume_at, last in legs:
        audits = [SampleAudit(tmp_path, rank, resume_at, world) for rank in range(world)]
        samplers = [
            ResumableSampler(N, 2, accum, rank, world, seed=3, consumed_samples=resume_at * 8) for rank in range(world)
        ]
        for step in range(resume_at + 1, last + 1):
            for audit, sampler in zip(audits, samplers):
                audit.record(step, sampler.next_step(), ["0x1p+0"] * accum)
        for audit in audits:
            audit.close()
    audit = read_audit(tmp_path)
    assert sorted(audit) == list(range(1, 9))
    assert [len(audit[step]["losses"]) for step in audit] == [2, 2, 2, 1, 1, 1, 4, 4]
    sampler = ResumableSampler(N, 8, 1, 0, 1, seed=3)  # the whole global batch as one micro batch of one rank
    assert [audit[step]["stream"] for step in audit] == [sampler.next_step()[0].tolist() for _ in range(8)]
    assert check_exactly_once(audit, N) == 2


def test_a_step_missing_a_rank_of_its_leg_fails(tmp_path):
    write_run(tmp_path, 4)
    path = tmp_path / "audit" / "rank1.jsonl"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:3]))
    with pytest.raises(AuditError, match="step 4: logged by ranks \\[0\\], expected all 2"):
        read_audit(tmp_path)
