"""Training report: loss, held-out perplexity, learning rate and tokens/s over steps.

    python launch/report.py RUN        # RUN/metrics.jsonl → RUN/report/*.png + RUN/report.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.report_plots import render_training_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="training run directory (holds metrics.jsonl)")
    args = parser.parse_args(argv)
    try:
        result = render_training_report(args.run_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result['markdown']} and {len(result['figures'])} figures in {args.run_dir / 'report'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
