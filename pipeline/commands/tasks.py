"""`python -m pipeline tasks [STAGE] --output OUT`: the number of tasks of STAGE (for --array);
without STAGE, one `STAGE COUNT` line per stage, in execution order (for submit scripts)."""

from __future__ import annotations

import argparse

from pipeline.data.prepare_plan import Plan
from pipeline.data.stages import STAGE_NAMES, STAGES, get_stage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", nargs="?", choices=STAGE_NAMES)
    parser.add_argument("--output", "-o", required=True)


def run(args: argparse.Namespace) -> int:
    plan = Plan.load(args.output)
    if args.stage:
        print(get_stage(args.stage).count_tasks(plan))
    else:
        for stage in STAGES:
            print(stage.name, stage.count_tasks(plan))
    return 0
