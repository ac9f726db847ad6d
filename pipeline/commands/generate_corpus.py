"""`generate-corpus`: write a synthetic, messy Chinese CSV corpus tree (the demo's and the tests' input)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.tools.corpus_gen import MIN_FILES, generate_corpus, parse_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, type=Path, help="directory to write the tree into (new or empty)")
    parser.add_argument(
        "--size", type=parse_size, default=parse_size("5MB"), help="total bytes on disk, e.g. 5MB (default), 200MB, 1GB"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--files",
        type=int,
        default=None,
        help=f"number of files, at least {MIN_FILES} (default: one per ~2 MB, at least 16)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        summary = generate_corpus(args.output, args.size, seed=args.seed, files=args.files)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    megabytes = summary["bytes_written"] / 1e6
    print(
        f"wrote {len(summary['files'])} files, {summary['rows_written']:,} rows, {megabytes:.1f} MB to {args.output} "
        f"in {summary['seconds']:.1f} s ({megabytes / max(summary['seconds'], 1e-9):.1f} MB/s)"
    )
    print("damaged shards: " + ", ".join(f"{kind}={path}" for kind, path in summary["damaged_shards"].items()))
    print("damaged rows: " + ", ".join(f"{kind}={count}" for kind, count in summary["damage_counts"].items()))
    print(f"details: {args.output / 'generation.json'}")
    return 0
