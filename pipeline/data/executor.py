"""Run a stage's tasks: all of them in a local process pool, or exactly one (a SLURM array task).

One writer per task, always: a task runs only while holding its lock
(`OUT/work/locks/<stage>/<task>.lock`, an flock the kernel drops when the holder dies), so a
second execution of the same task — the re-run of a killed `prepare` beside its dying workers,
a requeued SLURM array task beside a late original — waits for the first and then finds it
done. With the lock held, the task first deletes the temporaries its killed predecessors
journalled (see pipeline/core/atomic.py), then runs, and only after every output is renamed
into place writes its completion marker `OUT/work/markers/<stage>/<task>.json`.

A marker cannot lie: it records the plan fingerprint, the data-format version and the size
of every output the task published. A marker from another plan or format, or whose outputs
are gone or have another size, is stale: the task is not done and runs again. Every task is a
pure function of the plan, so the redone outputs are byte-identical.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from pipeline.core.atomic import describe_os_error, remove_journaled_temporaries, task_scope, write_json_atomically
from pipeline.core.locks import FileLock, LockBusy
from pipeline.data.prepare_plan import Plan, PlanError

# Bump when the bytes a stage writes change meaning: markers of another version are stale.
DATA_FORMAT_VERSION = 4

# A task function returns its statistics (JSON-serialisable); `progress(n)` reports units done.
TaskFunction = Callable[[Plan, int, Callable[[int], None]], dict]


class TaskFailed(PlanError):
    """A task could not write its outputs (disk full, file size limit, …): the message names
    the task and the file."""


class TaskBusy(PlanError):
    """The task is running elsewhere (its lock is held) and we were told not to wait."""


@dataclass(frozen=True)
class Stage:
    name: str
    run_task: TaskFunction
    count_tasks: Callable[[Plan], int]
    unit: str = "docs"  # what `progress` counts, for the progress bar
    total_units: Callable[[Plan], int | None] = lambda plan: None


def marker_path(plan: Plan, stage: str, task_id: int) -> Path:
    return plan.work_dir / "markers" / stage / f"{task_id:05d}.json"


def lock_path(plan: Plan, stage: str, task_id: int) -> Path:
    return plan.work_dir / "locks" / stage / f"{task_id:05d}.lock"


def journal_path(plan: Plan, stage: str, task_id: int) -> Path:
    return plan.work_dir / "locks" / stage / f"{task_id:05d}.temps"


def marker_problem(plan: Plan, stage: str, task_id: int) -> tuple[str | None, dict | None]:
    """(None, marker) when the task is done; else (why not, None)."""
    path = marker_path(plan, stage, task_id)
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no marker", None
    except (OSError, ValueError) as exc:
        return f"unreadable marker ({exc})", None
    if not isinstance(marker, dict) or marker.get("format_version") != DATA_FORMAT_VERSION:
        found = marker.get("format_version") if isinstance(marker, dict) else None
        return f"marker of data-format version {found}, this code writes {DATA_FORMAT_VERSION}", None
    if marker.get("plan") != plan.fingerprint:
        return f"marker of another plan ({str(marker.get('plan'))[:12]}, this plan {plan.fingerprint[:12]})", None
    for relative, size in marker.get("outputs", {}).items():
        try:
            actual = (plan.output / relative).stat().st_size
        except FileNotFoundError:
            return f"output {plan.output / relative} is missing", None
        if actual != size:
            return f"output {plan.output / relative} has {actual} bytes, the marker says {size}", None
    return None, marker


def is_done(plan: Plan, stage: str, task_id: int) -> bool:
    return marker_problem(plan, stage, task_id)[0] is None


def read_marker(plan: Plan, stage: str, task_id: int) -> dict:
    """The statistics of a finished task; a clear error naming the marker if it is not done."""
    problem, marker = marker_problem(plan, stage, task_id)
    if problem is not None:
        raise PlanError(
            f"{marker_path(plan, stage, task_id)}: {stage} task {task_id} is not done ({problem}); "
            "run `prepare` again (or that array task)"
        )
    return marker["stats"]


def pending_tasks(plan: Plan, stage: Stage) -> list[int]:
    return [i for i in range(stage.count_tasks(plan)) if not is_done(plan, stage.name, i)]


def run_one_task(
    plan: Plan, stage: Stage, task_id: int, progress: Callable[[int], None] = lambda n: None, wait: bool = True
) -> bool:
    """Run task `task_id` of `stage` unless already done. Returns True if it ran.

    Holds the task's lock throughout; if another process holds it, waits (or raises TaskBusy
    when `wait` is false), then re-checks the marker."""
    count = stage.count_tasks(plan)
    if not 0 <= task_id < count:
        raise ValueError(f"stage '{stage.name}' has tasks 0..{count - 1}; got --task-id {task_id}")
    lock = FileLock(lock_path(plan, stage.name, task_id))
    if is_done(plan, stage.name, task_id):
        tidy_finished(plan, stage.name, task_id, lock)
        return False

    def say_waiting(holder: str) -> None:
        print(f"[{stage.name}] task {task_id} is running elsewhere ({holder}); waiting for it", flush=True)

    try:
        lock.acquire(wait=wait, on_wait=say_waiting)
    except LockBusy as exc:
        raise TaskBusy(f"[{stage.name}] task {task_id} is running elsewhere ({exc}); {lock.path}") from None
    try:
        if is_done(plan, stage.name, task_id):  # the other execution finished it
            return False
        with task_scope(journal_path(plan, stage.name, task_id)) as published:
            try:
                stats = stage.run_task(plan, task_id, progress)
                outputs = {str(p.relative_to(plan.output)): p.stat().st_size for p in published}
                marker = {
                    "format_version": DATA_FORMAT_VERSION,
                    "plan": plan.fingerprint,
                    "stage": stage.name,
                    "task": task_id,
                    "outputs": dict(sorted(outputs.items())),
                    "stats": stats,
                }
                # the marker goes last, and through the journal too (a kill mid-write leaves no litter)
                write_json_atomically(marker_path(plan, stage.name, task_id), marker, indent=None)
            except OSError as exc:
                raise TaskFailed(f"[{stage.name}] task {task_id}: {describe_os_error(exc)}") from None
        journal_path(plan, stage.name, task_id).unlink(missing_ok=True)  # every temporary was renamed
    finally:
        lock.release()
    return True


def tidy_finished(plan: Plan, stage: str, task_id: int, lock: FileLock | None = None) -> None:
    """A kill between a task's marker and the removal of its journal leaves the journal: drop
    it (and anything it lists) if no one is running the task."""
    journal = journal_path(plan, stage, task_id)
    lock = lock or FileLock(lock_path(plan, stage, task_id))
    if journal.exists() and lock.try_acquire():
        try:
            remove_journaled_temporaries(journal)
        finally:
            lock.release()


# --- local process pool -------------------------------------------------------------------

# Set in the parent just before the pool forks; workers inherit them (stages hold lambdas,
# which do not pickle, and this way nothing but task ids crosses the pipe).
_shared_counter = None
_current: tuple[Plan, Stage] | None = None


def _report_progress(n: int) -> None:
    if _shared_counter is not None:
        with _shared_counter.get_lock():
            _shared_counter.value += n


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer: SIGKILL this worker when the parent dies (Linux prctl), so a killed
    `prepare` leaves no orphans writing beside its re-run. Elsewhere the task locks still
    keep the re-run from running a task twice at once; it waits for the orphans instead."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _warm_imports() -> None:
    """pyarrow imports pandas at its first array conversion (~0.15 CPU-s, measured): paid once
    here, before the pool forks, the workers inherit it instead of paying it in every stage."""
    import pyarrow

    pyarrow.array([0])


def _run_in_worker(task_id: int) -> int:
    assert _current is not None
    plan, stage = _current
    run_one_task(plan, stage, task_id, _report_progress)
    return task_id


def run_stage_locally(plan: Plan, stage: Stage, workers: int, show_progress: bool = True) -> float:
    """Run every pending task of `stage` with `workers` processes; returns seconds spent."""
    todo = pending_tasks(plan, stage)
    total_tasks = stage.count_tasks(plan)
    for task_id in sorted(set(range(total_tasks)) - set(todo)):
        tidy_finished(plan, stage.name, task_id)
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
        try:
            counter = _shared_counter = context.Value("q", 0)  # a page in a file under /dev/shm
        except OSError as exc:
            raise TaskFailed(f"[{stage.name}] cannot start the worker pool: {describe_os_error(exc)}") from None
        _current = (plan, stage)
        _warm_imports()
        with context.Pool(min(workers, len(todo)), initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
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
