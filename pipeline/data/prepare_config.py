"""The typed configuration of `python -m pipeline prepare`, loaded from YAML (configs/data/).

Each stage owns a small dataclass; this file composes them. Reading and cleaning configs
live beside their code (read.py, clean.py), the tokenizer's in tokenizer/config.py.
"""

from __future__ import annotations

import dataclasses

from pipeline.data.cleaner import CleanConfig
from pipeline.formats.csv_corpus import ReadConfig
from tokenizer.tokenizer_config import TokenizerConfig


@dataclasses.dataclass
class NearDedupConfig:
    """Optional MinHash-LSH near-duplicate removal over character n-grams (off by default)."""

    enabled: bool = False
    ngram: int = 5  # characters per n-gram
    num_permutations: int = 128  # MinHash signature length
    # rows per band r = num_permutations / bands; a pair with similarity s becomes a candidate
    # with probability 1 − (1 − s^r)^bands, threshold ≈ (1/bands)^(1/r): 16 × 8 → 0.71
    bands: int = 16
    # a candidate pair is linked only if its estimated Jaccard similarity (share of equal
    # signature positions) reaches this; 0 links every LSH candidate
    min_similarity: float = 0.7
    seed: int = 0

    def check(self) -> None:
        if self.ngram < 1:
            raise ValueError(f"ngram must be ≥ 1, got {self.ngram}")
        if self.num_permutations < 1 or self.bands < 1:
            raise ValueError(f"num_permutations and bands must be ≥ 1, got {self.num_permutations} and {self.bands}")
        if self.num_permutations % self.bands:
            raise ValueError(f"num_permutations ({self.num_permutations}) must be a multiple of bands ({self.bands})")
        if self.bands > 65535:
            raise ValueError(f"bands must be ≤ 65535, got {self.bands}")
        if not 0 <= self.min_similarity <= 1:
            raise ValueError(f"min_similarity must be in [0, 1], got {self.min_similarity}")
        if self.seed < 0:
            raise ValueError(f"seed must be ≥ 0, got {self.seed}")


@dataclasses.dataclass
class DedupConfig:
    """Exact deduplication on cleaned text: hash → bucket files (map), first occurrence wins (reduce)."""

    enabled: bool = True
    num_buckets: int = 16  # reduce tasks; the result does not depend on it
    near: NearDedupConfig = dataclasses.field(default_factory=NearDedupConfig)

    def check(self) -> None:
        if not 1 <= self.num_buckets <= 4096:
            raise ValueError(f"num_buckets must be in [1, 4096], got {self.num_buckets}")


@dataclasses.dataclass
class SplitConfig:
    """A document is held out iff its hash draw falls under `validation_fraction`."""

    validation_fraction: float = 0.005
    # Tiny corpora still get a held-out set: at least this many documents (never more than
    # `max_validation_share` of all documents).
    min_validation_documents: int = 200
    max_validation_share: float = 0.1
    # Also write the documents of each side as zstd JSON lines, docs/{train,validation}/ (an
    # output for the user: another tokenizer, inspection). Nothing downstream reads them.
    write_documents: bool = False

    def check(self) -> None:
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.min_validation_documents < 0:
            raise ValueError("min_validation_documents must be ≥ 0")
        if not 0 <= self.max_validation_share < 1:
            raise ValueError(f"max_validation_share must be in [0, 1), got {self.max_validation_share}")


@dataclasses.dataclass
class PackConfig:
    """Documents → EOS-separated token stream → fixed-size blocks in Arrow shards."""

    block_size: int = 512
    max_blocks_per_shard: int = 65536  # 32 MiB of uint16 tokens at block 512
    encode_batch_documents: int = 512

    def check(self) -> None:
        if self.block_size < 2:
            raise ValueError(f"block_size must be ≥ 2, got {self.block_size}")
        if self.max_blocks_per_shard < 1:
            raise ValueError("max_blocks_per_shard must be ≥ 1")


@dataclasses.dataclass
class SamplesConfig:
    """OUT/dropped/*.jsonl.zst: examples of dropped rows, duplicates and near-duplicate clusters."""

    per_source: int = 8  # examples kept per (reason, source); 0: none
    max_chars: int = 400  # texts are cut to this many characters
    cluster_members: int = 4  # members shown per near-duplicate cluster

    def check(self) -> None:
        if not 0 <= self.per_source <= 1000:
            raise ValueError(f"per_source must be in [0, 1000], got {self.per_source}")
        if self.max_chars < 1 or self.cluster_members < 2:
            raise ValueError("max_chars must be ≥ 1 and cluster_members ≥ 2")


@dataclasses.dataclass
class PrepareConfig:
    read: ReadConfig = dataclasses.field(default_factory=ReadConfig)
    clean: CleanConfig = dataclasses.field(default_factory=CleanConfig)
    dedup: DedupConfig = dataclasses.field(default_factory=DedupConfig)
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    tokenizer: TokenizerConfig = dataclasses.field(default_factory=TokenizerConfig)
    pack: PackConfig = dataclasses.field(default_factory=PackConfig)
    samples: SamplesConfig = dataclasses.field(default_factory=SamplesConfig)
    # source (a folder or glob relative to the input root) → weight in the training stream:
    # 2.0 reads it twice per epoch, 0.5 half of its rows (see pipeline/data/mixture.py)
    mixture: dict[str, float] = dataclasses.field(default_factory=dict)
    num_tasks: int = 0  # 0: ~one task per 32 MiB of input, a multiple of 8, at least 8, at most one per file
