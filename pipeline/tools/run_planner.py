"""`python -m pipeline plan`: what a pretraining run will cost before it is launched.

For a model config, a token budget and a GPU allocation it prints tokens per step, steps,
step time and ETA, memory per GPU for every ZeRO stage, and disk for the kept checkpoints.

Assumptions (all printed with the plan):
- Compute: training FLOPs per token = 6·N + 12·L·d·T (N: parameters in matmuls, see
  `pipeline.train.metrics.flops_per_token`); a GPU delivers `peak bf16 dense TFLOP/s × MFU`.
  The default MFU (0.30) is an assumption, not a measurement: pass `--mfu`, or `--metrics
  RUN/metrics.jsonl` to use a run's measured tokens/s instead. Activation checkpointing
  recomputes the forward pass: 4/3 of the compute per step.
- Model states: DeepSpeed's own accounting for mixed precision (bf16 params and grads, fp32
  master weights, Adam moments and fp32 gradient partitions), the same formulas as
  `estimate_zero2_model_states_mem_needs` / `estimate_zero3_model_states_mem_needs` (checked in
  tests). ZeRO-0 and ZeRO-1 follow the same bookkeeping with less partitioned.
- Activations per layer (s tokens, micro-batch b, width h, a heads), measured for transformers'
  GPT-2 in bf16 with dropout 0.1 by summing the tensors autograd saves for backward
  (tests/tools/test_run_planner.py re-measures it on the CPU): 62·s·b·h bytes outside attention, plus
  Korthikanti et al.'s (2022) 5·a·s²·b for eager attention (measured to match) or ~4·s·b·h for
  SDPA's fused kernel (its output and log-sum-exp; on CUDA dropout stays inside the kernel).
  Korthikanti derive 34·s·b·h for Megatron's fused kernels; transformers' python GELU and
  2-byte masks cost more. The logits add ~10·s·b·V (bf16 logits, the fp32 copy the loss
  takes, its gradient). With activation checkpointing each layer keeps only its input
  (2·s·b·h, measured) and one layer at a time is recomputed.
- A fixed 1.5 GiB per GPU for the CUDA context, NCCL and communication buckets.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

from pipeline.core.gpus import GPUS

GIB = 2**30
RUNTIME_OVERHEAD_BYTES = int(1.5 * GIB)
DEFAULT_MFU = 0.30
# Where benchmarks/gpu_check.sh's numbers are recorded; until a GPU run fills it, the throughput
# above is an estimate and the plan says so.
MEASURED_AT = "docs/benchmarks.md#gpu-check"
LAYER_BYTES_OUTSIDE_ATTENTION = 62  # × s·b·h; transformers GPT-2, bf16, dropout on (measured, see above)
SDPA_BYTES_PER_LAYER = 4  # × s·b·h


@dataclasses.dataclass(frozen=True)
class ModelShape:
    params: int  # distinct parameters (tied embedding once), as DeepSpeed's model_to_params counts
    largest_layer_params: int  # largest module's own parameters (ZeRO-3 gathers one at a time)
    matmul_params: int  # parameters that cost FLOPs per token
    layers: int
    width: int
    heads: int
    positions: int
    vocab: int


def model_shape(hf_config) -> ModelShape:
    """Count parameters exactly by building the model on the meta device (no memory used)."""
    import torch
    from transformers import AutoModelForCausalLM

    from pipeline.model.flops import matmul_params

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    params = sum({id(p): p.numel() for p in model.parameters()}.values())
    largest = max(sum(p.numel() for p in module.parameters(recurse=False)) for module in model.modules())
    get = lambda *names: next(getattr(hf_config, n) for n in names if getattr(hf_config, n, None) is not None)  # noqa: E731
    return ModelShape(
        params=params,
        largest_layer_params=largest,
        matmul_params=matmul_params(model),
        layers=get("n_layer", "num_hidden_layers"),
        width=get("n_embd", "hidden_size"),
        heads=get("n_head", "num_attention_heads"),
        positions=get("n_positions", "max_position_embeddings"),
        vocab=hf_config.vocab_size,
    )


# ---------------------------------------------------------------- memory


@dataclasses.dataclass
class ModelStates:
    """Bytes per GPU for parameters, gradients and optimizer state; bytes per node in CPU RAM."""

    params: int
    gradients: int
    optimizer: int
    cpu: int = 0

    @property
    def gpu_total(self) -> int:
        return self.params + self.gradients + self.optimizer


def model_state_bytes(
    shape: ModelShape,
    stage: int,
    gpus_per_node: int,
    nodes: int = 1,
    offload: str = "none",
    precision: str = "bf16",
    buffer_factor: float = 1.5,
) -> ModelStates:
    """Per-GPU model states. bf16: 2 bytes params, 2+4 grads (16-bit + fp32 partition), 12 optimizer
    (fp32 master, Adam m and v) per parameter; fp32: 4, 4, 12. `offload`: none | optimizer | all.
    CPU bytes follow DeepSpeed's estimators (×`buffer_factor`)."""
    p, n = shape.params, gpus_per_node * nodes
    half, grad_full = (2, 4) if precision == "bf16" else (4, 0)  # fp32 has one gradient copy
    partition = lambda per_param: int(per_param * p / n)  # noqa: E731
    if stage == 0:
        return ModelStates(
            half * p, (2 if precision == "bf16" else 4) * p + grad_full * p, (12 if precision == "bf16" else 8) * p
        )
    if stage == 1:
        return ModelStates(half * p, (2 if precision == "bf16" else 0) * p + partition(4), partition(12))
    if stage == 2:
        if offload != "none":
            return ModelStates(half * p, 0, 0, int(p * max(4 * n, 16) * buffer_factor))
        return ModelStates(half * p, partition(6 if precision == "bf16" else 4), partition(12))
    if stage == 3:
        gathered = half * shape.largest_layer_params  # one layer's working params, gathered (+ its grads below)
        if offload == "all":
            return ModelStates(gathered, gathered, 0, int(p * 18 / nodes * buffer_factor))
        if offload == "optimizer":
            return ModelStates(partition(2) + gathered, gathered, 0, int(p * 16 / nodes * buffer_factor))
        # DeepSpeed's 18 bytes/param: 2 (16-bit partition) + 4 (fp32 grads) + 12 (master, m, v)
        return ModelStates(partition(half) + gathered, gathered + partition(4), partition(12))
    raise ValueError(f"zero stage: expected 0-3, got {stage}")


def activation_bytes(
    shape: ModelShape, micro_batch: int, seq: int, checkpointing: bool, attention: str = "sdpa", precision: str = "bf16"
) -> int:
    s, b, h, a = seq, micro_batch, shape.width, shape.heads
    attention_bytes = 5 * a * s * s * b if attention == "eager" else SDPA_BYTES_PER_LAYER * s * b * h
    per_layer = LAYER_BYTES_OUTSIDE_ATTENTION * s * b * h + attention_bytes
    around = 5 * s * b * h + 10 * s * b * shape.vocab  # embeddings + final norm; logits and loss
    scale = 2 if precision == "fp32" else 1
    if checkpointing:
        return scale * (shape.layers * 2 * s * b * h + per_layer + around)
    return scale * (shape.layers * per_layer + around)


def checkpoint_disk_bytes(shape: ModelShape, precision: str = "bf16") -> int:
    """One DeepSpeed checkpoint: module weights (16-bit or fp32) + fp32 master, Adam m, v.
    Measured on a 46,720-parameter fp32 ZeRO-2 checkpoint: 16.3 bytes per parameter."""
    return (2 if precision == "bf16" else 4) * shape.params + 12 * shape.params


# ---------------------------------------------------------------- time


def measured_tokens_per_s(metrics_path: Path, last: int = 50) -> float:
    """Median global tokens/s of the last `last` train records (skipping the first, warm-up one)."""
    from pipeline.formats.metrics_file import read_metrics

    speeds = [r["tokens_per_s"] for r in read_metrics(metrics_path, "train") if r.get("tokens_per_s")]
    if len(speeds) > 1:
        speeds = speeds[1:]
    if not speeds:
        raise ValueError(f"{metrics_path}: no train records with tokens_per_s")
    return float(statistics.median(speeds[-last:]))


def flops_per_token(shape: ModelShape, seq: int) -> float:
    from pipeline.model.flops import flops_per_token as training_flops

    return training_flops(shape.matmul_params, shape.layers, shape.width, seq)


# ---------------------------------------------------------------- the plan


@dataclasses.dataclass
class PlanInputs:
    shape: ModelShape
    block_size: int
    train_tokens: int
    gpu: str = "h100"
    gpus_per_node: int = 1
    nodes: int = 1
    micro_batch: int = 8
    grad_accum: int = 1
    mfu: float = DEFAULT_MFU
    measured_tokens_per_s: float | None = None
    precision: str = "bf16"
    attention: str = "sdpa"
    keep_checkpoints: int = 3
    checkpointing: bool = False  # the model config's choice, used for the time estimate


def make_plan(inputs: PlanInputs) -> dict:
    shape, gpu = inputs.shape, GPUS[inputs.gpu]
    world = inputs.gpus_per_node * inputs.nodes
    tokens_per_step = inputs.micro_batch * inputs.grad_accum * world * inputs.block_size
    steps = math.ceil(inputs.train_tokens / tokens_per_step)
    flops = flops_per_token(shape, inputs.block_size)
    peak = gpu.bf16_tflops if inputs.precision == "bf16" else gpu.fp32_tflops
    if inputs.measured_tokens_per_s:
        tokens_per_s = inputs.measured_tokens_per_s
        basis = "measured tokens/s from metrics.jsonl (valid for the same GPUs, batch and model)"
    else:
        tokens_per_s = world * peak * 1e12 * inputs.mfu / flops / (4 / 3 if inputs.checkpointing else 1)
        # No GPU was available to measure these: peak × an assumed MFU is an estimate, and says so.
        basis = (
            f"ESTIMATE, not measured on a GPU: {peak:g} TFLOP/s {inputs.precision} peak per GPU × assumed MFU {inputs.mfu:g}"
            + (" ÷ 4/3 for activation checkpointing" if inputs.checkpointing else "")
            + f" (measured GPU numbers go in {MEASURED_AT}: none yet)"
        )
    step_time = tokens_per_step / tokens_per_s
    memory = []
    usable = gpu.memory_gib * GIB - RUNTIME_OVERHEAD_BYTES
    for stage, offload in [
        (0, "none"),
        (1, "none"),
        (2, "none"),
        (2, "optimizer"),
        (3, "none"),
        (3, "optimizer"),
        (3, "all"),
    ]:
        states = model_state_bytes(shape, stage, inputs.gpus_per_node, inputs.nodes, offload, inputs.precision)
        row = {
            "stage": stage,
            "offload": offload,
            "params": states.params,
            "gradients": states.gradients,
            "optimizer": states.optimizer,
            "cpu_per_node": states.cpu,
        }
        for label, ckpt in (("plain", False), ("checkpointed", True)):
            act = activation_bytes(
                shape, inputs.micro_batch, inputs.block_size, ckpt, inputs.attention, inputs.precision
            )
            per_sample = activation_bytes(shape, 1, inputs.block_size, ckpt, inputs.attention, inputs.precision)
            total = states.gpu_total + act + RUNTIME_OVERHEAD_BYTES
            row[label] = {
                "activations": act,
                "total": total,
                "fits": total <= gpu.memory_gib * GIB,
                "max_micro_batch": max(0, int((usable - states.gpu_total) // per_sample)),
            }
        memory.append(row)
    per_checkpoint = checkpoint_disk_bytes(shape, inputs.precision)
    return {
        "model": {
            "params": shape.params,
            "matmul_params": shape.matmul_params,
            "largest_layer_params": shape.largest_layer_params,
            "layers": shape.layers,
            "width": shape.width,
            "heads": shape.heads,
            "vocab": shape.vocab,
        },
        "hardware": {
            "gpu": gpu.name,
            "gpus_per_node": inputs.gpus_per_node,
            "nodes": inputs.nodes,
            "memory_gib": gpu.memory_gib,
        },
        "batch": {
            "micro_batch": inputs.micro_batch,
            "grad_accum": inputs.grad_accum,
            "block_size": inputs.block_size,
            "tokens_per_step": tokens_per_step,
        },
        "budget": {"train_tokens": inputs.train_tokens, "steps": steps},
        "time": {
            "flops_per_token": flops,
            "tokens_per_s": tokens_per_s,
            "basis": basis,
            "step_time_s": step_time,
            "eta_s": steps * step_time,
            "implied_mfu": tokens_per_s * flops / (world * peak * 1e12),
        },
        "memory": memory,
        "disk": {
            "per_checkpoint": per_checkpoint,
            "kept": inputs.keep_checkpoints,
            "total": per_checkpoint * inputs.keep_checkpoints + 4 * shape.params,
            "hf_export": 4 * shape.params,
        },
        "assumptions": {
            "runtime_overhead_gib": RUNTIME_OVERHEAD_BYTES / GIB,
            "attention": inputs.attention,
            "precision": inputs.precision,
        },
    }


def _gib(value: int) -> str:
    return f"{value / GIB:7.2f}"


def _flops(value: float) -> str:
    return f"{value / 1e9:.2f} GFLOP" if value >= 1e8 else f"{value / 1e6:.2f} MFLOP"


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    if hours >= 48:
        return f"{hours:.1f} h ({hours / 24:.1f} days)"
    if hours >= 1:
        return f"{hours:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def format_plan(plan: dict) -> str:
    m, hw, b, t = plan["model"], plan["hardware"], plan["batch"], plan["time"]
    world = hw["gpus_per_node"] * hw["nodes"]
    lines = [
        f"Model       {m['params'] / 1e6:.1f}M parameters ({m['layers']} layers × {m['width']} wide, {m['heads']} heads, "
        f"vocab {m['vocab']:,}); largest layer {m['largest_layer_params'] / 1e6:.1f}M",
        f"Hardware    {hw['nodes']} node(s) × {hw['gpus_per_node']} {hw['gpu']} ({hw['memory_gib']:g} GiB each)",
        f"Batch       {b['micro_batch']} micro × {b['grad_accum']} accum × {world} GPUs × {b['block_size']} tokens "
        f"= {b['tokens_per_step']:,} tokens per step",
        f"Budget      {plan['budget']['train_tokens']:,} tokens → {plan['budget']['steps']:,} steps",
        f"Throughput  {t['tokens_per_s']:,.0f} tokens/s in all ({_flops(t['flops_per_token'])} per token; "
        f"{t['basis']}; MFU {t['implied_mfu']:.0%})",
        f"Step time   {t['step_time_s']:.3f} s   ETA {_duration(t['eta_s'])}"
        + ("" if t["basis"].startswith("measured") else "   (estimates: see Throughput)"),
        "",
        f"Memory per GPU (GiB) at micro-batch {b['micro_batch']}; +{plan['assumptions']['runtime_overhead_gib']:g} GiB runtime overhead in the totals",
        "  ZeRO offload     params  grads  optim | activ.  total fits max-mb | ckpt-act  total fits max-mb | CPU/node",
    ]
    for row in plan["memory"]:
        cells = [
            f"  {row['stage']:>4} {row['offload']:<9}{_gib(row['params'])}{_gib(row['gradients'])}{_gib(row['optimizer'])} |"
        ]
        for label in ("plain", "checkpointed"):
            part = row[label]
            cells.append(
                f"{_gib(part['activations'])}{_gib(part['total'])} {'yes' if part['fits'] else ' no'} {part['max_micro_batch']:>6} |"
            )
        cells.append(f"{_gib(row['cpu_per_node'])}")
        lines.append(" ".join(cells))
    d = plan["disk"]
    lines += [
        "",
        f"Disk        {d['per_checkpoint'] / 1e9:.2f} GB per checkpoint × {d['kept']} kept + {d['hf_export'] / 1e9:.2f} GB "
        f"HF export = {d['total'] / 1e9:.2f} GB",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- data preparation

MB = 1e6


@dataclasses.dataclass(frozen=True)
class StageRate:
    """How one `prepare` stage's time grows: `kind` says over what it runs in parallel —
    "files" (the N file-sliced tasks), "buckets" (the dedup hash buckets) or "one" (a single
    task); it costs `fixed_s` plus the input bytes at `mb_per_s` per core."""

    kind: str
    mb_per_s: float | None = None  # input MB per second per core; None: no size-dependent part
    fixed_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class PrepRates:
    stages: dict[str, StageRate]
    measured: str  # where, when, on what: projections are only as good as this


# Per-core rates of `prepare --tokenizer DIR` (a given tokenizer: its training is not included),
# from the CPU seconds per stage (`prepare --timings` → cpu_stages) of the 1-worker runs on the
# 0.5 GB generated corpus (median of 2), near idle. CPU, not wall, seconds: on a shared machine
# wall time measures the other jobs. benchmarks/bench_prepare.py re-measures them and prints
# this table after every run that includes 1 worker: paste it here.
PREP_RATES = PrepRates(
    stages={
        "clean": StageRate("files", mb_per_s=41.37),
        "dedup": StageRate("buckets", mb_per_s=914.66),
        "group": StageRate("one", mb_per_s=1152.51),  # one task: 13 s of a 15 GB run on any core count
        "split": StageRate("files", mb_per_s=846.25),
        # a given tokenizer's first validation (later runs hit the cache: 0.01 s); measured 2026-11-30
        "tokenizer": StageRate("one", fixed_s=5.47),
        "pack": StageRate("files", mb_per_s=35.44),
        "finalize": StageRate("one", fixed_s=0.03),
    },
    measured="2026-12-01, commit 7e1245d, 0.5 GB generated corpus, 1 worker, CPU seconds per stage, "
    "2-core dev machine at load ~1.0–2.2 (benchmarks/bench_prepare.py)",
)


def stage_kind(name: str) -> str:
    """Which way a stage is parallel (see pipeline/data/stages/__init__.py)."""
    if name in {"dedup", "near_reduce"}:
        return "buckets"
    if name in {"group", "tokenizer", "finalize", "near_resolve"}:
        return "one"
    return "files"


# Single-task stages whose time does not grow with the corpus: the given tokenizer's install and
# validation, the final report. `group` and `near_resolve` are single tasks that do.
FIXED_COST_STAGES = frozenset({"tokenizer", "finalize"})


def rates_from_timings(stages: dict[str, float], input_bytes: int, measured: str) -> PrepRates:
    """Per-core rates from the per-stage seconds of a 1-worker `prepare --timings` run. Single-task
    stages of FIXED_COST_STAGES become fixed costs; the others, bytes per second of one core."""
    rates = {}
    for name, seconds in stages.items():
        kind = stage_kind(name)
        if name in FIXED_COST_STAGES:
            rates[name] = StageRate(kind, fixed_s=seconds)
        elif seconds > 0:
            rates[name] = StageRate(kind, mb_per_s=input_bytes / MB / seconds)
    return PrepRates(rates, measured)


def prep_projection(
    input_bytes: int,
    cores: int,
    num_tasks: int,
    num_buckets: int = 64,
    task_start_s: float = 0.0,
    rates: PrepRates = PREP_RATES,
) -> dict:
    """Projected wall time of `prepare` on `cores` single-core workers (local `--workers`, or
    SLURM array tasks running at the same time). A stage of T equal tasks on C cores takes
    ceil(T / C) rounds of one task each; `task_start_s` is the start-up of each task's process
    (0 for a local pool, which forks once; interpreter + imports for every SLURM array task)."""
    if cores < 1 or num_tasks < 1:
        raise ValueError(f"cores and tasks must be at least 1, got {cores} and {num_tasks}")
    stages = {}
    for name, rate in rates.stages.items():
        tasks = {"files": num_tasks, "buckets": num_buckets, "one": 1}[rate.kind]
        per_task = rate.fixed_s + task_start_s + (input_bytes / MB / tasks / rate.mb_per_s if rate.mb_per_s else 0.0)
        stages[name] = math.ceil(tasks / cores) * per_task
    return {
        "input_bytes": input_bytes,
        "cores": cores,
        "tasks": num_tasks,
        "buckets": num_buckets,
        "task_start_s": task_start_s,
        "stages_s": stages,
        "total_s": sum(stages.values()),
        "rates_measured": rates.measured,
    }


def format_prep_projection(projection: dict) -> str:
    p = projection
    stages = ", ".join(f"{name} {_duration(s)}" for name, s in p["stages_s"].items())
    start = f", {p['task_start_s']:g} s start-up per task" if p["task_start_s"] else ""
    return "\n".join(
        [
            f"Prepare     {p['input_bytes'] / 1e9:.2f} GB of CSV on {p['cores']} core(s), {p['tasks']} tasks, "
            f"{p['buckets']} dedup buckets{start}: ETA {_duration(p['total_s'])} (given tokenizer; "
            "training one adds its own time)",
            f"            {stages}",
            f"            projected from per-core rates measured {p['rates_measured']} "
            "(re-measured by benchmarks/bench_prepare.py)",
        ]
    )


# ---------------------------------------------------------------- command line
