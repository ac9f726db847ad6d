"""`prepare --append`: add new input files to a prepared corpus without redoing it.

The inputs are globbed again; files an earlier version already holds are skipped (one that
changed since is refused: its documents are already trained on), and the rest become version
N+1 in OUT/appends/<NNNN>/ — a plan of its own, run by the same stages and the same executor
(resumable, one writer per task), with three differences that keep it one corpus:

- dedup reads the earlier versions' hash tables (their work/buckets/ persist): a text any
  earlier version holds is a duplicate here, and the row holding it takes that document's
  side of the split; the earlier versions' decisions never change;
- the split uses version 1's validation threshold; the tokenizer is version 1's;
- the config, the input root (source names, mixture weights) are version 1's: an append
  cannot change how documents are cleaned.

Then version 1's finalize is re-run, which publishes the version in OUT/manifest.json
(pipeline/data/versions.py). The new files come after every earlier file in the global order,
so when their paths also sort after the old ones (new shards with higher numbers) the
documents and their sides are exactly those of one `prepare` over all the files; docs/data.md
says what differs otherwise. Running the same append again finds no new file: a no-op.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from pipeline.data.executor import is_done, marker_path, read_marker, run_one_task, tidy_finished
from pipeline.data.prepare_plan import (
    InputFile,
    Plan,
    PlanError,
    assign_files_to_tasks,
    compute_fingerprint,
    default_num_tasks,
    expand_inputs,
    open_output,
)
from pipeline.data.stages import finalize
from pipeline.data.versions import append_folder, published_appends


def _known_inputs(root_plan: Plan, appended: list[Plan]) -> dict[str, tuple[InputFile, int]]:
    known = {}
    for plan in [root_plan, *appended]:
        for entry in plan.inputs:
            known[entry.path] = (entry, plan.version)
    return known


def create_append_plan(
    patterns: Sequence[str], root: str | Path, num_tasks: int | None = None, force: bool = False
) -> Plan | None:
    """The plan of the next version over the new files matching `patterns`, or None when
    every matching file is already in an earlier version."""
    root = Path(root)
    root_plan = Plan.load(root)
    if not (root / "manifest.json").is_file():
        raise PlanError(f"{root}: not a finished preparation (no manifest.json) — run `prepare` on it first")
    if root_plan.config.dedup.near.enabled:
        raise PlanError(
            f"{root}: prepared with dedup.near.enabled; `--append` deduplicates exactly against the earlier "
            "versions but cannot yet find near duplicates across them — prepare all files in one run instead"
        )
    appended = published_appends(root)
    _publish_unlisted(root_plan, appended)
    for plan in [root_plan, *appended]:
        # a kill between a finalize marker and the removal of its journal leaves the journal, and
        # no later run of these finished versions would tidy it (an append only ever adds)
        tidy_finished(plan, finalize.STAGE.name, 0)
    known = _known_inputs(root_plan, appended)
    files, ignored = expand_inputs(patterns)
    new = []
    for path in files:
        stat = os.stat(path)
        if path in known:
            entry, version = known[path]
            if (stat.st_size, stat.st_mtime_ns) != (entry.size, entry.mtime_ns):
                raise PlanError(
                    f"{path}: changed since version {version} prepared it (size {entry.size} → {stat.st_size}); "
                    f"`--append` adds new files only — prepare from scratch (--force, or a new --output)"
                )
            continue
        new.append(InputFile(path=path, size=stat.st_size, mtime_ns=stat.st_mtime_ns))
    if not new:
        return None
    version = 2 + len(appended)
    sizes = [f.size for f in new]
    if num_tasks is None or num_tasks <= 0:
        num_tasks = default_num_tasks(sizes)
    config = root_plan.config
    plan = Plan(
        output=append_folder(root, version),
        inputs=new,
        ignored=ignored,
        config=config,
        num_tasks=num_tasks,
        num_buckets=root_plan.num_buckets,
        task_files=assign_files_to_tasks(sizes, num_tasks),
        fingerprint="",
        input_root=root_plan.input_root,
        version=version,
        base=[str(p.output.relative_to(root)) for p in [root_plan, *appended]],
        fixed_threshold=int(read_marker(root_plan, "group", 0)["threshold"]),
    )
    plan.fingerprint = compute_fingerprint(
        new, config, num_tasks, plan.num_buckets, plan.input_root, lineage=plan.lineage()
    )
    plan.sources  # a mixture rule that cannot place a new file fails here, before anything is written  # noqa: B018
    root_plan.hold_output_lock()  # a `--force` on the corpus refuses while we append to it
    plan.output.mkdir(parents=True, exist_ok=True)
    plan.output_lock = open_output(plan, force)
    plan.root_lock = root_plan.output_lock  # held for this plan's life
    return plan


def _publish_unlisted(root_plan: Plan, appended: list[Plan]) -> None:
    """A kill after a version was finished but before the manifest listed it: publish it now."""
    listed = json.loads((root_plan.output / "manifest.json").read_text(encoding="utf-8")).get("versions") or [{}]
    if appended and (len(listed) < 1 + len(appended) or not is_done(root_plan, "finalize", 0)):
        print(
            f"{root_plan.output}: version {appended[-1].version} is prepared but not yet in manifest.json: publishing it"
        )
        publish(appended[-1])


def publish(plan: Plan) -> None:
    """Make the finished version `plan` part of OUT/manifest.json: re-run version 1's finalize."""
    root_plan = Plan.load(plan.root)
    marker_path(root_plan, "finalize", 0).unlink(missing_ok=True)
    run_one_task(root_plan, finalize.STAGE, 0)
