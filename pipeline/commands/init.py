"""`python -m pipeline init`: freeze inputs, config and task counts into OUT/plan.json.

Run once before submitting stages as SLURM array jobs; `prepare` does it by itself.
"""

from __future__ import annotations

import argparse

from pipeline.commands.common import add_plan_arguments, plan_from_arguments
from pipeline.data.stages import STAGES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_plan_arguments(parser)


def run(args: argparse.Namespace) -> int:
    plan = plan_from_arguments(args)
    print(f"{plan.output / 'plan.json'}: {len(plan.inputs)} input files, fingerprint {plan.fingerprint[:12]}")
    for stage in STAGES:
        count = stage.count_tasks(plan)
        print(f"  {stage.name:<12} {count} task(s)" if count else f"  {stage.name:<12} off")
    return 0
