"""Run a stage's tasks: all of them in a local process pool, or exactly one (a SLURM array task).

A task writes its outputs under temporary names, renames them into place, and only then
writes its completion marker `OUT/work/markers/<stage>/<task>.json` (which also carries the
task's statistics for the report). A re-run skips marked tasks and redoes the rest, so a
`kill -9` at any moment costs at most the tasks that were running — and since every task is
a pure function of the plan, the redone outputs are byte-identical.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from pipeline.core.atomic import write_json_atomically
from pipeline.data.prepare_plan import Plan

# A task function returns its statistics (JSON-serialisable); `progress(n)` reports units done.
TaskFunction = Callable[[Plan, int, Callable[[int], None]], dict]


@dataclass(frozen=True)
class Stage:
    name: str
    run_task: TaskFunction
    count_tasks: Callable[[Plan], int]
    unit: str = "docs"  # what `progress` counts, for the progress bar
    total_units: Callable[[Plan], int | None] = lambda plan: None


def marker_path(plan: Plan, stage: str, task_id: int) -> Path:
    return plan.work_dir / "markers" / stage / f"{task_id:05d}.json"


def is_done(plan: Plan, stage: str, task_id: int) -> bool:
    return marker_path(plan, stage, task_id).is_file()


def read_marker(plan: Plan, stage: str, task_id: int) -> dict:
    return json.loads(marker_path(plan, stage, task_id).read_text(encoding="utf-8"))


def pending_tasks(plan: Plan, stage: Stage) -> list[int]:
    return [i for i in range(stage.count_tasks(plan)) if not is_done(plan, stage.name, i)]


def run_one_task(plan: Plan, stage: Stage, task_id: int, progress: Callable[[int], None] = lambda n: None) -> bool:
    """Run task `task_id` of `stage` unless already done. Returns True if it ran."""
    count = stage.count_tasks(plan)
    if not 0 <= task_id < count:
        raise ValueError(f"stage '{stage.name}' has tasks 0..{count - 1}; got --task-id {task_id}")
    if is_done(plan, stage.name, task_id):
        return False
    stats = stage.run_task(plan, task_id, progress)
    write_json_atomically(marker_path(plan, stage.name, task_id), stats, indent=None)
    return True


# --- local process pool -------------------------------------------------------------------

# Set in the parent just before the pool forks; workers inherit them (stages hold lambdas,
# which do not pickle, and this way nothing but task ids crosses the pipe).
_shared_counter = None
_current: tuple[Plan, Stage] | None = None


def _report_progress(n: int) -> None:
    if _shared_counter is not None:
        with _shared_counter.get_lock():
            _shared_counter.value += n


def _run_in_worker(task_id: int) -> int:
    assert _current is not None
    plan, stage = _current
    run_one_task(plan, stage, task_id, _report_progress)
    return task_id


def run_stage_locally(plan: Plan, stage: Stage, workers: int, show_progress: bool = True) -> float:
    """Run every pending task of `stage` with `workers` processes; returns seconds spent."""
    todo = pending_tasks(plan, stage)
    total_tasks = stage.count_tasks(plan)
    start = time.monotonic()
    if total_tasks == 0:  # a stage switched off by its config (e.g. near dedup)
        return 0.0
    if not todo:
        if show_progress:
            print(f"[{stage.name}] {total_tasks}/{total_tasks} tasks already done")
        return 0.0
    bar = tqdm(
        total=stage.total_units(plan),
        unit=stage.unit,
        unit_scale=True,
        desc=f"[{stage.name}] {len(todo)} of {total_tasks} tasks",
        # a bar redrawn into a log file is noise: logs (SLURM, CI) get one line per stage instead
        disable=not show_progress or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
    global _shared_counter, _current
    if workers <= 1 or len(todo) == 1:
        for task_id in todo:
            run_one_task(plan, stage, task_id, bar.update)
    else:
        # fork keeps start-up cheap and inherits plan and stage; tasks share nothing but files.
        context = multiprocessing.get_context("fork")
        counter = _shared_counter = context.Value("q", 0)
        _current = (plan, stage)
        with context.Pool(min(workers, len(todo))) as pool:
            results = pool.imap_unordered(_run_in_worker, todo)
            shown = 0
            finished = 0
            while finished < len(todo):
                try:
                    results.next(timeout=0.25)
                    finished += 1
                except multiprocessing.TimeoutError:
                    pass
                value = counter.value
                bar.update(value - shown)
                shown = value
                bar.set_postfix_str(f"{finished}/{len(todo)} tasks")
        _shared_counter, _current = None, None
    bar.close()
    seconds = time.monotonic() - start
    if show_progress and bar.disable:
        print(f"[{stage.name}] {len(todo)} task(s) done in {seconds:.1f}s", flush=True)
    return seconds
