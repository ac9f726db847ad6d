"""End-to-end training with real DeepSpeed: 2 ranks on CPU (gloo), a tiny GPT-2, real shards."""
import json
import os
import signal
import subprocess
import time

import pytest

from pipeline.train.checkpoint import read_latest
from tests.train_fixtures import (
    audit_steps, make_packed_data, read_jsonl, run_training, train_command, train_env, write_run_configs, REPO,
)

pytestmark = pytest.mark.slow
TRAIN_BLOCKS = 120  # global batch 16 (4 micro × 2 accum × 2 ranks): an epoch is 7.5 steps


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_packed_data(tmp_path_factory.mktemp("data"), train_blocks=TRAIN_BLOCKS, val_blocks=37)


def train_records(run):
    return [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]


def assert_ok(result, code=0):
    assert result.returncode == code, result.stdout[-4000:]


def assert_each_sample_once_per_epoch(audit, num_samples):
    stream = [i for step in sorted(audit) for i in audit[step]["stream"]]
    full_epochs = len(stream) // num_samples
    assert full_epochs >= 1
    for epoch in range(full_epochs):
        assert sorted(stream[epoch * num_samples : (epoch + 1) * num_samples]) == list(range(num_samples))
    partial = stream[full_epochs * num_samples :]
    assert len(set(partial)) == len(partial)  # the started epoch repeats nothing either


@pytest.mark.parametrize("zero,stop_at", [("zero2", 5), ("zero3", 8)])
def test_bitwise_resume_after_sigusr1(tmp_path, data, zero, stop_at):
    """Interrupted at `stop_at` (SIGUSR1 on rank 0 only; the ranks agree by all-reduce), resumed:
    per-step, per-rank, per-micro-batch losses equal the uninterrupted run's bit for bit (fp32,
    dropout on), and the data order crosses the epoch boundary without loss or repetition."""
    config = write_run_configs(tmp_path / "cfg")
    ds = f"configs/deepspeed/{zero}.json"
    full = run_training(config, data.root, tmp_path / "full", deepspeed_config=ds)
    assert_ok(full)
    cut = run_training(config, data.root, tmp_path / "cut", f"debug_signal_at_step={stop_at}", deepspeed_config=ds)
    assert cut.returncode != 0  # torchrun reports a non-zero rank as failure (1); the ranks exit 75
    assert "exitcode  : 75" in cut.stdout and "stop signal" in cut.stdout, cut.stdout[-4000:]
    status = json.loads((tmp_path / "cut" / "status.json").read_text())
    assert status == {**status, "state": "preempted", "step": stop_at, "exit_code": 75}
    assert read_latest(tmp_path / "cut" / "checkpoints") == f"step_{stop_at:08d}"
    resumed = run_training(config, data.root, tmp_path / "cut", deepspeed_config=ds)
    assert_ok(resumed)
    assert f"resuming at step {stop_at}" in resumed.stdout

    reference, interrupted = audit_steps(tmp_path / "full"), audit_steps(tmp_path / "cut")
    assert sorted(interrupted) == sorted(reference) == list(range(1, 13))
    for step in reference:
        assert interrupted[step] == reference[step], f"step {step} differs"
    assert_each_sample_once_per_epoch(interrupted, TRAIN_BLOCKS)
    losses = [r["loss"] for r in train_records(tmp_path / "cut")]
    assert [r["step"] for r in train_records(tmp_path / "cut")] == list(range(1, 13))  # no duplicates
    assert losses == [r["loss"] for r in train_records(tmp_path / "full")]
