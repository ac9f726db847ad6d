"""`plan`: estimate steps, time, memory per GPU per ZeRO stage and disk of a training run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.core.gpus import GPUS
from pipeline.tools.run_planner import (
    DEFAULT_MFU,
    PlanInputs,
    format_plan,
    make_plan,
    measured_tokens_per_s,
    model_shape,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model config YAML (configs/model/…)")
    parser.add_argument(
        "--data", type=Path, help="prepared data directory: vocabulary, block size and (default) token budget"
    )
    parser.add_argument("--vocab-size", type=int, help="without --data (default 32000)")
    parser.add_argument("--block-size", type=int, help="without --data (default 512)")
    parser.add_argument(
        "--train-tokens", type=float, help="token budget (default with --data: one epoch of the train split)"
    )
    parser.add_argument("--gpus", type=int, default=1, help="GPUs per node")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpu", default="h100", choices=sorted(GPUS))
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--zero", type=int, choices=[0, 1, 2, 3], help="only show this ZeRO stage")
    parser.add_argument("--offload", choices=["none", "optimizer", "all"], help="only show this offload setting")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--attention", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument(
        "--mfu", type=float, default=DEFAULT_MFU, help=f"assumed model FLOPs utilisation (default {DEFAULT_MFU})"
    )
    parser.add_argument(
        "--metrics", type=Path, help="RUN/metrics.jsonl: use its measured tokens/s instead of the MFU assumption"
    )
    parser.add_argument(
        "--keep-checkpoints", type=int, default=3, help="checkpoints kept on disk (default 3: last 2 + best)"
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def inputs_from_args(args) -> PlanInputs:
    from pipeline.core.typed_config import load_config
    from pipeline.formats.manifest import load_manifest
    from pipeline.model.model_config import ModelConfig, build_hf_config

    vocab, block, budget = args.vocab_size or 32000, args.block_size or 512, args.train_tokens
    if args.data is not None:
        manifest = load_manifest(args.data)
        vocab, block = manifest.vocab_size, manifest.block_size
        if budget is None:
            budget = manifest.num_blocks("train") * block
    if budget is None:
        raise ValueError("--train-tokens is required without --data")
    model_cfg = load_config(ModelConfig, args.model)
    shape = model_shape(build_hf_config(model_cfg, vocab, block))
    return PlanInputs(
        shape=shape,
        block_size=block,
        train_tokens=int(budget),
        gpu=args.gpu,
        gpus_per_node=args.gpus,
        nodes=args.nodes,
        micro_batch=args.micro_batch,
        grad_accum=args.grad_accum,
        mfu=args.mfu,
        precision=args.precision,
        measured_tokens_per_s=measured_tokens_per_s(args.metrics) if args.metrics else None,
        attention=args.attention,
        keep_checkpoints=args.keep_checkpoints,
        checkpointing=model_cfg.activation_checkpointing,
    )


def run(args) -> int:
    try:
        plan = make_plan(inputs_from_args(args))
    except (ValueError, FileNotFoundError) as exc:
        print(f"plan: {exc}")
        return 2
    plan["memory"] = [
        row
        for row in plan["memory"]
        if (args.zero is None or row["stage"] == args.zero) and (args.offload is None or row["offload"] == args.offload)
    ]
    print(json.dumps(plan, indent=2) if args.json else format_plan(plan))
    return 0
