"""`plan`: estimate steps, time, memory per GPU per ZeRO stage and disk of a training run, and the
time data preparation takes on a number of cores or SLURM array tasks.

    python -m pipeline plan --model configs/model/gpt2-small-zh.yaml --data OUT --gpus 8
    python -m pipeline plan --corpus-bytes 15GB --prep-cores 64          # preparation only
    python -m pipeline plan --corpus-bytes 15GB --prep-array 200         # 200 array tasks at a time
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pipeline.core.gpus import GPUS
from pipeline.data.prepare_plan import tasks_for_bytes
from pipeline.tools.corpus_gen import parse_size
from pipeline.tools.run_planner import (
    DEFAULT_MFU,
    PlanInputs,
    format_plan,
    format_prep_projection,
    make_plan,
    measured_tokens_per_s,
    model_shape,
    prep_projection,
)

# Start-up of one SLURM array task's process (interpreter, imports, reading the plan) before it
# does any work: `python -m pipeline task …` costs about this on the development machine.
SLURM_TASK_START_S = 1.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model config YAML (configs/model/…); without it, only preparation")
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
    prep = parser.add_argument_group("data preparation (projected from measured per-core rates)")
    prep.add_argument(
        "--corpus-bytes", type=parse_size, help="CSV input size, e.g. 15GB (default with --data: its report.json)"
    )
    prep.add_argument("--prep-cores", type=int, help="local `prepare --workers N` on N cores")
    prep.add_argument("--prep-array", type=int, help="N SLURM array tasks running at a time (one core each)")
    prep.add_argument("--prep-tasks", type=int, help="file-sliced tasks (default: as prepare picks, ~32 MiB each)")
    prep.add_argument(
        "--prep-buckets", type=int, help="dedup buckets (default: --data's plan, else 64 as configs/data/default.yaml)"
    )


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


def prep_from_args(args) -> list[dict]:
    """Projections for --prep-cores and/or --prep-array (none without a corpus size)."""
    input_bytes, tasks, buckets = args.corpus_bytes, args.prep_tasks, args.prep_buckets
    if args.data is not None and (args.data / "report.json").is_file():
        report = json.loads((args.data / "report.json").read_text(encoding="utf-8"))
        input_bytes = input_bytes or report["inputs"]["bytes"]
        if (args.data / "plan.json").is_file():
            frozen = json.loads((args.data / "plan.json").read_text(encoding="utf-8"))
            tasks, buckets = tasks or frozen["num_tasks"], buckets or frozen["num_buckets"]
    if input_bytes is None:
        if args.prep_cores or args.prep_array:
            raise ValueError("--prep-cores/--prep-array need --corpus-bytes or a --data dir with report.json")
        return []
    if tasks is None:  # as prepare picks (assuming at least as many files as tasks)
        tasks = tasks_for_bytes(input_bytes)
    setups = [(args.prep_cores, 0.0)] if args.prep_cores else []
    setups += [(args.prep_array, SLURM_TASK_START_S)] if args.prep_array else []
    if not setups:
        setups = [(os.cpu_count() or 1, 0.0)]
    return [prep_projection(input_bytes, cores, tasks, buckets or 64, task_start_s=start) for cores, start in setups]


def run(args) -> int:
    try:
        projections = prep_from_args(args)
        if args.model is None:
            if not projections:
                raise ValueError("--model is required (or --corpus-bytes / --data for a preparation estimate)")
            print(
                json.dumps(projections, indent=2) if args.json else "\n".join(map(format_prep_projection, projections))
            )
            return 0
        plan = make_plan(inputs_from_args(args))
    except (ValueError, FileNotFoundError) as exc:
        print(f"plan: {exc}")
        return 2
    plan["prepare"] = projections
    plan["memory"] = [
        row
        for row in plan["memory"]
        if (args.zero is None or row["stage"] == args.zero) and (args.offload is None or row["offload"] == args.offload)
    ]
    text = format_plan(plan) + "".join("\n\n" + format_prep_projection(p) for p in projections)
    print(json.dumps(plan, indent=2) if args.json else text)
    return 0
