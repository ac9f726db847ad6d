"""The real trainer (launch/pretrain.py, DeepSpeed ZeRO-2, tiny model, 2 ranks on CPU) under
slurm/pretrain.sbatch on a real SLURM cluster: a time-limit USR1, an outside `scontrol requeue`
and a partition preemption each end with the uninterrupted run's losses bit for bit; `scancel`
ends with a committed checkpoint and no requeue."""

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


@pytest.fixture(scope="module")
def reference(slurm_cluster, prepared, tmp_path_factory) -> dict[int, float]:
    """The uninterrupted run, through slurm/submit.sh --no-prepare: its loss at every step."""
    tmp_path = tmp_path_factory.mktemp("reference")
    job, run, log = submit_with_submit_sh(slurm_cluster, tmp_path, prepared, "reference")
    (record,) = slurm_cluster.wait_finished(job, timeout=300)
    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "0", record
    assert record["NumTasks"] == "2" and record["TimeLimit"] == "00:30:00", record
    assert "training finished (exit 0)" in log.read_text()
    losses = train_losses(run)
    assert sorted(losses) == list(range(1, MAX_STEPS + 1))
    return losses


def wait_for_steps(cluster: SlurmCluster, run: Path) -> None:
    cluster.wait_until(lambda: max(train_losses(run), default=0) >= SIGNAL_AFTER_STEP, 300, "training steps")


def assert_bitwise(run: Path, reference: dict[int, float]) -> None:
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    losses = train_losses(run)
    assert sorted(losses) == list(range(1, MAX_STEPS + 1))  # each step logged once
    assert losses == reference  # every step after the resume too, not only the last


def test_time_limit_usr1_resumes_to_the_same_losses(slurm_cluster, prepared, tmp_path, reference):
    """USR1 to the batch shell — what `--signal=B:USR1@300` delivers before the time limit — is
    forwarded to the ranks: checkpoint, exit 75, requeue, resume, the same losses bit for bit."""
    job, run, log = submit(slurm_cluster, tmp_path, prepared, "interrupted")
    wait_for_steps(slurm_cluster, run)
    slurm_cluster.run("scancel", "--batch", "--signal=USR1", job)
    (record,) = slurm_cluster.wait_finished(job, timeout=300)

    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "1", record
    text = log.read_text()
    assert "received SIGUSR1" in text and "training checkpointed (exit 75" in text and "requeueing job" in text
    assert "SLURM_RESTART_COUNT=1" in text and text.count("training finished (exit 0)") == 1
    assert_bitwise(run, reference)


def test_outside_requeue_resumes_to_the_same_losses(slurm_cluster, prepared, tmp_path, reference):
    """`scontrol requeue` by an operator: SLURM sends SIGTERM, the real ranks checkpoint and exit
    75, SLURM requeues, the trainer resumes by itself (no --resume) and ends bit for bit equal."""
    job, run, log = submit(slurm_cluster, tmp_path, prepared, "requeued")
    wait_for_steps(slurm_cluster, run)
    slurm_cluster.run("scontrol", "requeue", job)
    (record,) = slurm_cluster.wait_finished(job, timeout=300)

    assert record["JobState"] == "COMPLETED" and int(record["Restarts"]) == 1, record
    text = log.read_text()
    assert "SLURM_RESTART_COUNT=1" in text and "leaving the job to SLURM" in text
    assert_bitwise(run, reference)


def test_partition_preemption_resumes_to_the_same_losses(slurm_cluster, prepared, tmp_path, reference):
    """A `high` job needs the CPUs: the real trainer gets SIGTERM and the grace time, checkpoints,
    the script requeues it, and it resumes after the high job — the same losses bit for bit."""
    job, run, log = submit(slurm_cluster, tmp_path, prepared, "preempted")  # both CPUs
    wait_for_steps(slurm_cluster, run)
    marker = tmp_path / "high.done"
    urgent = slurm_cluster.sbatch(
        "--partition=high", "--ntasks=2", f"--output={tmp_path / 'high.log'}", f"--wrap=touch {marker}"
    )
    (urgent_record,) = slurm_cluster.wait_finished(urgent, timeout=300)
    assert urgent_record["JobState"] == "COMPLETED" and marker.exists()
    (record,) = slurm_cluster.wait_finished(job, timeout=300)

    assert record["JobState"] == "COMPLETED" and int(record["Restarts"]) == 1, record
    text = log.read_text()
    assert "training checkpointed (exit 75" in text and "requeueing job" in text and "SLURM_RESTART_COUNT=1" in text
    assert urgent_record["EndTime"] <= record["StartTime"], (urgent_record, record)
    assert_bitwise(run, reference)


def test_scancel_saves_a_checkpoint_and_is_not_requeued(slurm_cluster, prepared, tmp_path, reference):
    """`scancel`: the real ranks save a committed checkpoint and exit 75; the job stays CANCELLED."""
    from pipeline.train.checkpoint import committed_tags, tag_for

    job, run, log = submit(slurm_cluster, tmp_path, prepared, "cancelled")
    wait_for_steps(slurm_cluster, run)
    slurm_cluster.run("scancel", job)
    slurm_cluster.wait_until(lambda: "leaving the job to SLURM" in log.read_text(), 120, "the script's decision")
    (record,) = slurm_cluster.wait_finished(job, timeout=120)

    assert record["JobState"] == "CANCELLED" and record["Restarts"] == "0", record
    assert "requeueing job" not in log.read_text()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "preempted" and SIGNAL_AFTER_STEP <= status["step"] < MAX_STEPS, status
    assert committed_tags(run / "checkpoints")[-1] == tag_for(status["step"])
    losses = train_losses(run)
    assert losses == {step: reference[step] for step in range(1, status["step"] + 1)}
