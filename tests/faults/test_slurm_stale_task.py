"""A SLURM array task killed and requeued while a stale copy of the same task still runs (a late
original on a node SLURM gave up on): the task lock makes the copies take turns, and the output
ends byte-identical to an uninterrupted run. Real cluster (tests/helpers/slurm_cluster.py)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pipeline.data.stages.pack import ENV_PAUSE_S
from tests.faults.prepare_harness import REPO, differences, environment, new_seed, prepare_command, run
from tests.helpers.slurm_cluster import SlurmCluster, slurm_cluster  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def wait_until(condition, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return value


def test_requeued_array_task_beside_a_stale_copy(slurm_cluster: SlurmCluster, fault_setup, tmp_path):  # noqa: F811
    seed = new_seed()
    print(f"FAULT_SEED={seed}")
    rng = random.Random(seed)
    output, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    # a finished output with its packing undone: only pack (and finalize) are left to do
    shutil.copytree(fault_setup.reference, output)
    for path in [
        *output.glob("*/*.arrow"),
        *output.glob("work/markers/pack/*"),
        *output.glob("work/markers/finalize/*"),
    ]:
        path.unlink()
    (output / "manifest.json").unlink()
    task = rng.randrange(3)

    # the stale copy: started first, frozen while it holds the lock with a shard half-written
    # (the pack hook holds it there for a moment: the whole task takes milliseconds)
    stale = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "task", "pack", "--task-id", str(task), "--output", str(output)],
        cwd=REPO,
        env={**environment(), ENV_PAUSE_S: "5"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(
        lambda: list((output / "train").glob(f".{task:05d}-*.tmp-*")) or stale.poll() is not None, 120, "a shard"
    )
    os.kill(stale.pid, signal.SIGSTOP)
    assert stale.poll() is None, f"FAULT_SEED={seed}: the stale copy finished before it could be frozen"

    job = slurm_cluster.sbatch(
        f"--array={task}",
        f"--output={logs}/pack-%A_%a.out",
        f"--chdir={REPO}",
        "--cpus-per-task=1",
        REPO / "slurm" / "prepare_stage.sbatch",
        "pack",
        output,
    )
    log = lambda: "\n".join(p.read_text() for p in logs.glob("pack-*.out"))  # noqa: E731
    wait_until(lambda: log().count("running elsewhere") >= 1, 120, "the array task to wait for the lock", 0.1)
    # kill and requeue it while the stale copy still holds the lock; it comes back and waits again
    slurm_cluster.run("scontrol", "requeue", job)
    wait_until(lambda: log().count("running elsewhere") >= 2, 120, "the requeued task to wait again", 0.1)
    assert "SLURM_RESTART_COUNT=1" in log()

    # the stale copy either finishes (the requeued task then finds the task done) or dies
    # (the requeued task then removes its leftovers and does the task itself)
    finish = rng.random() < 0.5
    os.kill(stale.pid, signal.SIGCONT if finish else signal.SIGKILL)
    stale_out, stale_err = stale.communicate(timeout=120)
    if finish:
        assert stale.returncode == 0 and f"task {task}: done" in stale_out, f"FAULT_SEED={seed}: {stale_err}"
    (record,) = slurm_cluster.wait_finished(job, timeout=180)
    assert record["JobState"] == "COMPLETED", (seed, record, log())
    assert ("already done, skipped" if finish else f"task {task}: done") in log()

    finished = run(prepare_command(fault_setup, output))
    assert finished.returncode == 0, finished.stderr
    assert differences(output, fault_setup.reference) == [], f"FAULT_SEED={seed}"
