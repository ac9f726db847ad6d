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
    """Train sentencepiece on `docs` and write an HF tokenizer dir (incl. tokenizer.model)."""
    from transformers import LlamaTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(docs or tiny_corpus()), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(directory / "tokenizer"), vocab_size=vocab_size,
        model_type="unigram", normalization_rule_name="identity", byte_fallback=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, character_coverage=1.0, num_threads=1,
        add_dummy_prefix=False, minloglevel=2,
    )
    corpus.unlink()
    (directory / "tokenizer.vocab").unlink()
    tokenizer = LlamaTokenizer.from_pretrained(directory, add_bos_token=False, add_eos_token=False, pad_token="<pad>")
    tokenizer.save_pretrained(directory)
    return directory


def tiny_gpt2(vocab_size: int = 600, positions: int = 64, seed: int = 0, layers: int = 2, width: int = 32):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size, n_positions=positions, n_embd=width, n_layer=layers, n_head=2,
        bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=True,
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
