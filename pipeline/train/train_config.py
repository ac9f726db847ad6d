"""Typed run config (`configs/train/*.yaml`) and loading it together with its model config.

The vocabulary size is never configured: it comes from the data's tokenizer (the manifest).
Positions are checked against the shards' block size before any compute.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Literal

from pipeline.core.typed_config import load_config
from pipeline.model.model_config import ModelConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class TrainConfig:
    model_config: str = "configs/model/tiny.yaml"  # path (cwd, then repo root)
    deepspeed_config: str = "configs/deepspeed/zero2.json"
    seed: int = 1234
    # batch: global batch = micro_batch_size × grad_accum_steps × data-parallel world size
    micro_batch_size: int = 8
    grad_accum_steps: int = 1
    # length: exactly one of a token budget or a step count
    train_tokens: int | None = None
    max_steps: int | None = None
    # AdamW (torch's, inside DeepSpeed) with linear warmup then cosine decay to min_lr
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup_steps: int = 100
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on GPUs that support it, else fp32
    # speed options (docs/training.md#speed-options); off by default: the tested, bitwise-resumable path
    compile: bool = False  # torch.compile the model (inductor, in place: checkpoints keep their names)
    fused_adam: bool = False  # torch AdamW(fused=True): one kernel for all parameters' updates (CUDA and CPU)
    # evaluation on the validation split
    eval_interval: int = 500
    eval_max_blocks: int | None = None
    eval_micro_batch_size: int | None = None  # default: micro_batch_size
    # checkpoints: every N steps, every M minutes, on a stop signal, at the end
    checkpoint_interval_steps: int = 1000
    checkpoint_interval_minutes: float = 30.0
    keep_last: int = 2  # plus the best by validation loss
    # metrics
    log_interval: int = 10
    peak_tflops_per_device: float | None = None  # MFU denominator; None: known GPUs only
    tensorboard: bool = True
    export_at_end: bool = False  # write RUN/hf (Hugging Face model + tokenizer) when finished
    # exactly-once audit: RUN/audit/rank<r>.jsonl holds the sample ids (and micro-batch losses) of every step
    audit_samples: bool = False

    def check(self) -> None:
        if (self.train_tokens is None) == (self.max_steps is None):
            raise ValueError("set exactly one of train_tokens (a token budget) or max_steps")
        positive = {
            "micro_batch_size": self.micro_batch_size,
            "grad_accum_steps": self.grad_accum_steps,
            "eval_interval": self.eval_interval,
            "checkpoint_interval_steps": self.checkpoint_interval_steps,
            "log_interval": self.log_interval,
            "lr": self.lr,
            "keep_last": self.keep_last,
        }
        for key in ("train_tokens", "max_steps", "eval_max_blocks", "eval_micro_batch_size", "peak_tflops_per_device"):
            if getattr(self, key) is not None:
                positive[key] = getattr(self, key)
        for key, value in positive.items():
            if value <= 0:
                raise ValueError(f"{key}: must be > 0, got {value}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr: must be in [0, lr={self.lr}], got {self.min_lr}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("warmup_steps, weight_decay and grad_clip must be >= 0")
        if not (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1):
            raise ValueError("adam_beta1/adam_beta2: must be in [0, 1)")
        if self.checkpoint_interval_minutes <= 0:
            raise ValueError("checkpoint_interval_minutes: must be > 0")

    def global_batch(self, world_size: int) -> int:
        return self.micro_batch_size * self.grad_accum_steps * world_size

    def total_steps(self, world_size: int, block_size: int) -> int:
        """Optimizer steps of the whole run: max_steps, or the token budget rounded up."""
        if self.max_steps is not None:
            return self.max_steps
        return math.ceil(self.train_tokens / (self.global_batch(world_size) * block_size))


def resolve_path(path: str | Path) -> Path:
    """A config path as given (absolute or relative to cwd), else relative to the repo root."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    candidate = REPO_ROOT / path
    return candidate if candidate.exists() else path


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """`model.hf_config.n_layer=4` goes to the model config, everything else to the train config."""
    model = [o[len("model.") :] for o in overrides if o.startswith("model.")]
    train = [o for o in overrides if not o.startswith("model.")]
    return train, model


def load_configs(train_path: str | Path, overrides: list[str] = ()) -> tuple[TrainConfig, ModelConfig]:
    train_overrides, model_overrides = split_overrides(list(overrides))
    train = load_config(TrainConfig, resolve_path(train_path), train_overrides)
    model_path = resolve_path(train.model_config)
    model = load_config(ModelConfig, model_path, model_overrides)
    return train, model
