"""The data stages, in order. Each is a set of independent tasks (see pipeline/data/executor.py).

clean      N tasks   input file slice → read → clean → documents + dedup hash buckets
dedup      K tasks   hash bucket → first occurrence wins → drop list (+ split draws)
near_map, near_reduce, near_resolve   N, K, 1 tasks (0 unless dedup.near.enabled):
           MinHash LSH near-duplicates → one drop list (see near_dedup.py)
group      1 task    rows that must share a side (pieces of a row, copies, near duplicates) + split threshold
split      N tasks   documents − duplicates → docs/train | docs/validation
tokenizer  1 task    bounded sample of train docs → sentencepiece → HF tokenizer dir
pack       N+1 tasks docs → token ids + EOS → 512-token blocks → Arrow shards
finalize   1 task    manifest.json + report.json
"""

from __future__ import annotations

from pipeline.data.executor import Stage

from . import clean, dedup, finalize, group, near_dedup, pack, split, train_tokenizer

STAGES: list[Stage] = [
    clean.STAGE,
    dedup.STAGE,
    *near_dedup.STAGES,
    group.STAGE,
    split.STAGE,
    train_tokenizer.STAGE,
    pack.STAGE,
    finalize.STAGE,
]
STAGE_NAMES = [stage.name for stage in STAGES]


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(f"unknown stage '{name}'; stages are: {', '.join(STAGE_NAMES)}")
