"""`report`: figures and a markdown report of a prepared data directory or of a training run.

python -m pipeline report --output OUT   # OUT/report.json → OUT/report/*.png + OUT/report.md
python -m pipeline report --run RUN      # RUN/metrics.jsonl → RUN/report/*.png + RUN/report.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.tools.report_plots import render_data_report, render_training_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--output", type=Path, help="prepared data directory (holds report.json)")
    source.add_argument("--run", type=Path, help="training run directory (holds metrics.jsonl)")


def run(args: argparse.Namespace) -> int:
    directory = args.output if args.output is not None else args.run
    render = render_data_report if args.output is not None else render_training_report
    try:
        result = render(directory)
    except (FileNotFoundError, ValueError, json.JSONDecodeError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result['markdown']} and {len(result['figures'])} figures in {Path(directory) / 'report'}")
    return 0
