"""`python -m pipeline task STAGE --task-id I --output OUT`: run exactly one task.

For SLURM array jobs: `--task-id` defaults to $SLURM_ARRAY_TASK_ID. A finished task (its
marker exists and matches the plan) is skipped, so re-running a failed or killed array is
always safe. If the same task is running elsewhere (a late original beside a requeued task)
this one waits for it and then finds it done; with --no-wait it exits 4 instead. A clean
task whose input files changed since `init` refuses with exit code 3.
"""

from __future__ import annotations

import argparse
import os
import sys

from pipeline.commands.common import add_threads_argument
from pipeline.data.executor import run_one_task
from pipeline.data.prepare_plan import Plan
from pipeline.data.stages import STAGE_NAMES, get_stage, pack


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGE_NAMES)
    parser.add_argument("--output", "-o", required=True)
    parser.add_argument("--task-id", type=int, default=None, help="default: $SLURM_ARRAY_TASK_ID")
    parser.add_argument(
        "--no-wait", action="store_true", help="exit 4 if the task is running elsewhere, instead of waiting for it"
    )
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    task_id = args.task_id
    if task_id is None:
        if "SLURM_ARRAY_TASK_ID" not in os.environ:
            print("error: give --task-id (or run inside a SLURM array job)", file=sys.stderr)
            return 2
        task_id = int(os.environ["SLURM_ARRAY_TASK_ID"])
    pack.set_encode_threads(args.threads)
    plan = Plan.load(args.output)
    plan.hold_output_lock()
    stage = get_stage(args.stage)
    ran = run_one_task(plan, stage, task_id, wait=not args.no_wait)
    print(f"[{stage.name}] task {task_id}: {'done' if ran else 'already done, skipped'}")
    return 0
