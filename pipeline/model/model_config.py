"""Typed model config (`configs/model/*.yaml`) → the transformers config of the run.

The vocabulary size is never configured: it comes from the data's tokenizer (the manifest).
Positions are checked against the shards' block size before any compute.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.core.typed_config import ConfigError
from tokenizer.tokenizer_config import SPECIAL_IDS  # the project-wide ids, fixed by the tokenizer

# Keys the data decides; a model config that sets them would silently disagree with the shards.
DATA_OWNED_KEYS = ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings")


@dataclasses.dataclass
class ModelConfig:
    architecture: str = "gpt2"  # any transformers model_type with a causal-LM head
    hf_config: dict[str, Any] = dataclasses.field(default_factory=dict)  # → AutoConfig.for_model
    activation_checkpointing: bool = False

    def check(self) -> None:
        if not self.architecture:
            raise ValueError("architecture: must name a transformers model_type, e.g. gpt2")
        for key in DATA_OWNED_KEYS:
            if key in self.hf_config:
                raise ValueError(f"hf_config.{key}: set by the trainer from the data's tokenizer, remove it")


def build_hf_config(model_cfg: ModelConfig, vocab_size: int, block_size: int):
    """transformers config for `model_cfg` on data with this vocabulary and block size."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.for_model(
            model_cfg.architecture,
            **model_cfg.hf_config,
            vocab_size=vocab_size,
            tie_word_embeddings=True,
            bos_token_id=SPECIAL_IDS["bos"],
            eos_token_id=SPECIAL_IDS["eos"],
            pad_token_id=SPECIAL_IDS["pad"],
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model: cannot build a {model_cfg.architecture!r} config: {exc}") from None
    positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if positions is not None and positions < block_size:
        raise ConfigError(
            f"model.hf_config: the model has {positions} positions but the data's blocks hold "
            f"{block_size} tokens; raise n_positions/max_position_embeddings to at least {block_size}"
        )
    config._attn_implementation = "sdpa"
    config.use_cache = False  # training: no KV cache; generate() turns it back on
    return config
