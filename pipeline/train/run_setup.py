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
            },
        },
        "steps_per_print": base.get("steps_per_print", 1 << 30),
    }


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return requested


def check_resume(state: dict, identity: dict, allow_data_change: bool, where: Path) -> list[str]:
    """Refuse a resume that cannot be exact; returns warnings for tolerated changes."""
    for key, what in (("data_fingerprint", "data manifest"), ("tokenizer_fingerprint", "tokenizer")):
        if state[key] != identity[key] and not allow_data_change:
            raise checkpoint.CheckpointError(
                f"{where}: the checkpoint was trained on a different {what} ({key} {state[key]} != {identity[key]}). "
                f"Pass --allow-data-change to continue on the new data deliberately, or use --output for a new run."
            )
    if state["world_size"] != identity["world_size"]:
        raise checkpoint.CheckpointError(
            f"{where}: written by {state['world_size']} data-parallel ranks, this run has {identity['world_size']}. "
            f"ZeRO partitions optimizer state per rank, so restart with {state['world_size']} ranks. Changing the world "
            f"size mid-run is not supported yet: DeepSpeed can convert the checkpoint (`python -m "
            f"deepspeed.checkpoint.ds_to_universal --input_folder {where} --output_folder {where}_universal`), but this "
            f"trainer does not load universal checkpoints; the weights alone are in `python launch/export.py`'s output."
        )
    if state["model_fingerprint"] != identity["model_fingerprint"]:
        raise checkpoint.CheckpointError(f"{where}: the model config differs from the checkpoint's; refusing to load")
    warnings = []
    if state["data_fingerprint"] != identity["data_fingerprint"]:
        warnings.append("continuing on different data (--allow-data-change): the sample stream position is kept")
    if state["train_fingerprint"] != identity["train_fingerprint"]:
        warnings.append("the train config differs from the checkpoint's (new values apply from here on)")
    return warnings


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
