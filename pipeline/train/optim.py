"""AdamW parameter groups and the learning-rate schedule.

Weight decay applies to matrices that multiply activations (≥ 2-D weights of Linear/Conv1D
layers) and not to biases, LayerNorm gains or embeddings (token and position tables): decaying
those shrinks scales and rare-token vectors without regularising anything useful (GPT-2/3,
Megatron and nanoGPT's practice, except that nanoGPT decays embeddings too). The tied output
projection is the token embedding, so it is not decayed either.
"""

from __future__ import annotations

import math

import torch


def is_embedding(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Embedding)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    embedding_params = {id(p) for m in model.modules() if is_embedding(m) for p in m.parameters(recurse=False)}
    decay, no_decay, seen = [], [], set()
    for _name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        if param.dim() >= 2 and id(param) not in embedding_params:
            decay.append(param)
        else:
            no_decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_at(step: int, lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """LR for optimizer step `step` (0-based): linear warmup to lr, cosine to min_lr at the end."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


class WarmupCosineSchedule:
    """A scheduler DeepSpeed steps after each optimizer step and saves in its checkpoints.

    Stateless apart from the step counter: the LR is a pure function of the step, so resuming
    is exact by construction.
    """

    def __init__(self, optimizer, lr: float, min_lr: float, warmup_steps: int, total_steps: int):
        self.optimizer = optimizer
        self.lr, self.min_lr, self.warmup_steps, self.total_steps = lr, min_lr, warmup_steps, total_steps
        self.last_step = 0
        self._apply()

    def _apply(self) -> None:
        value = lr_at(self.last_step, self.lr, self.min_lr, self.warmup_steps, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = value

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {
            "last_step": self.last_step,
            "lr": self.lr,
            "min_lr": self.min_lr,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        # The schedule's shape comes from the (possibly changed) config; only the position resumes.
        self.last_step = int(state["last_step"])
        self._apply()


def describe_optimizer(engine) -> str:
    """The torch optimizer DeepSpeed actually built (under its ZeRO wrapper), with the flags that
    pick its kernel, e.g. "AdamW(fused=True, foreach=None)": read back, not taken from the config."""
    optimizer = engine.optimizer
    while not isinstance(optimizer, torch.optim.Optimizer) and hasattr(optimizer, "optimizer"):
        optimizer = optimizer.optimizer
    defaults = getattr(optimizer, "defaults", {})
    return f"{type(optimizer).__name__}(fused={defaults.get('fused')}, foreach={defaults.get('foreach')})"
