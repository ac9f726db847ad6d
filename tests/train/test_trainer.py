"""End-to-end training with real DeepSpeed: 2 ranks on CPU (gloo), a tiny GPT-2, real shards."""

import json
import math
import os
import signal
import subprocess
import time

import pytest

from pipeline.train.audit import check_exactly_once
from pipeline.train.checkpoint import read_latest
from pipeline.train.hooks import ENV_SAVE_PAUSE_S, ENV_SIGNAL_AT_STEP
from tests.helpers.train_fixtures import (
    REPO,
    audit_steps,
    kill_tree,
    live_ranks,
    make_packed_data,
    read_jsonl,
    run_training,
    train_command,
    train_env,
    write_run_configs,
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
    assert check_exactly_once(audit, num_samples) >= 1  # raises AuditError on a repeated or skipped sample


@pytest.mark.parametrize("zero,stop_at", [("zero2", 5), ("zero3", 8)])
def test_bitwise_resume_after_sigusr1(tmp_path, data, zero, stop_at):
    """Interrupted at `stop_at` (SIGUSR1 on rank 0 only; the ranks agree by all-reduce), resumed:
    per-step, per-rank, per-micro-batch losses equal the uninterrupted run's bit for bit (fp32,
    dropout on), and the data order crosses the epoch boundary without loss or repetition."""
    config = write_run_configs(tmp_path / "cfg")
    ds = f"configs/deepspeed/{zero}.json"
    full = run_training(config, data.root, tmp_path / "full", deepspeed_config=ds)
    assert_ok(full)
    cut = run_training(
        config, data.root, tmp_path / "cut", deepspeed_config=ds, hooks={ENV_SIGNAL_AT_STEP: str(stop_at)}
    )
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


def test_zero1_deepspeed_launcher_trains_resumes_refuses_mismatches(tmp_path, data):
    """`deepspeed --num_gpus 2`: train 10 steps (loss falls), extend to 14 (resume), rerun (already
    complete, exit 0), then refuse a world size that cannot keep the global batch, and different data."""
    config = write_run_configs(
        tmp_path / "cfg",
        max_steps=10,
        eval_interval=5,
        tensorboard=True,
        lr=1.0e-2,
        checkpoint_interval_steps=4,
        keep_last=1,
    )
    run = tmp_path / "run"
    first = run_training(config, data.root, run, launcher="deepspeed", deepspeed_config="configs/deepspeed/zero1.json")
    assert_ok(first)
    assert "ZeRO stage 1" in first.stdout and "held-out perplexity" in first.stdout
    records = train_records(run)
    assert records[-1]["loss"] < records[0]["loss"] - 0.5  # learnable stream: ln(96)=4.56 → well below
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "eval"]
    assert [e["step"] for e in evals] == [5, 10] and evals[1]["val_loss"] < evals[0]["val_loss"]
    assert evals[1]["val_tokens"] == 32 * 63
    for key in ("tokens_per_s", "samples_per_s", "step_time_s", "data_wait_share", "eta_s", "grad_norm", "epoch"):
        assert records[-1][key] is not None
    assert records[-1]["mfu"] is None  # CPU: no known peak unless peak_tflops_per_device is set
    # saves at 4, 5 (new best), 8 and 10 (end, new best); keep_last=1 and the best is the last
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_00000010"]
    assert (run / "hf_config" / "config.json").is_file() and (run / "tokenizer" / "README.txt").is_file()
    assert list((run / "tb").iterdir())
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2 and info["global_batch"] == 16 and info["total_steps"] == 10

    more = run_training(
        config, data.root, run, "max_steps=14", launcher="deepspeed", deepspeed_config="configs/deepspeed/zero1.json"
    )
    assert_ok(more)
    assert "resuming at step 10" in more.stdout
    assert [r["step"] for r in train_records(run)] == list(range(1, 15))

    again = run_training(config, data.root, run, "max_steps=14", deepspeed_config="configs/deepspeed/zero1.json")
    assert_ok(again)
    assert "already complete at step 14" in again.stdout

    three_ranks = run_training(
        config, data.root, run, "max_steps=20", nproc=3, deepspeed_config="configs/deepspeed/zero1.json"
    )
    assert three_ranks.returncode != 0  # global batch 16 cannot be split over 3 ranks (test_elastic_resume: 2→1→3→2)
    assert "16 is not a multiple of 3" in three_ranks.stdout
    assert "Possible world sizes for this run: [1, 2, 4, 8, 16]" in three_ranks.stdout

    other = make_packed_data(tmp_path / "other", train_blocks=TRAIN_BLOCKS, seed=1, tokenizer_tag="other")
    refused = run_training(config, other.root, run, "max_steps=20", deepspeed_config="configs/deepspeed/zero1.json")
    assert refused.returncode != 0
    assert "different data manifest" in refused.stdout and "--allow-data-change" in refused.stdout
    assert read_latest(run / "checkpoints") == "step_00000014"  # nothing was touched


def test_kill_9_during_save_resumes_from_previous_complete_checkpoint(tmp_path, data):
    config = write_run_configs(tmp_path / "cfg", max_steps=8, checkpoint_interval_steps=4, eval_interval=100)
    run = tmp_path / "run"
    assert_ok(run_training(config, data.root, run, "max_steps=4"))
    assert read_latest(run / "checkpoints") == "step_00000004"

    command = train_command(config, data.root, run)
    proc = subprocess.Popen(
        command,
        env=train_env(**{ENV_SAVE_PAUSE_S: "120"}),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "step_00000008: files written, pausing" in line:
                break
        # DeepSpeed's files for step 8 are on disk, but the commit (`latest`) has not happened
        assert (run / "checkpoints" / "step_00000008" / "mp_rank_00_model_states.pt").is_file(), "".join(seen)
        assert read_latest(run / "checkpoints") == "step_00000004"
    finally:
        kill_tree(proc.pid)  # the launcher and both ranks
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    resumed = run_training(config, data.root, run, "--resume", str(run / "checkpoints" / "step_00000004"))
    assert_ok(resumed)
    assert "step_00000008: not committed (no valid COMMITTED record" in resumed.stdout
    # moved aside, never deleted: DeepSpeed's files of the interrupted save are still there
    assert (run / "checkpoints" / ".incomplete" / "step_00000008" / "mp_rank_00_model_states.pt").is_file()
    assert "resuming at step 4" in resumed.stdout
    assert read_latest(run / "checkpoints") == "step_00000008"
    assert [r["step"] for r in train_records(run)] == list(range(1, 9))  # steps 5–8 logged once


@pytest.mark.parametrize(
    "zero,overrides",
    [
        ("zero2-offload", []),
        ("zero3-offload", []),
        ("zero3", ["precision=bf16"]),
    ],
)
def test_offload_and_bf16_train_save_resume(tmp_path, data, zero, overrides):
    config = write_run_configs(tmp_path / "cfg", max_steps=4, eval_interval=100, audit_samples=False)
    run = tmp_path / "run"
    first = run_training(config, data.root, run, *overrides, deepspeed_config=f"configs/deepspeed/{zero}.json")
    assert_ok(first)
    precision = "bf16" if "precision=bf16" in overrides else "fp32"
    assert f"{precision}, ZeRO stage" in first.stdout
    resumed = run_training(
        config, data.root, run, "max_steps=6", *overrides, deepspeed_config=f"configs/deepspeed/{zero}.json"
    )
    assert_ok(resumed)
    assert "resuming at step 4" in resumed.stdout
    assert read_latest(run / "checkpoints") == "step_00000006"
    losses = [r["loss"] for r in train_records(run)]
    assert len(losses) == 6 and all(loss is not None and math.isfinite(loss) for loss in losses), losses
    assert losses[-1] < losses[0] - 0.05, losses  # it learns (inf, NaN or a stuck loss fail)


def test_sigterm_to_every_rank_twice_saves_once_and_resumes(tmp_path, data):
    """A real external SIGTERM (as SLURM sends before preemption), repeated while the ranks stop."""

    config = write_run_configs(tmp_path / "cfg", max_steps=400, eval_interval=1000, audit_samples=False)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        train_command(config, data.root, run),
        env=train_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").exists() or len(train_records(run)) < 3:
            assert time.monotonic() < deadline and proc.poll() is None, "training did not start"
            time.sleep(0.2)
        ranks = live_ranks(proc.pid)
        assert len(ranks) == 2
        for _ in range(2):
            for rank in ranks:
                rank.send_signal(signal.SIGTERM)
            time.sleep(0.05)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "exitcode  : 75" in output, output[-3000:]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "preempted" and 3 <= status["step"] < 400
    assert read_latest(run / "checkpoints") == f"step_{status['step']:08d}"
    resumed = run_training(config, data.root, run, f"max_steps={status['step'] + 2}")
    assert_ok(resumed)
    assert f"resuming at step {status['step']}" in resumed.stdout
