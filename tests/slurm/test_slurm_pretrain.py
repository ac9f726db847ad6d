"""The real trainer (launch/pretrain.py, DeepSpeed, 2 ranks on CPU) under slurm/pretrain.sbatch:
signalled mid-run it checkpoints, is requeued, resumes, and ends with exactly the final loss
of an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.slurm_cluster import SlurmCluster, slurm_cluster  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

MAX_STEPS = 60
SIGNAL_AFTER_STEP = 5


def train_config(tmp_path: Path) -> Path:
    """The tiny CPU model, long enough to be signalled mid-run, a loss record every step."""
    path = tmp_path / "train.yaml"
    path.write_text(
        "model_config: configs/model/tiny.yaml\n"
        "deepspeed_config: configs/deepspeed/zero2.json\n"
        "precision: fp32\n"
        "micro_batch_size: 4\n"
        f"max_steps: {MAX_STEPS}\n"
        "warmup_steps: 5\n"
        "log_interval: 1\n"
        "eval_interval: 100000\n"
        "eval_max_blocks: 16\n"
        "checkpoint_interval_steps: 100000\n"
        "tensorboard: false\n"
    )
    return path


def train_losses(run: Path) -> dict[int, float]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return {}
    # Read while rank 0 appends: only complete (newline-terminated) lines count.
    records = [json.loads(line) for line in path.read_text().split("\n")[:-1] if line.strip()]
    return {r["step"]: r["loss"] for r in records if r.get("kind") == "train"}


def submit(cluster: SlurmCluster, tmp_path: Path, prepared: Path, name: str) -> tuple[str, Path, Path]:
    run, log = tmp_path / name, tmp_path / f"{name}.log"
    job = cluster.sbatch(
        "--ntasks=2",
        "--cpus-per-task=1",
        f"--chdir={REPO}",
        f"--output={log}",
        "slurm/pretrain.sbatch",
        "--config",
        str(train_config(tmp_path)),
        "--data",
        str(prepared),
        "--output",
        str(run),
    )
    return job, run, log


def submit_with_submit_sh(cluster: SlurmCluster, tmp_path: Path, prepared: Path, name: str) -> tuple[str, Path, Path]:
    """The same job through slurm/submit.sh --no-prepare (CPU ranks: --gpus-per-node 0)."""
    run, logs = tmp_path / name, tmp_path / "logs"
    stdout = cluster.run(
        "bash",
        REPO / "slurm" / "submit.sh",
        "--no-prepare",
        "--data",
        prepared,
        "--run",
        run,
        "--train-config",
        train_config(tmp_path),
        "--gpus-per-node",
        "0",
        "--tasks-per-node",
        "2",
        "--cpus-per-task",
        "1",
        "--time",
        "30:00",
        "--log-dir",
        logs,
    )
    (line,) = stdout.splitlines()
    name_, job = line.split()
    assert name_ == "pretrain"
    return job, run, logs / f"pretrain-{job}.out"


def test_signalled_training_resumes_to_the_same_final_loss(slurm_cluster, prepared, tmp_path):
    reference_job, reference_run, reference_log = submit_with_submit_sh(slurm_cluster, tmp_path, prepared, "reference")
    (record,) = slurm_cluster.wait_finished(reference_job, timeout=300)
    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "0", record
    assert record["NumTasks"] == "2" and record["TimeLimit"] == "00:30:00", record
    assert "training finished (exit 0)" in reference_log.read_text()
    reference = train_losses(reference_run)
    assert max(reference) == MAX_STEPS

    job, run, log = submit(slurm_cluster, tmp_path, prepared, "interrupted")
    slurm_cluster.wait_until(lambda: max(train_losses(run), default=0) >= SIGNAL_AFTER_STEP, 300, "training steps")
    slurm_cluster.run("scancel", "--batch", "--signal=USR1", job)
    (record,) = slurm_cluster.wait_finished(job, timeout=300)

    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "1", record
    text = log.read_text()
    assert "received SIGUSR1" in text and "training checkpointed (exit 75" in text and "requeueing job" in text
    assert "SLURM_RESTART_COUNT=1" in text and text.count("training finished (exit 0)") == 1
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    losses = train_losses(run)
    assert sorted(losses) == list(range(1, MAX_STEPS + 1))
    assert losses[MAX_STEPS] == reference[MAX_STEPS]
    assert losses == reference  # every step after the resume too, not only the last
