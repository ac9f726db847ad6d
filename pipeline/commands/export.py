"""`export`: a training run's checkpoint as a Hugging Face model directory.

python -m pipeline export RUN [--tag TAG] [--out DIR]      # default: the latest checkpoint → RUN/hf
python -m pipeline export RUN/checkpoints/TAG [--out DIR]  # a given checkpoint
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.train.export import ExportError, export_hf


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir",
        type=Path,
        help="training run directory (holds checkpoints/, hf_config/, tokenizer/), or RUN/checkpoints/TAG",
    )
    parser.add_argument("--tag", help="checkpoint tag under RUN/checkpoints (default: the newest committed one)")
    parser.add_argument("--out", type=Path, help="output directory (default: RUN/hf)")


def run(args: argparse.Namespace) -> int:
    try:
        out = export_hf(args.run_dir, tag=args.tag, out_dir=args.out)
    except ExportError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 2
    print(f"exported to {out}")
    return 0
