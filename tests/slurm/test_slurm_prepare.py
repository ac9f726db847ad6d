"""Data preparation as SLURM array jobs (slurm/submit.sh → slurm/prepare_stage.sbatch) on a
real cluster: the chain reproduces a local `python -m pipeline prepare` byte for byte, even
when an array task is killed mid-way and the chain is submitted again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, TEST_OVERRIDES
from tests.helpers.slurm_cluster import SlurmCluster, slurm_cluster  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def tree_digest(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def submit_chain(cluster: SlurmCluster, corpus: Path, output: Path, logs: Path) -> dict[str, str]:
    """slurm/submit.sh for the data stages only, with the settings of conftest's `prepared`
    (built-in config defaults + TEST_OVERRIDES, default task count). Returns {name: job id}."""
    overrides = [arg for override in TEST_OVERRIDES for arg in ("--data-override", override)]
    stdout = cluster.run(
        "bash",
        REPO / "slurm" / "submit.sh",
        "--no-train",
        "--input",
        f"{corpus}/**/*.csv*",
        "--data",
        output,
        "--data-config",
        "",
        *overrides,
        "--log-dir",
        logs,
        "--prep-cpus",
        "1",
        "--tokenizer-cpus",
        "1",
        "--prep-time",
        "15:00",
        timeout=120,
    )
    jobs = dict(line.split() for line in stdout.splitlines())
    assert list(jobs) == ["init", "clean", "dedup", "group", "split", "tokenizer", "pack", "finalize"], stdout
    return jobs


def test_array_chain_with_a_killed_task_matches_local_prepare(slurm_cluster, corpus, prepared, tmp_path):
    output, logs = tmp_path / "out", tmp_path / "logs"
    jobs = submit_chain(slurm_cluster, corpus, output, logs)

    # Kill a pack task while it runs: SIGKILL to its batch shell, which by then has exec'ed the
    # python task (its first log line is written just before). No marker is left, perhaps a
    # half-written shard under a temporary name. (A signal sent before the batch script has
    # started is dropped by SLURM, hence the wait for the log line.)
    pack = jobs["pack"]
    running = slurm_cluster.wait_for_state(pack, {"RUNNING"}, timeout=240)
    victim = f"{running['ArrayJobId']}_{running['ArrayTaskId']}"
    victim_log = logs / f"prep-pack-{victim}.out"
    slurm_cluster.wait_until(
        lambda: victim_log.exists() and "[prepare_stage] pack" in victim_log.read_text(),
        60,
        f"pack task {victim} to start",
        interval=0.05,
    )
    slurm_cluster.run("scancel", "--batch", "--signal=KILL", victim)

    records = slurm_cluster.wait_finished(pack, timeout=120)
    states = {r["ArrayTaskId"]: r["JobState"] for r in records}
    assert states.pop(running["ArrayTaskId"]) == "FAILED", records
    assert set(states.values()) <= {"COMPLETED"}, records
    marker = output / "work" / "markers" / "pack" / f"{int(running['ArrayTaskId']):05d}.json"
    assert not marker.exists()
    # The failed dependency cancels the rest of the chain instead of leaving it pending forever.
    (finalize,) = slurm_cluster.wait_finished(jobs["finalize"], timeout=60)
    assert finalize["JobState"] == "CANCELLED" and not (output / "manifest.json").exists()

    # Submitting the same chain again re-runs only what is missing.
    again = submit_chain(slurm_cluster, corpus, output, logs)
    for stage in ("clean", "dedup", "group", "split", "tokenizer", "pack", "finalize"):
        records = slurm_cluster.wait_finished(again[stage], timeout=240)
        assert {r["JobState"] for r in records} == {"COMPLETED"}, (stage, records)
    skipped = "".join(p.read_text() for p in logs.glob(f"prep-clean-{again['clean']}_*.out"))
    assert skipped.count("already done, skipped") == len(list(logs.glob(f"prep-clean-{again['clean']}_*.out")))
    rerun = (logs / f"prep-pack-{again['pack']}_{running['ArrayTaskId']}.out").read_text()
    assert f"task {running['ArrayTaskId']}: done" in rerun

    resumed, reference = tree_digest(output), tree_digest(prepared)
    assert resumed.keys() == reference.keys()
    assert [name for name in resumed if resumed[name] != reference[name]] == []
