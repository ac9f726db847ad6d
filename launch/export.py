"""Export a training run's checkpoint as a Hugging Face model directory.

    python launch/export.py RUN [--tag TAG] [--out DIR]      # default: the latest checkpoint → RUN/hf
    python launch/export.py RUN/checkpoints/TAG [--out DIR]  # a given checkpoint
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.train.export import ExportError, export_hf  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="training run directory (holds checkpoints/, hf_config/, tokenizer/), or RUN/checkpoints/TAG")
    parser.add_argument("--tag", help="checkpoint tag under RUN/checkpoints (default: the one in RUN/checkpoints/latest)")
    parser.add_argument("--out", type=Path, help="output directory (default: RUN/hf)")
    args = parser.parse_args(argv)
    try:
        out = export_hf(args.run_dir, tag=args.tag, out_dir=args.out)
    except ExportError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 2
    print(f"exported to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
