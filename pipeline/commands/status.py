"""`python -m pipeline status --output OUT`: done/pending tasks of every stage."""

from __future__ import annotations

import argparse

from pipeline.data.executor import marker_path, marker_problem, pending_tasks
from pipeline.data.prepare_plan import Plan
from pipeline.data.stages import STAGES


def ranges(ids: list[int]) -> str:
    """[0,1,2,5,7,8] → '0-2,5,7-8'"""
    parts, start = [], None
    for i, value in enumerate(ids):
        if start is None:
            start = value
        if i + 1 == len(ids) or ids[i + 1] != value + 1:
            parts.append(f"{start}-{value}" if value != start else f"{value}")
            start = None
    return ",".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", required=True)


def run(args: argparse.Namespace) -> int:
    plan = Plan.load(args.output)
    print(f"{plan.output}: {len(plan.inputs)} input files, fingerprint {plan.fingerprint[:12]}")
    complete = True
    for stage in STAGES:
        total = stage.count_tasks(plan)
        pending = pending_tasks(plan, stage)
        complete &= not pending
        state = "off" if total == 0 else "done" if not pending else f"pending: {ranges(pending)}"
        print(f"  {stage.name:<12} {total - len(pending):>5}/{total:<5} {state}")
        stale = [i for i in pending if marker_path(plan, stage.name, i).exists()]
        if stale:  # a marker is there but does not count: say why (another plan, a damaged output…)
            print(
                f"  {'':<12} {len(stale)} stale marker(s), e.g. task {stale[0]}: {marker_problem(plan, stage.name, stale[0])[0]}"
            )
    print("complete" if complete else "incomplete: re-run `prepare` (or the pending array tasks) to finish")
    return 0 if complete else 1
