"""`python -m pipeline prepare`: every stage, locally, with a process pool.

Re-running the same command resumes: finished tasks are skipped (see executor.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from pipeline.commands.common import add_plan_arguments, plan_from_arguments
from pipeline.core.atomic import write_json_atomically
from pipeline.data.executor import run_stage_locally
from pipeline.data.stages import STAGES
from pipeline.data.stages.clean import require_rows
from pipeline.data.summary import format_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_plan_arguments(parser)
    parser.add_argument("--workers", "-w", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    parser.add_argument("--timings", metavar="FILE", help="also write per-stage seconds as JSON (benchmarks)")


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its finished workers (a stage's pool is joined
    before the stage returns): per-stage cost that a loaded machine does not inflate."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def run(args: argparse.Namespace) -> int:
    start = time.monotonic()
    plan = plan_from_arguments(args)
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
    return 0
