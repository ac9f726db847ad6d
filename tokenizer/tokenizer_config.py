"""TokenizerConfig: every knob of tokenizer training, validated before any compute."""

from __future__ import annotations

import dataclasses
from typing import Literal

# Meta pieces with fixed ids for the whole project (sentencepiece's unk/bos/eos/pad ids).
SPECIAL_TOKENS = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}
SPECIAL_IDS = {"unk": 0, "bos": 1, "eos": 2, "pad": 3}
# 4 meta pieces + 256 byte pieces (byte_fallback) are always in the vocabulary.
RESERVED_PIECES = len(SPECIAL_IDS) + 256


@dataclasses.dataclass
class TokenizerConfig:
    model_type: Literal["bpe", "unigram"] = "bpe"
    vocab_size: int = 32000
    character_coverage: float = 0.9995
    byte_fallback: bool = True  # characters outside the vocabulary become UTF-8 byte pieces, never <unk> (required)
    split_digits: bool = True  # every digit is its own piece: numbers tokenize uniformly
    # Sentencepiece loads its whole input into memory (sentencepiece issues #708, #680: out of
    # memory at 290 GB), so it trains on a bounded sample: at most this many distinct sentences
    # and this many characters, whatever the corpus size. Measured peak RSS of BPE training
    # (32k vocab, sentencepiece 0.2.3): ≈ 0.2 GB + 120 bytes per sample character, so the
    # defaults need ≈ 5 GB; unigram needs less (≈ 0.4 GB at 5.6 M characters). The sampler
    # itself holds the sample in Python (≈ 300 MB at the defaults).
    max_sample_sentences: int = 1_000_000
    max_sample_chars: int = 40_000_000
    # Documents are split into sentences (after 。！？ and at line breaks); longer pieces are cut
    # into chunks of this many characters. sentencepiece's max_sentence_length (bytes) is set
    # to 4 × this, so no sampled sentence is ever skipped.
    max_sentence_chars: int = 2000
    seed: int = 0  # keys the sample's hash; also sentencepiece's random generator
    # Sentencepiece training threads; 0 = every CPU this process may use (its affinity mask,
    # e.g. a SLURM allocation). BPE models are identical for any thread count (tested);
    # unigram models are identical only for the same thread count, so pin it for unigram.
    num_threads: int = 0
    pretrained: str | None = None  # existing tokenizer directory to use instead of training

    def check(self) -> None:
        if self.pretrained is not None:
            if not self.pretrained.strip():
                raise ValueError("pretrained: empty path (leave it out to train a tokenizer)")
            return
        if not self.byte_fallback:
            raise ValueError(
                "byte_fallback: must be true — without it characters outside the vocabulary become "
                "<unk> and decode(encode(text)) != text"
            )
        if self.vocab_size <= RESERVED_PIECES:
            raise ValueError(
                f"vocab_size: {self.vocab_size} leaves no room for text pieces "
                f"(the 4 special and 256 byte pieces take {RESERVED_PIECES} ids)"
            )
        if self.vocab_size > 2**31 - 1:
            raise ValueError(f"vocab_size: {self.vocab_size} is too large")
        if not 0.0 < self.character_coverage <= 1.0:
            raise ValueError(f"character_coverage: {self.character_coverage} must be in (0, 1]")
        if self.max_sample_sentences < 1:
            raise ValueError(f"max_sample_sentences: {self.max_sample_sentences} must be >= 1")
        if self.max_sentence_chars < 1:
            raise ValueError(f"max_sentence_chars: {self.max_sentence_chars} must be >= 1")
        if self.max_sample_chars < self.max_sentence_chars:
            raise ValueError(
                f"max_sample_chars: {self.max_sample_chars} must be >= max_sentence_chars "
                f"({self.max_sentence_chars}), or a single sentence could fill the sample"
            )
        if self.num_threads < 0:
            raise ValueError(f"num_threads: {self.num_threads} must be >= 0 (0 = all cores)")

    @property
    def max_sentence_bytes(self) -> int:
        """sentencepiece's max_sentence_length: a UTF-8 character takes at most 4 bytes."""
        return 4 * self.max_sentence_chars
