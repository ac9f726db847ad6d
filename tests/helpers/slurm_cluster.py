"""A real one-node SLURM cluster for tests: `from slurm_cluster import slurm_cluster`.

The session-scoped fixture runs `slurm/local_cluster.sh start` (which installs Debian's
slurmctld/slurmd/slurm-client/munge if missing, writes a config into a temporary folder and
starts munged, slurmctld and slurmd in their own sessions), exports SLURM_CONF, and at the end
runs `local_cluster.sh stop`, which cancels our jobs and stops exactly the daemons it started,
by PID. Jobs run on CPU; the node has the machine's CPUs and two partitions, `low` (default,
preemptible with REQUEUE after a grace time) and `high`.

Every wait here is bounded polling of `scontrol show job`; accounting (sacct) is off.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO / "slurm" / "local_cluster.sh"
FINISHED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


@dataclass
class SlurmCluster:
    root: Path
    conf: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for clients and jobs (sbatch exports it to the job): our cluster's config,
        this interpreter for the job scripts, one thread per process on the 2-CPU machine."""
        env = dict(os.environ)
        env.update(
            SLURM_CONF=str(self.conf),
            PYTHON=sys.executable,
            OMP_NUM_THREADS="1",
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
        )
        env.update(extra)
        return env

    def run(self, *command: str | Path, env: dict[str, str] | None = None, timeout: float = 60) -> str:
        result = subprocess.run(
            [str(c) for c in command], env=env or self.env(), cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def sbatch(self, *args: str | Path, env: dict[str, str] | None = None) -> str:
        """Submit; returns the job id (for an array, the array's job id)."""
        return self.run("sbatch", "--parsable", *args, env=env).strip().split(";")[0]

    def jobs(self, job_id: str) -> list[dict[str, str]]:
        """`scontrol show job -o` as dicts; an array job gives one dict per task."""
        result = subprocess.run(
            ["scontrol", "show", "job", "-o", job_id], env=self.env(), capture_output=True, text=True, timeout=30
        )
        if result.returncode != 0:
            raise RuntimeError(f"scontrol show job {job_id}: {result.stderr}")
        return [dict(re.findall(r"(\w[\w:/]*)=(\S*)", line)) for line in result.stdout.splitlines() if line.strip()]

    def job(self, job_id: str) -> dict[str, str]:
        (record,) = self.jobs(job_id)
        return record

    def wait_until(self, condition: Callable[[], object], timeout: float, what: str, interval: float = 0.3):
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.diagnostics()}")
            time.sleep(interval)

    def wait_for_state(self, job_id: str, states: set[str], timeout: float = 120) -> dict[str, str]:
        return self.wait_until(
            lambda: next((j for j in self.jobs(job_id) if j["JobState"] in states), None),
            timeout,
            f"job {job_id} to reach {sorted(states)}",
        )

    def wait_finished(self, job_id: str, timeout: float = 180) -> list[dict[str, str]]:
        """Wait until the job (every task of an array) has ended; returns the final records."""

        def finished():
            records = self.jobs(job_id)
            return records if records and all(r["JobState"] in FINISHED_STATES for r in records) else None

        return self.wait_until(finished, timeout, f"job {job_id} to finish")

    def diagnostics(self) -> str:
        queue = subprocess.run(
            ["squeue", "-o", "%i %P %j %T %r %M"], env=self.env(), capture_output=True, text=True, timeout=30
        ).stdout
        log = self.root / "log" / "slurmctld.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
        return f"squeue:\n{queue}\nslurmctld.log (tail):\n{tail}"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> SlurmCluster:
    root = tmp_path_factory.mktemp("slurm-cluster")
    cluster = SlurmCluster(root=root, conf=root / "slurm.conf")
    # 600 s covers apt-get update + install on a cold CI machine (~25 s when the lists are fresh).
    started = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "start", str(root)], capture_output=True, text=True, timeout=600
    )
    if started.returncode != 0:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", str(root)], capture_output=True, timeout=120)
        pytest.fail(f"local SLURM cluster did not start:\n{started.stdout}\n{started.stderr}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", str(root)], capture_output=True, timeout=120)
