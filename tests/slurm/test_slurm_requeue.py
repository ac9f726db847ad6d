"""slurm/pretrain.sbatch on a real SLURM cluster: checkpoint + requeue + resume.

The training entry here is a small real stand-in (written below, passed via TRAIN_ENTRY) with
the contract of launch/pretrain.py: ranks from RANK/WORLD_SIZE/LOCAL_RANK, a real gloo
rendezvous at MASTER_ADDR:MASTER_PORT, USR1/TERM → checkpoint and exit 75, exit 0 when the
budget is done (at once if started on a finished run). It lets these tests check the batch
script's signal/requeue logic without the cost of DeepSpeed; test_slurm_pipeline.py runs the
real trainer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.slurm_cluster import REPO, SlurmCluster, slurm_cluster  # noqa: F401  (fixture)

pytestmark = pytest.mark.slurm

STEPS = 24

STAND_IN_TRAINER = r'''
"""Counts steps into a per-rank checkpoint; USR1/TERM → save and exit 75; done → exit 0."""
import argparse, json, os, signal, sys, time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--output", required=True)
parser.add_argument("--steps", type=int, required=True)
parser.add_argument("--step-seconds", type=float, default=0.15)
parser.add_argument("--save-seconds", type=float, default=0.0, help="how long a checkpoint takes")
parser.add_argument("--exit-code", type=int, default=None, help="fail at once with this code")
args = parser.parse_args()

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
run = Path(args.output)
run.mkdir(parents=True, exist_ok=True)
checkpoint = run / f"checkpoint-rank{rank}.json"
restart = int(os.environ.get("SLURM_RESTART_COUNT", "0"))

def record(event, **fields):
    with open(run / f"events-rank{rank}.jsonl", "a") as f:
        f.write(json.dumps({"event": event, "restart": restart, **fields}) + "\n")

if args.exit_code is not None:
    record("failing", code=args.exit_code)
    sys.exit(args.exit_code)

stop = []
signal.signal(signal.SIGUSR1, lambda signum, frame: stop.append("USR1"))
signal.signal(signal.SIGTERM, lambda signum, frame: stop.append("TERM"))

state = json.loads(checkpoint.read_text()) if checkpoint.exists() else {"step": 0, "value": 1}
if state["step"] >= args.steps:
    record("already_finished", step=state["step"])
    sys.exit(0)
names = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
record("start", step=state["step"], env={k: os.environ.get(k) for k in names})

import torch, torch.distributed as dist   # a real rendezvous proves the exported variables work
dist.init_process_group("gloo")
assert dist.get_rank() == rank and dist.get_world_size() == world

while state["step"] < args.steps:
    if stop:
        time.sleep(args.save_seconds)  # a real checkpoint takes a while; more signals may arrive
        tmp = checkpoint.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(checkpoint)
        record("checkpoint", step=state["step"], signals=stop)
        sys.exit(75)
    time.sleep(args.step_seconds)
    state["value"] = (state["value"] * 31 + state["step"] + rank) % 1_000_003
    state["step"] += 1
    record("step", step=state["step"])

checkpoint.write_text(json.dumps(state))
total = torch.tensor([state["value"]])
dist.all_reduce(total)
record("finished", step=state["step"], total=int(total))
dist.destroy_process_group()
'''


def expected_total(steps: int, world: int) -> int:
    total = 0
    for rank in range(world):
        value = 1
        for step in range(steps):
            value = (value * 31 + step + rank) % 1_000_003
        total += value
    return total


def events(run: Path, rank: int) -> list[dict]:
    path = run / f"events-rank{rank}.jsonl"
    if not path.exists():
        return []
    # Read while the trainer appends: only complete (newline-terminated) lines count.
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


def last_step(run: Path, rank: int = 0) -> int:
    return max((e.get("step", 0) for e in events(run, rank)), default=0)


def submit_training(
    cluster: SlurmCluster, tmp_path: Path, *extra_args: str, tasks: int = 2, partition: str = "low"
) -> tuple[str, Path, Path]:
    trainer = tmp_path / "stand_in_trainer.py"
    trainer.write_text(STAND_IN_TRAINER)
    run, log = tmp_path / "run", tmp_path / "pretrain.log"
    job = cluster.sbatch(
        f"--partition={partition}",
        f"--ntasks={tasks}",
        "--cpus-per-task=1",
        f"--chdir={REPO}",
        f"--output={log}",
        "slurm/pretrain.sbatch",
        "--output",
        str(run),
        *extra_args,
        env=cluster.env(TRAIN_ENTRY=str(trainer)),
    )
    return job, run, log


def assert_resumed_exactly(run: Path, world: int, steps: int = STEPS) -> None:
    """Every rank checkpointed once, resumed from that step on restart 1, and ran every step
    exactly once; the final all-reduced value equals an uninterrupted run's."""
    for rank in range(world):
        history = events(run, rank)
        (checkpoint,) = [e for e in history if e["event"] == "checkpoint"]
        assert 0 < checkpoint["step"] < steps and checkpoint["restart"] == 0
        starts = [e for e in history if e["event"] == "start"]
        assert [(s["restart"], s["step"]) for s in starts] == [(0, 0), (1, checkpoint["step"])]
        assert [e["step"] for e in history if e["event"] == "step"] == list(range(1, steps + 1))
        env = starts[0]["env"]
        assert env["RANK"] == str(rank) and env["WORLD_SIZE"] == str(world) and env["LOCAL_RANK"] == str(rank)
    (finished,) = [e for e in events(run, 0) if e["event"] == "finished"]
    assert finished["total"] == expected_total(steps, world) and finished["restart"] == 1


def test_batch_signal_checkpoints_requeues_and_resumes(slurm_cluster, tmp_path):
    """The trap path: USR1 to the batch shell only (what --signal=B:USR1@N delivers before the
    time limit) is forwarded to the ranks, which checkpoint; the script requeues the job."""
    job, run, log = submit_training(slurm_cluster, tmp_path, "--steps", str(STEPS))
    slurm_cluster.wait_until(lambda: last_step(run, 0) >= 3 and last_step(run, 1) >= 3, 120, "training steps")
    slurm_cluster.run("scancel", "--batch", "--signal=USR1", job)

    (record,) = slurm_cluster.wait_finished(job, timeout=180)
    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "1", record
    assert_resumed_exactly(run, world=2)
    text = log.read_text()
    assert "SLURM_RESTART_COUNT=0" in text and "SLURM_RESTART_COUNT=1" in text
    assert "received SIGUSR1" in text and "requeueing job" in text
    assert text.count("training finished (exit 0)") == 1
    for rank in range(2):
        assert [e["signals"] for e in events(run, rank) if e["event"] == "checkpoint"] == [["USR1"]]

    # Started again on the finished run: the trainer exits 0 at once and nothing requeues.
    again = slurm_cluster.sbatch(
        "--ntasks=2",
        f"--chdir={REPO}",
        f"--output={log}",
        "slurm/pretrain.sbatch",
        "--output",
        str(run),
        "--steps",
        str(STEPS),
        env=slurm_cluster.env(TRAIN_ENTRY=str(tmp_path / "stand_in_trainer.py")),
    )
    (record,) = slurm_cluster.wait_finished(again, timeout=120)
    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "0", record
    assert [e["event"] for e in events(run, 0)][-1] == "already_finished"


def test_requeue_from_outside_resumes(slurm_cluster, tmp_path):
    """`scontrol requeue` by an operator: SLURM terminates the job (SIGTERM), the ranks
    checkpoint, and the requeued job resumes from that checkpoint."""
    job, run, log = submit_training(slurm_cluster, tmp_path, "--steps", str(STEPS), "--save-seconds", "2")
    slurm_cluster.wait_until(lambda: last_step(run, 0) >= 3 and last_step(run, 1) >= 3, 120, "training steps")
    slurm_cluster.run("scontrol", "requeue", job)

    (record,) = slurm_cluster.wait_finished(job, timeout=180)
    assert record["JobState"] == "COMPLETED" and int(record["Restarts"]) == 1, record
    assert_resumed_exactly(run, world=2)
    text = log.read_text()
    assert "SLURM_RESTART_COUNT=1" in text and "leaving the job to SLURM" in text


def test_scancel_checkpoints_and_stops_for_good(slurm_cluster, tmp_path):
    """`scancel` (SIGTERM to the batch shell and the ranks): the ranks checkpoint, and the job
    ends CANCELLED — the script must not requeue a job the user cancelled."""
    job, run, log = submit_training(slurm_cluster, tmp_path, "--steps", str(STEPS), "--save-seconds", "2")
    slurm_cluster.wait_until(lambda: last_step(run, 0) >= 3 and last_step(run, 1) >= 3, 120, "training steps")
    slurm_cluster.run("scancel", job)

    # The script's last word comes before it exits; a requeue could only have come before it.
    slurm_cluster.wait_until(lambda: "leaving the job to SLURM" in log.read_text(), 120, "the script's decision")
    (record,) = slurm_cluster.wait_finished(job, timeout=120)
    assert record["JobState"] == "CANCELLED" and record["Restarts"] == "0", record
    assert "requeueing job" not in log.read_text()
    for rank in range(2):
        history = events(run, rank)
        assert [e["event"] for e in history if e["event"] != "step"] == ["start", "checkpoint"]
        checkpoint = json.loads((run / f"checkpoint-rank{rank}.json").read_text())
        assert checkpoint["step"] == history[-1]["step"] > 0


def test_preemption_by_high_priority_partition(slurm_cluster, tmp_path):
    """A job in the `high` partition needs the CPUs: the `low` job gets SIGTERM and a grace
    time, checkpoints, is requeued, and resumes after the high-priority job is done."""
    job, run, log = submit_training(slurm_cluster, tmp_path, "--steps", str(STEPS), "--save-seconds", "2")  # both CPUs
    slurm_cluster.wait_until(lambda: last_step(run, 0) >= 3 and last_step(run, 1) >= 3, 120, "training steps")
    marker = tmp_path / "high.done"
    urgent = slurm_cluster.sbatch(
        "--partition=high", "--ntasks=2", f"--output={tmp_path / 'high.log'}", f"--wrap=touch {marker}"
    )

    (urgent_record,) = slurm_cluster.wait_finished(urgent, timeout=120)
    assert urgent_record["JobState"] == "COMPLETED" and marker.exists()
    (record,) = slurm_cluster.wait_finished(job, timeout=180)
    assert record["JobState"] == "COMPLETED" and int(record["Restarts"]) == 1, record
    assert_resumed_exactly(run, world=2)
    text = log.read_text()
    assert "requeueing job" in text and "SLURM_RESTART_COUNT=1" in text
    # The high-priority job ran while the low one was off the node, before it resumed.
    assert urgent_record["EndTime"] <= record["StartTime"], (urgent_record, record)


def test_failure_is_not_requeued(slurm_cluster, tmp_path):
    """An error exit (neither 0 nor 75) fails the job; requeueing a crash would loop forever."""
    job, run, log = submit_training(slurm_cluster, tmp_path, "--steps", "5", "--exit-code", "3")
    (record,) = slurm_cluster.wait_finished(job, timeout=120)
    assert record["JobState"] == "FAILED" and record["Restarts"] == "0" and record["ExitCode"] == "3:0", record
    assert "training failed (exit 3): not requeueing" in log.read_text()
