"""Small prepared-data directories and model configs for the training tests.

The token stream is learnable: documents come from a sparse random Markov chain (each token
has three likely successors), so a tiny model's loss really falls from ln(vocab) towards
ln(3). Written with the real ShardWriter and manifest, as `python -m pipeline prepare` does.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pipeline.manifest import write_manifest
from pipeline.shards import ShardWriter, token_dtype

SPECIAL = {"unk": 0, "bos": 1, "eos": 2, "pad": 3}
REPO = Path(__file__).resolve().parents[1]


def markov_stream(num_tokens: int, vocab_size: int, seed: int) -> np.ndarray:
    """Documents of 20–80 tokens from a fixed sparse Markov chain, each ended by EOS."""
    rng = np.random.default_rng(seed)
    chain = np.random.default_rng(1234)  # the grammar is the same for train and validation
    first = 4
    successors = chain.integers(first, vocab_size, size=(vocab_size, 3))
    out = np.empty(num_tokens + 100, dtype=np.int64)
    pos = 0
    while pos < num_tokens:
        length = int(rng.integers(20, 80))
        token = int(rng.integers(first, vocab_size))
        for _ in range(length):
            out[pos] = token
            pos += 1
            token = int(successors[token, rng.choice(3, p=[0.7, 0.2, 0.1])])
        out[pos] = SPECIAL["eos"]
        pos += 1
    return out[:num_tokens]


def write_split(root: Path, split: str, blocks: np.ndarray, vocab_size: int, shards: int) -> list[dict]:
    entries = []
    for index, part in enumerate(np.array_split(blocks, shards)):
        rel = f"{split}/{split}-{index:05d}.arrow"
        with ShardWriter(root / rel, blocks.shape[1], token_dtype(vocab_size)) as writer:
            writer.write_blocks(part)
        digest = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        entries.append({"path": rel, "blocks": int(len(part)), "tokens": int(part.size), "sha256": digest})
    return entries


def make_packed_data(
    root: Path,
    train_blocks: int = 256,
    val_blocks: int = 37,
    block_size: int = 64,
    vocab_size: int = 96,
    seed: int = 0,
    tokenizer_tag: str = "dummy",
):
    """A prepared-data directory (manifest, tokenizer dir, train/validation shards)."""
    root = Path(root)
    tok_dir = root / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    (tok_dir / "README.txt").write_text(f"dummy tokenizer {tokenizer_tag} (tests only)\n")
    stream = markov_stream((train_blocks + val_blocks) * block_size, vocab_size, seed)
    all_blocks = stream.reshape(-1, block_size)
    raw = {
        "block_size": block_size,
        "dtype": str(token_dtype(vocab_size)),
        "vocab_size": vocab_size,
        "special_ids": dict(SPECIAL),
        "tokenizer": {"path": "tokenizer", "fingerprint": hashlib.sha256(tokenizer_tag.encode()).hexdigest()},
        "splits": {
            "train": {"shards": write_split(root, "train", all_blocks[:train_blocks], vocab_size, 2)},
            "validation": {"shards": write_split(root, "validation", all_blocks[train_blocks:], vocab_size, 1)},
        },
    }
    return write_manifest(root, raw)


TINY_MODEL = {
    "architecture": "gpt2",
    "hf_config": {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 64,
                  "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1},
    "activation_checkpointing": False,
}


def write_yaml(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_hf_model(vocab_size: int = 96, block_size: int = 64, seed: int = 0):
    import torch
    from transformers import AutoModelForCausalLM

    from pipeline.configfile import from_dict
    from pipeline.train.config import ModelConfig, build_hf_config

    torch.manual_seed(seed)
    config = build_hf_config(from_dict(ModelConfig, TINY_MODEL), vocab_size, block_size)
    return AutoModelForCausalLM.from_config(config)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
