"""Start-up pieces of a training run: the DeepSpeed config the trainer owns, the resume checks,
the run directory's description files.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from pipeline.core.atomic import write_json_atomically
from pipeline.core.typed_config import ConfigError
from pipeline.train import checkpoint
from pipeline.train.train_config import TrainConfig

# The trainer sets these from the train config; a DeepSpeed JSON that also sets them would be
# a second, silently ignored source of truth.
TRAINER_OWNED_DS_KEYS = (
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "optimizer",
    "scheduler",
    "bf16",
    "fp16",
)


def deepspeed_config(path: Path, cfg: TrainConfig, precision: str) -> dict:
    try:
        base = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read DeepSpeed JSON: {exc}") from None
    for key in TRAINER_OWNED_DS_KEYS:
        if key in base:
            raise ConfigError(f"{path}: {key}: set by the trainer from the train config, remove it here")
    return {
        **base,
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum_steps,
        "gradient_clipping": cfg.grad_clip,
        "bf16": {"enabled": precision == "bf16"},
        # torch's AdamW: no C++ build, and bit-exact resume (DeepSpeed's Adam recomputes β^t).
        # Built by DeepSpeed from this entry (not passed as a client optimizer), which is what
        # makes ZeRO-Offload accept it.
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": cfg.lr,
                "betas": [cfg.adam_beta1, cfg.adam_beta2],
                "eps": cfg.adam_eps,
                "weight_decay": cfg.weight_decay,
                "torch_adam": True,
                "fused": cfg.fused_adam,  # passed through to torch.optim.AdamW(fused=...)
            },
        },
        "steps_per_print": base.get("steps_per_print", 1 << 30),
    }


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return requested


def check_resume(
    state: dict, identity: dict, allow_data_change: bool, where: Path, grown_from: dict | None = None
) -> list[str]:
    """Refuse a resume that cannot be exact; returns warnings for tolerated changes. A different
    world size is not refused here: `resume_layout` decides whether the global batch can be kept.
    `grown_from`: the checkpoint's data is an earlier version of this corpus (`prepare --append`),
    which continues exactly (the sampler adds the new blocks from the next epoch)."""
    for key, what in (("data_fingerprint", "data manifest"), ("tokenizer_fingerprint", "tokenizer")):
        if key == "data_fingerprint" and grown_from is not None:
            continue
        if state[key] != identity[key] and not allow_data_change:
            raise checkpoint.CheckpointError(
                f"{where}: the checkpoint was trained on a different {what} ({key} {state[key]} != {identity[key]}). "
                f"Pass --allow-data-change to continue on the new data deliberately, or use --output for a new run."
            )
    if state["model_fingerprint"] != identity["model_fingerprint"]:
        raise checkpoint.CheckpointError(
            f"{where}: the model config differs from the checkpoint's; refusing to load (the model shape cannot "
            f"change on resume)"
        )
    warnings = []
    if state["data_fingerprint"] != identity["data_fingerprint"] and grown_from is None:
        warnings.append("continuing on different data (--allow-data-change): the sample stream position is kept")
    if state["train_fingerprint"] != identity["train_fingerprint"]:
        warnings.append("the train config differs from the checkpoint's (new values apply from here on)")
    return warnings


def possible_world_sizes(global_batch: int) -> list[int]:
    """World sizes a run of this global batch can continue on: the divisors of the global batch."""
    return [n for n in range(1, global_batch + 1) if global_batch % n == 0]


def batch_layout(global_batch: int, world: int, micro: int) -> tuple[int, int]:
    """(micro batch, grad accum steps) with micro × accum × world == global_batch: the configured
    micro batch when it fits, else the largest smaller one that does (it bounds activation memory)."""
    per_rank = global_batch // world
    for size in range(min(micro, per_rank), 0, -1):
        if per_rank % size == 0:
            return size, per_rank // size
    raise AssertionError("unreachable: a micro batch of 1 always fits")


def resume_layout(state: dict, cfg: TrainConfig, world: int, where: Path) -> tuple[int, int]:
    """The (micro batch, grad accum) a resume on `world` ranks trains with: the checkpoint's global
    batch is kept (the sample stream and the optimizer's steps depend on it). Same world size: the
    config's layout, which must give that global batch. Another world size: the config's micro
    batch (or the largest smaller one that fits), grad accum derived."""
    kept, saved_world = state["global_batch"], state["world_size"]
    if world == saved_world:
        if cfg.global_batch(world) != kept:
            raise checkpoint.CheckpointError(
                f"{where}: global batch {kept} ({saved_world} ranks); this config gives {cfg.global_batch(world)} "
                f"({cfg.micro_batch_size} micro × {cfg.grad_accum_steps} accum × {world}). The global batch cannot "
                f"change on resume (the sample stream position and the schedule depend on it): restore "
                f"micro_batch_size × grad_accum_steps = {kept // world}, or use --output for a new run."
            )
        return cfg.micro_batch_size, cfg.grad_accum_steps
    if kept % world:
        raise checkpoint.CheckpointError(
            f"{where}: written by {saved_world} ranks with global batch {kept}; {world} ranks cannot keep it "
            f"({kept} is not a multiple of {world}). What cannot change on resume: the model shape, the data "
            f"manifest, the global batch. Possible world sizes for this run: {possible_world_sizes(kept)}."
        )
    return batch_layout(kept, world, cfg.micro_batch_size)


def validation_selection(num_blocks: int, eval_max_blocks: int | None) -> dict:
    """The validation blocks every evaluation of the run scores: the first `blocks` of the split in
    manifest order (recorded in run.json and the export; `evaluate` reuses it)."""
    scored = num_blocks if eval_max_blocks is None else min(num_blocks, eval_max_blocks)
    return {"split": "validation", "first_blocks": scored, "of": num_blocks}


def prepare_run_dir(run_dir: Path, hf_config, manifest, run_info: dict) -> None:
    """Rank 0: model config, tokenizer copy and the resolved run description."""
    run_dir.mkdir(parents=True, exist_ok=True)
    hf_config.save_pretrained(run_dir / "hf_config")
    tokenizer_copy = run_dir / "tokenizer"
    if manifest.tokenizer_dir.is_dir():
        if tokenizer_copy.exists():
            shutil.rmtree(tokenizer_copy)
        shutil.copytree(manifest.tokenizer_dir, tokenizer_copy)
    write_json_atomically(run_dir / "run.json", run_info)


def write_status(run_dir: Path, dist, state: str, step: int, total_steps: int, exit_code: int) -> None:
    """RUN/status.json: how the last start ended, for launchers that hide exit codes (torchrun)."""
    if dist.is_main:
        write_json_atomically(
            run_dir / "status.json",
            {"state": state, "step": step, "total_steps": total_steps, "exit_code": exit_code, "time": time.time()},
        )
