"""slurm/pretrain.sbatch on a real SLURM cluster: checkpoint + requeue + resume.

The training entry here is a small real stand-in (written below, passed via TRAIN_ENTRY) with
the contract of launch/pretrain.py: ranks from RANK/WORLD_SIZE/LOCAL_RANK, a real gloo
rendezvous at MASTER_ADDR:MASTER_PORT, USR1/TERM → checkpoint and exit 75, exit 0 when the
budget is done (at once if started on a finished run). It lets these tests check the batch
script's signal/requeue logic without the cost of DeepSpeed; test_slurm_pretrain.py runs the
real trainer for the outside requeue, the partition preemption, scancel and the time-limit USR1.
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
parser.add_argument("--no-handlers-seconds", type=float, default=0.0,
                    help="on the first start, wait this long with the default signal actions "
                         "(the real entry's window before line 1, stretched)")
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

if args.no_handlers_seconds and restart == 0:
    record("no_handlers_yet")
    time.sleep(args.no_handlers_seconds)

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


def test_failure_is_not_requeued(slurm_cluster, tmp_path):
    """An error exit (neither 0 nor 75) fails the job; requeueing a crash would loop forever."""
    job, run, log = submit_training(slurm_cluster, tmp_path, "--steps", "5", "--exit-code", "3")
    (record,) = slurm_cluster.wait_finished(job, timeout=120)
    assert record["JobState"] == "FAILED" and record["Restarts"] == "0" and record["ExitCode"] == "3:0", record
    assert "training failed (exit 3): not requeueing" in log.read_text()


def test_signal_before_the_handlers_still_requeues(slurm_cluster, tmp_path):
    """A stop signal that lands before a rank has its handlers (the first ~45 ms of the real
    entry's interpreter, stretched here) kills the rank with the default action. Nothing was
    written, so the script requeues as for a 75 instead of ending the job as failed."""
    job, run, log = submit_training(slurm_cluster, tmp_path, "--steps", "6", "--no-handlers-seconds", "60")
    waiting = lambda: all(e["event"] == "no_handlers_yet" for r in range(2) for e in events(run, r)[-1:])  # noqa: E731
    slurm_cluster.wait_until(lambda: events(run, 0) and events(run, 1) and waiting(), 120, "ranks started")
    slurm_cluster.run("scancel", "--batch", "--signal=USR1", job)

    (record,) = slurm_cluster.wait_finished(job, timeout=180)
    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "1", record
    text = log.read_text()
    assert "before its stop handlers" in text and "requeueing job" in text, text
    for rank in range(2):
        history = events(run, rank)
        assert [e["event"] for e in history if e["restart"] == 0] == ["no_handlers_yet"]
        assert [e["step"] for e in history if e["event"] == "step"] == list(range(1, 7))
