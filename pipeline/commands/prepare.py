"""`python -m pipeline prepare`: every stage, locally, with a process pool.

Re-running the same command resumes: finished tasks are skipped (see executor.py).
`--append` prepares only new input files, as the next version of --output (data/append.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from pipeline.commands.common import add_plan_arguments, add_threads_argument, plan_from_arguments
from pipeline.core.atomic import write_json_atomically
from pipeline.data.append import create_append_plan, publish
from pipeline.data.executor import run_stage_locally
from pipeline.data.prepare_plan import Plan, PlanError
from pipeline.data.stages import STAGES, pack
from pipeline.data.stages.clean import require_rows
from pipeline.data.summary import format_summary
from pipeline.formats.manifest import load_manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_plan_arguments(parser)
    parser.add_argument("--workers", "-w", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    add_threads_argument(parser)
    parser.add_argument("--timings", metavar="FILE", help="also write per-stage seconds as JSON (benchmarks)")
    parser.add_argument(
        "--append",
        action="store_true",
        help="add the input files that --output does not hold yet as a new version (OUT/appends/NNNN), "
        "deduplicated against it, with its config and tokenizer; see docs/data.md",
    )


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its finished workers (a stage's pool is joined
    before the stage returns): per-stage cost that a loaded machine does not inflate."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def _append_plan(args: argparse.Namespace) -> Plan | None:
    given = [name for name, value in (("--config", args.config), ("--tokenizer", args.tokenizer)) if value]
    if given or args.overrides:
        raise PlanError(
            f"--append takes the config and tokenizer of {args.output} (an append cannot change how documents "
            f"are cleaned or encoded); drop {', '.join(given + list(args.overrides))}"
        )
    plan = create_append_plan(args.input, args.output, args.num_tasks, args.force)
    if plan is None:
        print(f"prepare --append: every file matching {args.input} is already in {args.output}: nothing to do")
    return plan


def run(args: argparse.Namespace) -> int:
    start = time.monotonic()
    pack.set_encode_threads(args.threads)  # the forked workers inherit it
    plan = _append_plan(args) if args.append else plan_from_arguments(args)
    if plan is None:
        return 0
    print(
        f"prepare: {len(plan.inputs)} input files ({sum(f.size for f in plan.inputs) / 1e6:.1f} MB) → {plan.output}, "
        f"{plan.num_tasks} tasks, {args.workers} workers"
    )
    seconds, cpu_seconds = {}, {}
    for stage in STAGES:
        if stage.count_tasks(plan) == 0:
            continue  # switched off in the config
        cpu_before = _cpu_seconds()
        seconds[stage.name] = run_stage_locally(plan, stage, args.workers, show_progress=not args.quiet)
        cpu_seconds[stage.name] = _cpu_seconds() - cpu_before
        if stage.name == "clean":
            require_rows(plan)  # fail before dedup if every input file was unreadable
    if args.timings:
        write_json_atomically(
            args.timings,
            {"stages": seconds, "cpu_stages": cpu_seconds, "total": time.monotonic() - start, "workers": args.workers},
        )
    report = json.loads((plan.output / "report.json").read_text(encoding="utf-8"))
    print(format_summary(report, plan.output, seconds, time.monotonic() - start))
    if plan.version > 1:
        publish(plan)
        manifest = load_manifest(plan.root)
        print(
            f"published version {plan.version} in {plan.root / 'manifest.json'}: "
            f"{manifest.num_blocks('train'):,} train blocks, {manifest.num_blocks('validation'):,} validation blocks "
            f"over {len(manifest.raw['versions'])} versions; a resumed training run takes the new blocks from its "
            f"next epoch"
        )
    return 0
