"""Arguments shared by `prepare`, `init` and `task`: inputs, output, config file and overrides, threads."""

from __future__ import annotations

import argparse
import os

from pipeline.core.typed_config import load_config
from pipeline.data.prepare_config import PrepareConfig
from pipeline.data.prepare_plan import Plan, create_plan


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="sentencepiece threads per pack task (when a task owns more than one core; the shards are the same)",
    )


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        "-i",
        action="append",
        required=True,
        metavar="GLOB",
        help="glob over .csv/.csv.zst files, `**` allowed; repeatable (quote it: 'corpus/**/*.csv*')",
    )
    parser.add_argument("--output", "-o", required=True, help="output directory")
    parser.add_argument("--config", help="YAML data config (see configs/data/); defaults apply otherwise")
    parser.add_argument(
        "--num-tasks",
        type=int,
        default=None,
        help="tasks per file-sliced stage (default: config num_tasks, else ~1 per 32 MiB of input)",
    )
    parser.add_argument("--tokenizer", help="use this pre-trained tokenizer directory instead of training one")
    parser.add_argument(
        "--force",
        action="store_true",
        help="delete earlier outputs in --output that were made with other inputs/config",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. clean.min_chars=10 tokenizer.vocab_size=8000",
    )


def plan_from_arguments(args: argparse.Namespace) -> Plan:
    overrides = list(args.overrides)
    if args.tokenizer:
        overrides.append(f"tokenizer.pretrained={os.path.abspath(args.tokenizer)}")
    config = load_config(PrepareConfig, args.config, overrides)
    return create_plan(args.input, args.output, config, num_tasks=args.num_tasks, force=args.force)
