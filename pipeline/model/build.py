"""The model: a transformers causal LM built from config (no pretrained weights)."""

from __future__ import annotations

import torch


def build_model(hf_config, activation_checkpointing: bool, seed: int):
    """Fresh model from the run's one `hf_config` (config.build_hf_config), seeded init: identical
    on every rank (DeepSpeed also broadcasts rank 0's)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(hf_config, attn_implementation="sdpa")
    if activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()  # from_config returns a model in eval mode: dropout would be off
    return model
