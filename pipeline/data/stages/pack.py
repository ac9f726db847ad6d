"""Stage `pack`: encode documents, append EOS, concatenate, cut into fixed-size blocks.

No padding anywhere: the token stream of a task is cut into `block_size` blocks and only
the final partial block of the task is lost (counted in the report).

Tasks 0..N-1 pack the train documents of the matching split task *weighted*: the stream is
pass 0, pass 1, … over the task's documents, and a document of a source with weight w is in
the first `mixture.copies(w, path, row)` passes (2.0: in two passes; 0.5: in pass 0 for
about half of the rows, chosen by a hash of the row). So the packed train blocks are one
weighted epoch and the trainer's sampler needs no change; a repeated document sits at
another offset in the stream, so its block boundaries differ (unless a whole pass happens to
be a multiple of `block_size` tokens). Without `mixture:` every weight is 1 and there is
one pass.

Tasks N..N+S-1 pack the validation documents of source s (sources sorted by name), in
order, never weighted: each validation block holds one source's text, so held-out loss can
be reported per source; each source loses at most one partial block.

Outputs: train/{i}-{j}.arrow, validation/{s}-{j}.arrow (j: a new shard every
`max_blocks_per_shard` blocks). The marker lists every shard with its counts and sha256,
and tokens per source before and after weighting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from pipeline.data.executor import Stage
from pipeline.data.mixture import copies
from pipeline.data.prepare_plan import Plan
from pipeline.data.stages.histogram import Histogram
from pipeline.data.stages.split import side_pieces
from pipeline.formats.packed_shards import BlockCutter, ShardWriter, sha256_of_file, token_dtype
from tokenizer import SentencePieceTokenizer


def task_split(plan: Plan, task_id: int) -> tuple[str, list[int], int, str | None]:
    """(split name, clean tasks whose pieces it reads, shard prefix, validation source) of pack task `task_id`."""
    if task_id < plan.num_tasks:
        return "train", [task_id], task_id, None
    source = task_id - plan.num_tasks
    return "validation", list(range(plan.num_tasks)), source, sorted(plan.weights)[source]


Item = tuple[str, int, bool, bool]  # text, input file index, counted before weighting, emitted


def weighted_documents(plan: Plan, split: str, clean_tasks: list[int], source: str | None) -> Iterator[Item]:
    """This task's documents in stream order. Pass 0 yields every document once (its tokens
    count "before weighting"; it is emitted only if its row has at least one copy); pass
    k > 0 yields only the documents with more than k copies. Validation: one pass, one source."""
    names, weights = plan.sources, plan.weights
    paths = [entry.path for entry in plan.inputs]
    of_source = None if source is None else np.array([name == source for name in names], dtype=bool)
    passes = math.ceil(max(weights.values())) if split == "train" else 1
    for number in range(passes):
        for clean_task in clean_tasks:
            for texts, files, rows in side_pieces(plan, clean_task, split, of_source):
                if split == "validation":
                    yield from ((text, file, True, True) for text, file in zip(texts, files))
                    continue
                for text, file, row in zip(texts, files, rows):
                    emitted = copies(weights[names[file]], paths[file], row) > number
                    if number == 0 or emitted:
                        yield text, file, number == 0, emitted


def batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


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


# Threads per encode call (`prepare --threads`, `task --threads`): for a task that owns more than
# one core. Not in the plan: sentencepiece's ids do not depend on it, so neither do the shards.
encode_threads = 1


def set_encode_threads(threads: int) -> None:
    """Set before the pool forks: the workers inherit it."""
    global encode_threads
    encode_threads = max(1, threads)


def run_task(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    cfg = plan.config.pack
    split, clean_tasks, prefix, validation_source = task_split(plan, task_id)
    tokenizer = SentencePieceTokenizer.load(plan.tokenizer_dir, num_threads=encode_threads)
    dtype = token_dtype(tokenizer.vocab_size)
    eos = np.array([tokenizer.eos_id], dtype=dtype)
    cutter = BlockCutter(cfg.block_size, dtype)
    shards = ShardSequence(plan.output / split, prefix, cfg.block_size, dtype, cfg.max_blocks_per_shard)
    doc_tokens = Histogram()
    vocab_counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    documents = tokens = chars = 0
    # per source: documents and tokens (with EOS) once each, and as emitted into the stream
    per_source: dict[str, dict[str, int]] = {}
    for batch in batches(weighted_documents(plan, split, clean_tasks, validation_source), cfg.encode_batch_documents):
        encoded = tokenizer.encode_batch([item[0] for item in batch])
        pieces = []
        for (text, file, counted, emitted), ids in zip(batch, encoded):
            counts = per_source.setdefault(
                plan.sources[file], {"documents": 0, "tokens": 0, "weighted_documents": 0, "weighted_tokens": 0}
            )
            if counted:
                counts["documents"] += 1
                counts["tokens"] += len(ids) + 1
            if not emitted:
                continue
            counts["weighted_documents"] += 1
            counts["weighted_tokens"] += len(ids) + 1
            pieces.append(np.asarray(ids, dtype=dtype))
            pieces.append(eos)
            doc_tokens.add(len(ids) + 1)
            chars += len(text)
            documents += 1
        if pieces:
            stream = np.concatenate(pieces)
            vocab_counts += np.bincount(stream, minlength=tokenizer.vocab_size)
            shards.write(cutter.push(stream))
            tokens += len(stream)
        progress(len(batch))
    written = shards.close()
    for entry in written:  # paths in the marker are relative to OUT
        entry["path"] = str(Path(entry["path"]).relative_to(plan.output))
        if validation_source is not None:
            entry["source"] = validation_source
    return {
        "split": split,
        "shards": written,
        "documents": documents,  # as emitted: a document read twice counts twice
        "tokens": tokens,  # including EOS, before cutting
        "chars": chars,
        "partial_tokens_dropped": int(len(cutter.pending)),
        "sources": dict(sorted(per_source.items())),
        "doc_tokens": doc_tokens.to_json(),
        "vocab_ids_used": np.flatnonzero(vocab_counts).tolist(),
    }


def count_tasks(plan: Plan) -> int:
    """N train tasks, then one validation task per source."""
    return plan.num_tasks + len(plan.weights)


STAGE = Stage(name="pack", run_task=run_task, count_tasks=count_tasks)
