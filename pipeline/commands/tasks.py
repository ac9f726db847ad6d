"""`python -m pipeline tasks STAGE --output OUT`: print the number of tasks of STAGE (for --array)."""
from __future__ import annotations

import argparse

from ..plan import Plan
from ..stages import STAGE_NAMES, get_stage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGE_NAMES)
    parser.add_argument("--output", "-o", required=True)


def run(args: argparse.Namespace) -> int:
    print(get_stage(args.stage).count_tasks(Plan.load(args.output)))
    return 0
