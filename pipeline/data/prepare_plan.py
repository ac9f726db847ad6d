"""OUT/plan.json: the frozen description of one preparation run.

`init` globs the inputs once, records each file's size and mtime, the full config and the
task counts, and assigns input files to tasks. Every task (local or a SLURM array task on
another node) reads this file instead of globbing again, so all tasks agree on the inputs.
The fingerprint over inputs + config + task counts guards the output directory: re-running
with anything different is refused (or `--force` starts over). Every task marker records it
too, so a marker of another plan is never taken for "done".

`OUT/.lock` is held shared by every `prepare`, `init` and `task` for its whole life, and
exclusively only while plan.json is written: `--force` deletes nothing while another process
works in OUT (it refuses, naming the lock), and two runs started together agree on one plan.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.core.atomic import write_json_atomically
from pipeline.core.fingerprint import fingerprint
from pipeline.core.locks import FileLock
from pipeline.core.typed_config import from_dict, to_dict
from pipeline.data.mixture import MixtureError, input_root, resolve_sources
from pipeline.data.prepare_config import PrepareConfig

SUPPORTED_SUFFIXES = (".csv", ".csv.zst")
TARGET_TASK_BYTES = 32 << 20  # default task size: enough work to amortise start-up
# Fewer tasks than this balance badly over a few workers on a small corpus: at 50 MB with 2
# workers, 8 tasks took 3.9 s and 4 tasks 4.7 s (pack's tasks finished unevenly); 1 worker was
# unchanged, 16 tasks were slower again (benchmarks/bench_prepare.py's corpus, 2026-12-01).
# Not derived from --workers: the task count shapes the output, the worker count must not.
MIN_DEFAULT_TASKS = 8
# Default counts above the minimum are rounded up to a multiple of this, so that the tasks of a
# stage split evenly over 1, 2, 4 or 8 workers: at 0.5 GB, 15 tasks left one worker of two
# idle for the last task of clean and of pack (2 workers ran at 1.75× one worker's speed).
TASK_MULTIPLE = 8


def tasks_for_bytes(total_bytes: int) -> int:
    """The default task count for this much input (when there are at least that many files)."""
    by_bytes = -(-total_bytes // TARGET_TASK_BYTES)
    return max(MIN_DEFAULT_TASKS, -(-by_bytes // TASK_MULTIPLE) * TASK_MULTIPLE)


LOCK_NAME = ".lock"  # OUT/.lock; not an output: --force keeps it


class PlanError(RuntimeError):
    pass


class InputsChanged(PlanError):
    """An input file differs from what `init` recorded in plan.json (exit code 3)."""


@dataclasses.dataclass(frozen=True)
class InputFile:
    path: str
    size: int
    mtime_ns: int


@dataclasses.dataclass
class Plan:
    output: Path
    inputs: list[InputFile]
    ignored: list[str]  # globbed but not .csv/.csv.zst
    config: PrepareConfig
    num_tasks: int
    num_buckets: int
    task_files: list[list[int]]  # input indices per task, contiguous, in path order
    fingerprint: str
    input_root: str = "."  # where `mixture:` keys and source names start (pipeline/data/mixture.py)
    # `prepare --append` (pipeline/data/append.py): version 2, 3, … lives in ROOT/appends/<NNNN>/;
    # `base` names the earlier versions' folders (relative to ROOT, oldest first): their documents
    # are deduplicated against and their tokenizer and validation threshold are reused.
    version: int = 1
    base: list[str] = dataclasses.field(default_factory=list)
    fixed_threshold: int | None = None
    output_lock: FileLock | None = dataclasses.field(default=None, repr=False, compare=False)
    root_lock: FileLock | None = dataclasses.field(default=None, repr=False, compare=False)  # appends: OUT/.lock
    _sources: tuple[list[str], dict[str, float]] | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def sources(self) -> list[str]:
        """The source name of each input file (by input index)."""
        return self._resolved()[0]

    @property
    def weights(self) -> dict[str, float]:
        """Every source name, sorted, with its mixture weight (1.0 unless a rule says otherwise)."""
        return self._resolved()[1]

    def _resolved(self) -> tuple[list[str], dict[str, float]]:
        if self._sources is None:
            try:
                self._sources = resolve_sources(
                    [f.path for f in self.inputs],
                    self.input_root,
                    self.config.mixture,
                    every_rule_used=self.version == 1,
                )
            except MixtureError as exc:
                raise PlanError(str(exc)) from None
        return self._sources

    def hold_output_lock(self) -> None:
        """Hold OUT/.lock shared for this plan's life (a `--force` elsewhere then refuses)."""
        if self.output_lock is None:
            lock = FileLock(self.output / LOCK_NAME)
            lock.acquire(shared=True)
            self.output_lock = lock

    def check_inputs_unchanged(self, indices: Sequence[int]) -> None:
        """Re-stat input files `indices`; InputsChanged naming the first that differs from plan.json."""
        for index in indices:
            recorded = self.inputs[index]
            try:
                stat = os.stat(recorded.path)
            except OSError as exc:
                raise InputsChanged(
                    f"{recorded.path}: input file is gone since `init` ({exc.strerror}); "
                    f"run `init --force` (or `prepare --force`) to start over"
                ) from None
            if (stat.st_size, stat.st_mtime_ns) != (recorded.size, recorded.mtime_ns):
                raise InputsChanged(
                    f"{recorded.path}: input file changed since `init` (size {recorded.size} → {stat.st_size}, "
                    f"mtime_ns {recorded.mtime_ns} → {stat.st_mtime_ns}); run `init --force` "
                    f"(or `prepare --force`) to start over"
                )

    # --- where things live -------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The corpus folder: this plan's output, or for an appended version the folder it was appended to."""
        return self.output if self.version == 1 else self.output.parents[1]

    def base_plans(self) -> list[Plan]:
        """The plans of the earlier versions, oldest first (empty for version 1)."""
        return [Plan.load(self.root / folder) for folder in self.base]

    @property
    def work_dir(self) -> Path:
        return self.output / "work"

    def docs_dir(self, split: str) -> Path:
        return self.output / "docs" / split

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"  # one tokenizer for every version

    # --- (de)serialisation --------------------------------------------------------------------
    def lineage(self) -> dict:
        """What an appended version builds on (part of its fingerprint); {} for version 1."""
        if self.version == 1:
            return {}
        return {"version": self.version, "base": self.base, "fixed_threshold": self.fixed_threshold}

    def to_json(self) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "num_tasks": self.num_tasks,
            "num_buckets": self.num_buckets,
            "inputs": [dataclasses.asdict(f) for f in self.inputs],
            "ignored": self.ignored,
            "input_root": self.input_root,
            "task_files": self.task_files,
            "config": to_dict(self.config),
            **self.lineage(),
        }

    @classmethod
    def load(cls, output: str | Path) -> Plan:
        output = Path(output)
        path = output / "plan.json"
        if not path.is_file():
            raise PlanError(f"{path}: not found — run `python -m pipeline init` (or `prepare`) for {output} first")
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            output=output,
            inputs=[InputFile(**f) for f in raw["inputs"]],
            ignored=raw["ignored"],
            config=from_dict(PrepareConfig, raw["config"]),
            num_tasks=raw["num_tasks"],
            num_buckets=raw["num_buckets"],
            task_files=raw["task_files"],
            fingerprint=raw["fingerprint"],
            input_root=raw.get("input_root", "."),
            version=raw.get("version", 1),
            base=raw.get("base", []),
            fixed_threshold=raw.get("fixed_threshold"),
        )


def expand_inputs(patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Glob patterns (with `**`) → (sorted supported files, sorted ignored matches)."""
    matches: set[str] = set()
    for pattern in patterns:
        matches.update(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    supported = sorted(p for p in matches if p.endswith(SUPPORTED_SUFFIXES))
    ignored = sorted(matches - set(supported))
    return supported, ignored


def assign_files_to_tasks(sizes: Sequence[int], num_tasks: int) -> list[list[int]]:
    """Contiguous runs of files with about equal bytes per task (a task may get none)."""
    total = sum(sizes) or 1
    tasks: list[list[int]] = [[] for _ in range(num_tasks)]
    cumulative = 0
    for index, size in enumerate(sizes):
        # the file's midpoint decides its task, so a big file does not push its neighbours out
        middle = cumulative + size / 2
        tasks[min(num_tasks - 1, int(middle * num_tasks / total))].append(index)
        cumulative += size
    return tasks


def default_num_tasks(sizes: Sequence[int]) -> int:
    if not sizes:
        return 1
    return max(1, min(len(sizes), tasks_for_bytes(sum(sizes))))


def compute_fingerprint(
    inputs: list[InputFile],
    config: PrepareConfig,
    num_tasks: int,
    num_buckets: int,
    root: str = ".",
    lineage: dict | None = None,
) -> str:
    identity = {
        "inputs": [dataclasses.astuple(f) for f in inputs],
        "input_root": root,
        "config": to_dict(config),
        "num_tasks": num_tasks,
        "num_buckets": num_buckets,
        **(lineage or {}),  # an appended version: its place in the chain and what it was appended to
    }
    return fingerprint(identity)


def _describe_difference(old: dict, new: dict) -> str:
    lines = []
    if old["inputs"] != new["inputs"]:
        before = {f["path"]: f for f in old["inputs"]}
        after = {f["path"]: f for f in new["inputs"]}
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
        for label, items in (("new", added), ("gone", removed), ("changed", changed)):
            if items:
                lines.append(f"{len(items)} input file(s) {label}, e.g. {items[0]}")
    for key in ("num_tasks", "num_buckets", "input_root"):
        if old.get(key) != new.get(key):
            lines.append(f"{key}: {old[key]} → {new[key]}")

    def flatten(data, prefix=""):
        if isinstance(data, dict):
            for k, v in data.items():
                yield from flatten(v, f"{prefix}{k}.")
        else:
            yield prefix.rstrip("."), data

    old_cfg, new_cfg = dict(flatten(old["config"])), dict(flatten(new["config"]))
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if old_cfg.get(key) != new_cfg.get(key):
            lines.append(f"config {key}: {old_cfg.get(key)!r} → {new_cfg.get(key)!r}")
    return "; ".join(lines[:8]) or "fingerprint differs"


def create_plan(
    patterns: Sequence[str],
    output: str | Path,
    config: PrepareConfig,
    num_tasks: int | None = None,
    force: bool = False,
) -> Plan:
    """Glob, assign tasks and write OUT/plan.json — or reuse an identical existing plan."""
    output = Path(output)
    files, ignored = expand_inputs(patterns)
    if not files:
        raise PlanError(
            f"no .csv or .csv.zst file matches {list(patterns)}" + (f" (ignored: {ignored[:3]})" if ignored else "")
        )
    inputs = []
    for path in files:
        stat = os.stat(path)
        inputs.append(InputFile(path=path, size=stat.st_size, mtime_ns=stat.st_mtime_ns))
    sizes = [f.size for f in inputs]
    if num_tasks is None or num_tasks <= 0:
        num_tasks = config.num_tasks or default_num_tasks(sizes)
    num_buckets = config.dedup.num_buckets
    root = input_root(patterns)
    fingerprint = compute_fingerprint(inputs, config, num_tasks, num_buckets, root)
    plan = Plan(
        output=output,
        inputs=inputs,
        ignored=ignored,
        config=config,
        num_tasks=num_tasks,
        num_buckets=num_buckets,
        task_files=assign_files_to_tasks(sizes, num_tasks),
        fingerprint=fingerprint,
        input_root=root,
    )
    plan.sources  # a bad `mixture:` rule fails here, before anything is written  # noqa: B018
    output.mkdir(parents=True, exist_ok=True)
    plan.output_lock = open_output(plan, force)
    return plan


def _read_plan_json(path: Path) -> dict | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"fingerprint": None, "unreadable": True}
    return raw if isinstance(raw, dict) else {"fingerprint": None, "unreadable": True}


def _plan_temporaries(output: Path) -> list[Path]:
    return list(output.glob(".plan.json.tmp*"))  # left by an init killed while writing plan.json


def _holds_anything(output: Path) -> bool:
    leftovers = {LOCK_NAME, *(p.name for p in _plan_temporaries(output))}
    return any(entry.name not in leftovers for entry in output.iterdir())


def open_output(plan: Plan, force: bool) -> FileLock:
    """Agree with every other process in OUT on plan.json; returns OUT/.lock held shared."""
    output = plan.output
    plan_path = output / "plan.json"
    lock = FileLock(output / LOCK_NAME)
    lock.acquire(shared=True)
    old = _read_plan_json(plan_path)
    if old is not None and old.get("fingerprint") == plan.fingerprint:
        return lock
    if not force:
        lock.release()
        if old is not None and old.get("unreadable"):
            raise PlanError(f"{plan_path}: unreadable; use --force to delete {output}'s outputs and start over")
        if old is not None:
            raise PlanError(
                f"{output} was prepared from different inputs or config ({_describe_difference(old, plan.to_json())}). "
                f"Use another --output, or --force to delete its outputs and start over."
            )
    # plan.json must be written: only alone in OUT (exclusive), never under a running task
    lock.release()
    told = False
    while not lock.try_acquire(shared=False):
        if force:
            raise PlanError(
                f"{output / LOCK_NAME}: {output} is in use by another prepare/init/task; "
                "--force deletes nothing under a running process — stop it first"
            )
        current = _read_plan_json(plan_path)
        if current is not None and current.get("fingerprint") == plan.fingerprint:
            lock.acquire(shared=True)  # another run started together with us wrote the same plan
            return lock
        if current is not None:
            raise PlanError(f"{output}: another run wrote a different plan.json meanwhile; re-run to see it")
        if not told:
            print(f"{output}: waiting for another process to finish writing plan.json", file=sys.stderr, flush=True)
            told = True
        time.sleep(0.05)
    try:
        current = _read_plan_json(plan_path)
        if current is None or current.get("fingerprint") != plan.fingerprint:
            if force:
                remove_outputs(output)
            elif current is not None:
                raise PlanError(f"{output}: another run wrote a different plan.json meanwhile; re-run to see it")
            elif _holds_anything(output):
                raise PlanError(
                    f"{output} exists, is not empty and holds no plan.json; refusing to write into it (use --force)"
                )
            for leftover in _plan_temporaries(output):  # alone in OUT: no live writer owns them
                leftover.unlink(missing_ok=True)
            write_json_atomically(plan_path, plan.to_json())
    except BaseException:
        lock.release()
        raise
    lock.acquire(shared=True)  # downgrade: other runs and tasks may now work beside us
    return lock


OUTPUT_ENTRIES = (
    "plan.json",
    "work",
    "docs",
    "tokenizer",
    "train",
    "validation",
    "manifest.json",
    "report.json",
    "report",
    "report.md",
    "dropped",
    "appends",  # versions added by `prepare --append`
)


def remove_outputs(output: Path) -> list[str]:
    """Delete what a preparation run writes (and nothing else) under `output`: the entries of
    OUTPUT_ENTRIES and their temporaries (`.plan.json.tmp-…`), whether or not plan.json is
    there to say what they are. Returns the names removed."""
    removed = []
    for entry in sorted(output.iterdir()):
        name = entry.name
        ours = name in OUTPUT_ENTRIES or any(
            name.startswith(f".{e}.tmp") or name.startswith(f".{e}.old") for e in OUTPUT_ENTRIES
        )
        if not ours:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(name)
    return removed
