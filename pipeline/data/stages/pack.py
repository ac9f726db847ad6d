"""Stage `pack`: encode documents, append EOS, concatenate, cut into fixed-size blocks.

No padding anywhere: the token stream of a task is cut into `block_size` blocks and only
the final partial block of the task is lost (counted in the report). Tasks 0..N-1 pack the
train documents of the matching split task; task N packs all validation documents, in
order, so the held-out set loses at most one partial block in total.

Outputs: train/{i}-{j}.arrow, validation/00000-{j}.arrow (j: a new shard every
`max_blocks_per_shard` blocks). The marker lists every shard with its counts and sha256.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from pipeline.data.executor import Stage
from pipeline.data.prepare_plan import Plan
from pipeline.data.stages.histogram import Histogram
from pipeline.data.stages.split import split_path
from pipeline.formats.documents import read_records
from pipeline.formats.packed_shards import BlockCutter, ShardWriter, sha256_of_file, token_dtype
from tokenizer import SentencePieceTokenizer


def task_split(plan: Plan, task_id: int) -> tuple[str, list[Path], int]:
    """(split name, document files, shard prefix) of pack task `task_id`."""
    if task_id < plan.num_tasks:
        return "train", [split_path(plan, "train", task_id)], task_id
    return "validation", [split_path(plan, "validation", i) for i in range(plan.num_tasks)], 0


def document_batches(files: list[Path], batch: int) -> Iterator[list[str]]:
    texts: list[str] = []
    for path in files:
        for record in read_records(path):
            texts.append(record["text"])
            if len(texts) == batch:
                yield texts
                texts = []
    if texts:
        yield texts


class ShardSequence:
    """Writes blocks to `{prefix}-{j}.arrow`, opening a new shard every `max_blocks` blocks."""

    def __init__(self, directory: Path, prefix: int, block_size: int, dtype: np.dtype, max_blocks: int):
        self.directory, self.prefix, self.block_size, self.dtype, self.max_blocks = (
            directory,
            prefix,
            block_size,
            dtype,
            max_blocks,
        )
        self.writer: ShardWriter | None = None
        self.in_current = 0
        self.shards: list[dict] = []

    def _path(self, index: int) -> Path:
        return self.directory / f"{self.prefix:05d}-{index:03d}.arrow"

    def write(self, blocks: np.ndarray) -> None:
        while len(blocks):
            if self.writer is None:
                self.writer = ShardWriter(self._path(len(self.shards)), self.block_size, self.dtype)
                self.in_current = 0
            room = self.max_blocks - self.in_current
            self.writer.write_blocks(blocks[:room])
            self.in_current += len(blocks[:room])
            blocks = blocks[room:]
            if self.in_current == self.max_blocks:
                self._close_current()

    def _close_current(self) -> None:
        assert self.writer is not None
        self.writer.close()
        path = self.writer.path
        self.shards.append(
            {
                "path": str(path),
                "blocks": self.in_current,
                "tokens": self.in_current * self.block_size,
                "bytes": path.stat().st_size,
                "sha256": sha256_of_file(path),
            }
        )
        self.writer = None

    def close(self) -> list[dict]:
        if self.writer is not None:
            self._close_current()
        return self.shards


def run_task(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    cfg = plan.config.pack
    split, files, prefix = task_split(plan, task_id)
    tokenizer = SentencePieceTokenizer.load(plan.tokenizer_dir)
    dtype = token_dtype(tokenizer.vocab_size)
    eos = np.array([tokenizer.eos_id], dtype=dtype)
    cutter = BlockCutter(cfg.block_size, dtype)
    shards = ShardSequence(plan.output / split, prefix, cfg.block_size, dtype, cfg.max_blocks_per_shard)
    doc_tokens = Histogram()
    vocab_counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    documents = tokens = chars = 0
    for texts in document_batches(files, cfg.encode_batch_documents):
        encoded = tokenizer.encode_batch(texts)
        pieces = []
        for text, ids in zip(texts, encoded):
            pieces.append(np.asarray(ids, dtype=dtype))
            pieces.append(eos)
            doc_tokens.add(len(ids) + 1)
            chars += len(text)
        stream = np.concatenate(pieces)
        vocab_counts += np.bincount(stream, minlength=tokenizer.vocab_size)
        shards.write(cutter.push(stream))
        documents += len(texts)
        tokens += len(stream)
        progress(len(texts))
    written = shards.close()
    for entry in written:  # paths in the marker are relative to OUT
        entry["path"] = str(Path(entry["path"]).relative_to(plan.output))
    return {
        "split": split,
        "shards": written,
        "documents": documents,
        "tokens": tokens,  # including EOS, before cutting
        "chars": chars,
        "partial_tokens_dropped": int(len(cutter.pending)),
        "doc_tokens": doc_tokens.to_json(),
        "vocab_ids_used": np.flatnonzero(vocab_counts).tolist(),
    }


STAGE = Stage(name="pack", run_task=run_task, count_tasks=lambda plan: plan.num_tasks + 1)
