"""The model: a transformers causal LM built from config (no pretrained weights)."""
from __future__ import annotations

import torch

from .config import ModelConfig, build_hf_config


def build_model(model_cfg: ModelConfig, vocab_size: int, block_size: int, seed: int):
    """Fresh model with seeded init; identical on every rank (DeepSpeed also broadcasts rank 0's)."""
    from transformers import AutoModelForCausalLM

    hf_config = build_hf_config(model_cfg, vocab_size, block_size)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(hf_config, attn_implementation="sdpa")
    if model_cfg.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()  # from_config returns a model in eval mode: dropout would be off
    return model
