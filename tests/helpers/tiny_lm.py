"""Real, tiny building blocks for the results tests: a sentencepiece tokenizer trained on a
generated corpus (identity normalization, byte fallback, <unk>=0 <s>=1 </s>=2 <pad>=3) and
a GPT-2 small enough to train in a second on the CPU."""

from __future__ import annotations

import random
from pathlib import Path

import sentencepiece as spm
import torch

CHARS = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高"
ASCII = "abcdefg ,.!?"


def tiny_corpus(num_docs: int = 1500, seed: int = 0) -> list[str]:
    """Documents with learnable structure: phrases repeated from a small phrase book."""
    rng = random.Random(seed)
    alphabet = CHARS + ASCII
    phrases = ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 6))) for _ in range(60)]
    return ["".join(rng.choice(phrases) for _ in range(rng.randint(3, 20))) for _ in range(num_docs)]


def train_tokenizer_dir(directory: Path, vocab_size: int = 600, docs: list[str] | None = None) -> Path:
    """The project's own tokenizer training (tokenizer.train) on `docs`: an HF tokenizer dir."""
    from tokenizer.tokenizer_config import TokenizerConfig
    from tokenizer.train import train_tokenizer

    directory = Path(directory)
    sample = directory.parent / f"{directory.name}-sample.txt"
    sample.parent.mkdir(parents=True, exist_ok=True)
    sample.write_text("\n".join(docs or tiny_corpus()) + "\n", encoding="utf-8")
    config = TokenizerConfig(model_type="unigram", vocab_size=vocab_size, character_coverage=1.0, num_threads=1)
    train_tokenizer(sample, directory, config)
    sample.unlink()
    return directory


def tiny_gpt2(vocab_size: int = 600, positions: int = 64, seed: int = 0, layers: int = 2, width: int = 32):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=positions,
        n_embd=width,
        n_layer=layers,
        n_head=2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def train_briefly(model, token_ids: list[list[int]], steps: int = 60, lr: float = 3e-3, block: int = 32, seed: int = 0):
    """A few AdamW steps on packed documents so the model is better than uniform."""
    flat = [t for doc in token_ids for t in doc + [2]]
    blocks = torch.tensor([flat[i : i + block] for i in range(0, len(flat) - block, block)])
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        batch = blocks[torch.randint(len(blocks), (8,), generator=generator)]
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model


def encode_documents(tokenizer_dir: Path, docs: list[str]) -> list[list[int]]:
    processor = spm.SentencePieceProcessor(model_file=str(Path(tokenizer_dir) / "tokenizer.model"))
    return [processor.encode(doc) for doc in docs]


def make_model_dir(directory: Path, tokenizer_dir: Path, docs: list[str], steps: int = 60, positions: int = 64) -> Path:
    """A briefly trained tiny GPT-2 saved like an export: weights, tokenizer, generation config."""
    import shutil

    from transformers import GenerationConfig

    model = tiny_gpt2(vocab_size=600, positions=positions)
    train_briefly(model, encode_documents(tokenizer_dir, docs), steps=steps)
    model.save_pretrained(directory)
    GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=3).save_pretrained(directory)
    for item in Path(tokenizer_dir).iterdir():
        shutil.copy2(item, Path(directory) / item.name)
    return Path(directory)


def make_data_dir(
    directory: Path, tokenizer_dir: Path, train_docs: list[str], validation_docs: list[str], block_size: int = 32
) -> Path:
    """A prepared data directory as `python -m pipeline prepare` leaves it: manifest, tokenizer, shards."""
    import hashlib
    import shutil

    import numpy as np

    from pipeline.formats.manifest import write_manifest
    from pipeline.formats.packed_shards import ShardWriter

    directory = Path(directory)
    shutil.copytree(tokenizer_dir, directory / "tokenizer")
    splits = {}
    for split, docs in (("train", train_docs), ("validation", validation_docs)):
        flat = [t for doc in encode_documents(tokenizer_dir, docs) for t in doc + [2]]
        blocks = np.asarray(flat[: len(flat) // block_size * block_size]).reshape(-1, block_size)
        path = directory / split / "part-00000.arrow"
        with ShardWriter(path, block_size, np.uint16) as writer:
            writer.write_blocks(blocks)
        entry = {
            "path": f"{split}/part-00000.arrow",
            "blocks": len(blocks),
            "tokens": blocks.size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        splits[split] = {"shards": [entry]}
    tokenizer_hash = hashlib.sha256((Path(tokenizer_dir) / "tokenizer.model").read_bytes()).hexdigest()
    write_manifest(
        directory,
        {
            "block_size": block_size,
            "dtype": "uint16",
            "vocab_size": 600,
            "special_ids": {"unk": 0, "bos": 1, "eos": 2, "pad": 3},
            "tokenizer": {"path": "tokenizer", "fingerprint": tokenizer_hash},
            "splits": splits,
        },
    )
    return directory
