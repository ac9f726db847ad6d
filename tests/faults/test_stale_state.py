"""State that must not be trusted: markers of another plan, outputs without plan.json, input
files edited after `init`, a task whose lock is held, data edited after `prepare`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from pipeline.core.locks import FileLock
from pipeline.core.typed_config import from_dict
from pipeline.data.executor import lock_path, pending_tasks, read_marker, run_stage_locally
from pipeline.data.prepare_config import PrepareConfig
from pipeline.data.prepare_plan import PlanError, create_plan
from pipeline.data.stages import get_stage
from tests.faults.prepare_harness import FAULT_SETTINGS, NUM_TASKS, REPO, environment, run

pytestmark = pytest.mark.slow


def test_a_marker_from_another_plan_is_stale_never_done(fault_setup, tmp_path):
    clean = get_stage("clean")
    plans = {}
    for name, min_chars in (("a", 6), ("b", 30)):
        config = from_dict(PrepareConfig, {"clean": {"min_chars": min_chars}, "dedup": {"num_buckets": 3}})
        plans[name] = create_plan([f"{fault_setup.corpus}/**/*.csv*"], tmp_path / name, config, num_tasks=3)
    run_stage_locally(plans["a"], clean, workers=1, show_progress=False)
    assert pending_tasks(plans["a"], clean) == []
    # b's output holds a's clean outputs and markers (copied, or left by a run of another plan)
    shutil.copytree(tmp_path / "a" / "work", tmp_path / "b" / "work", dirs_exist_ok=True)
    assert pending_tasks(plans["b"], clean) == [0, 1, 2]
    status = run([sys.executable, "-m", "pipeline", "status", "--output", str(tmp_path / "b")])
    assert status.returncode == 1 and "3 stale marker(s)" in status.stdout and "another plan" in status.stdout
    with pytest.raises(PlanError, match=r"markers/clean/00000\.json.*another plan"):
        read_marker(plans["b"], "clean", 0)
    run_stage_locally(plans["b"], clean, workers=1, show_progress=False)
    dropped = [read_marker(plans[n], "clean", t)["files"] for n in "ab" for t in range(3)]
    too_short = [sum(f["dropped"].get("too_short", 0) for f in files) for files in dropped]
    assert sum(too_short[3:]) > sum(too_short[:3])  # b's markers are b's own now


def test_force_without_plan_json_starts_over(fault_setup, tmp_path):
    # the repro: delete OUT/plan.json, then `prepare --force clean.min_chars=30`
    output = tmp_path / "out"
    shutil.copytree(fault_setup.reference, output)
    (output / "plan.json").unlink()
    (output / "report.md").write_text("a report of the old data\n")  # written by `report`: ours
    (output / ".plan.json.tmp-123-abcd").write_text("{")  # a temporary of a killed init: ours
    (output / "notes.txt").write_text("the user's\n")  # not ours: stays
    command = [
        sys.executable, "-m", "pipeline", "prepare", "--input", f"{fault_setup.corpus}/**/*.csv*",
        "--output", str(output), "--num-tasks", NUM_TASKS, "--tokenizer", str(fault_setup.tokenizer),
        "--workers", "2", "--quiet",
    ]  # fmt: skip
    refused = run([*command, *FAULT_SETTINGS, "clean.min_chars=30"])
    assert refused.returncode == 2 and "holds no plan.json" in refused.stderr
    result = run([*command, "--force", *FAULT_SETTINGS, "clean.min_chars=30"])
    assert result.returncode == 0, result.stderr
    assert "already done" not in result.stdout
    assert not (output / "report.md").exists() and not (output / ".plan.json.tmp-123-abcd").exists()
    assert (output / "notes.txt").read_text() == "the user's\n"
    plan = json.loads((output / "plan.json").read_text())
    markers = list((output / "work" / "markers").rglob("*.json"))
    assert markers and {json.loads(m.read_text())["plan"] for m in markers} == {plan["fingerprint"]}
    old, new = (json.loads((d / "report.json").read_text()) for d in (fault_setup.reference, output))
    assert new["totals"]["dropped"]["too_short"] > old["totals"]["dropped"]["too_short"]


def test_a_task_refuses_inputs_changed_since_init(fault_setup, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(fault_setup.corpus, corpus)
    output = tmp_path / "out"
    init = run([sys.executable, "-m", "pipeline", "init", "--input", f"{corpus}/**/*.csv*", "--output", str(output)])
    assert init.returncode == 0, init.stderr
    plan = json.loads((output / "plan.json").read_text())
    task = next(t for t, files in enumerate(plan["task_files"]) if files)
    victim = plan["inputs"][plan["task_files"][task][0]]["path"]
    with open(victim, "ab") as handle:
        handle.write(b"\n")
    result = run([sys.executable, "-m", "pipeline", "task", "clean", "--task-id", str(task), "--output", str(output)])
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1 and victim in result.stderr and "changed since `init`" in result.stderr
    assert not (output / "work" / "markers" / "clean" / f"{task:05d}.json").exists()


def test_a_task_whose_lock_is_held_waits_or_exits_4(fault_setup, tmp_path):
    output = tmp_path / "out"
    init = [sys.executable, "-m", "pipeline", "init", "--input", f"{fault_setup.corpus}/**/*.csv*"]
    assert run([*init, "--output", str(output), "--num-tasks", NUM_TASKS]).returncode == 0
    plan = create_plan([f"{fault_setup.corpus}/**/*.csv*"], output, PrepareConfig(), num_tasks=int(NUM_TASKS))
    held = FileLock(lock_path(plan, "clean", 0))
    held.acquire()  # as a running execution of the same task would
    task = [sys.executable, "-m", "pipeline", "task", "clean", "--task-id", "0", "--output", str(output)]
    busy = run([*task, "--no-wait"])
    assert busy.returncode == 4 and "running elsewhere" in busy.stderr, busy.stderr
    waiting = subprocess.Popen(task, cwd=REPO, env=environment(), stdout=subprocess.PIPE, text=True)
    assert "running elsewhere" in waiting.stdout.readline()
    assert waiting.poll() is None
    held.release()
    assert waiting.wait(timeout=120) == 0 and "task 0: done" in waiting.stdout.read()


def test_training_refuses_a_shard_resized_after_prepare(fault_setup, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fault_setup.reference, data)
    shard = sorted((data / "train").glob("*.arrow"))[1]
    shard.write_bytes(shard.read_bytes()[:-100])
    result = run(
        [
            sys.executable, "-m", "pipeline", "train", "--config", "configs/train/tiny-cpu.yaml",
            "--data", str(data), "--output", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and str(shard) in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_leftover_of_a_killed_plan_write_is_removed(fault_setup, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / ".plan.json.tmp-99-dead").write_text("{")  # init killed while writing plan.json
    create_plan([f"{fault_setup.corpus}/**/*.csv*"], output, PrepareConfig(), num_tasks=int(NUM_TASKS))
    assert sorted(p.name for p in output.iterdir()) == [".lock", "plan.json"]
