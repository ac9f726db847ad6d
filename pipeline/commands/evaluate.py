"""Held-out perplexity and next-token accuracy of a Hugging Face causal LM, as JSON.

python -m pipeline evaluate --model RUN/hf --data OUT                 # packed validation shards
python -m pipeline evaluate --model RUN/hf --text held_out.csv        # packed on the fly
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.commands.model_args import add_model_arguments
from pipeline.core.atomic import write_json_atomically
from pipeline.evaluation.model_eval import EvaluationRequest, evaluate
from pipeline.formats.manifest import ManifestError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="prepared data directory (manifest.json + shards)")
    source.add_argument(
        "--text", type=Path, help="CSV file (content column) or text file (blank-line separated documents)"
    )
    parser.add_argument("--split", default="validation", help="split of --data to score (default: validation)")
    parser.add_argument("--column", default="content", help="CSV column holding the text (default: content)")
    parser.add_argument(
        "--block-size", type=int, help="tokens per block for --text (default: min(512, model positions))"
    )
    parser.add_argument(
        "--max-blocks",
        type=int,
        help="score only the first N blocks (default: the blocks the training run scored, when the export records them)",
    )
    parser.add_argument(
        "--all-blocks", action="store_true", help="score every block, not the training run's eval selection"
    )
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument("--no-unigram", action="store_true", help="skip the unigram baseline")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    request = EvaluationRequest(
        model_dir=args.model,
        data_dir=args.data,
        text_file=args.text,
        split=args.split,
        column=args.column,
        block_size=args.block_size,
        max_blocks=args.max_blocks,
        all_blocks=args.all_blocks,
        micro_batch_size=args.micro_batch_size,
        device=args.device,
        dtype=args.dtype,
        unigram=not args.no_unigram,
        progress=not args.quiet,
    )
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        result = evaluate(request)
    except (ValueError, FileNotFoundError, ManifestError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    if args.output:
        write_json_atomically(args.output, result)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if "selection" in result:
        print(f"scored: {result['selection']}", file=sys.stderr)
    summary = f"perplexity {result['perplexity']:.2f} (next-token accuracy {result['accuracy']:.1%}) on {result['tokens']:,} tokens"
    if "unigram" in result:
        summary += f" vs unigram {result['unigram']['perplexity']:.2f}"
    print(summary, file=sys.stderr)  # for people; stdout stays pure JSON
    for name, scored in result.get("per_source", {}).items():
        print(f"  {name:<24} perplexity {scored['perplexity']:.2f} on {scored['tokens']:,} tokens", file=sys.stderr)
    return 0
