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

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from itertools import chain, compress
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


@dataclasses.dataclass
class Chunk:
    """Consecutive documents of one task's stream, with what the accounting needs of each."""

    texts: list[str]
    files: np.ndarray  # input file index of each document
    emitted: np.ndarray  # bool: the document goes into the stream in this pass
    counted: np.ndarray  # bool: pass 0, the document counts once "before weighting"


def weighted_chunks(plan: Plan, split: str, clean_tasks: list[int], source: str | None) -> Iterator[Chunk]:
    """This task's documents in stream order, a batch of pieces at a time. Pass 0 holds every
    document once (its tokens count "before weighting"; it is emitted only if its row has at
    least one copy); pass k > 0 holds only the documents with more than k copies.
    Validation: one pass, one source, every document emitted."""
    names, weights = plan.sources, plan.weights
    file_weights = [weights[name] for name in names]
    # whole weights (the usual 1) need no per-row draw: a row's copies are its file's weight
    whole_copies = np.array(file_weights, dtype=np.int64) if all(w == math.floor(w) for w in file_weights) else None
    paths = [entry.path for entry in plan.inputs]
    of_source = None if source is None else np.array([name == source for name in names], dtype=bool)
    passes = math.ceil(max(weights.values())) if split == "train" else 1
    for number in range(passes):
        for clean_task in clean_tasks:
            for texts, files, rows in side_pieces(plan, clean_task, split, of_source):
                file_array = np.array(files, dtype=np.int64)
                if split == "validation":
                    everything = np.ones(len(texts), dtype=bool)
                    yield Chunk(texts, file_array, everything, everything)
                    continue
                if whole_copies is not None:
                    count = whole_copies[file_array]
                else:
                    count = np.array(
                        [copies(file_weights[f], paths[f], r) for f, r in zip(files, rows)], dtype=np.int64
                    )
                emitted = count > number
                if number == 0:
                    yield Chunk(texts, file_array, emitted, np.ones(len(texts), dtype=bool))
                elif emitted.any():
                    kept = int(emitted.sum())
                    yield Chunk(
                        list(compress(texts, emitted)),
                        file_array[emitted],
                        np.ones(kept, dtype=bool),
                        np.zeros(kept, dtype=bool),
                    )


def sized(chunks: Iterator[Chunk], size: int) -> Iterator[Chunk]:
    """The stream re-cut into chunks of exactly `size` documents (the last one: the rest), one
    encode call each. Cut across batches and passes, so blocks reach the shard writer in the
    same groups whatever the Arrow batch sizes: the shards' bytes do not depend on them."""
    held: list[Chunk] = []
    count = 0
    for chunk in chunks:
        start = 0
        while start < len(chunk.texts):
            end = start + size - count
            held.append(
                Chunk(
                    chunk.texts[start:end], chunk.files[start:end], chunk.emitted[start:end], chunk.counted[start:end]
                )
            )
            count += len(held[-1].texts)
            start = end
            if count == size:
                yield _joined(held)
                held, count = [], 0
    if held:
        yield _joined(held)


def _joined(chunks: list[Chunk]) -> Chunk:
    if len(chunks) == 1:
        return chunks[0]
    return Chunk(
        [text for chunk in chunks for text in chunk.texts],
        np.concatenate([chunk.files for chunk in chunks]),
        np.concatenate([chunk.emitted for chunk in chunks]),
        np.concatenate([chunk.counted for chunk in chunks]),
    )


# A test hook, read from the environment like the trainer's (pipeline/train/hooks.py): a pack task
# pauses this many seconds once, the first time it leaves a shard half-written under its
# temporary name, so that tests/faults/test_slurm_stale_task.py can freeze it there while it holds
# its task lock (a pack task of the test corpus is over in milliseconds). Never set in use.
ENV_PAUSE_S = "ZH_PRETRAIN_TEST_PACK_PAUSE_S"


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
        self._pause_s = float(os.environ.get(ENV_PAUSE_S) or 0.0)

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
        if self._pause_s and self.writer is not None:  # a shard is half-written: the test hook's moment
            time.sleep(self._pause_s)
            self._pause_s = 0.0

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


SOURCE_COUNTS = ("documents", "tokens", "weighted_documents", "weighted_tokens")


def token_stream(encoded: list[list[int]], lengths: np.ndarray, eos: int, dtype: np.dtype) -> np.ndarray:
    """The documents' ids, each followed by EOS (`lengths` include it), as one array: the ids
    converted once, in C, not one small array per document."""
    ids = np.fromiter(chain.from_iterable(encoded), dtype=dtype, count=int(lengths.sum()) - len(lengths))
    return np.insert(ids, np.cumsum(lengths - 1), dtype.type(eos))


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
    cutter = BlockCutter(cfg.block_size, dtype)
    shards = ShardSequence(plan.output / split, prefix, cfg.block_size, dtype, cfg.max_blocks_per_shard)
    doc_tokens = Histogram()
    vocab_counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    # per input file: documents and tokens (with EOS) once each, and as emitted into the stream
    num_files = len(plan.inputs)
    per_file = {key: np.zeros(num_files, dtype=np.int64) for key in SOURCE_COUNTS}
    documents = tokens = chars = 0
    for chunk in sized(weighted_chunks(plan, split, clean_tasks, validation_source), cfg.encode_batch_documents):
        encoded = tokenizer.encode_batch(chunk.texts)
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)) + 1  # with EOS
        files, emitted = chunk.files, chunk.emitted
        counted = chunk.counted
        per_file["documents"] += np.bincount(files[counted], minlength=num_files)
        per_file["tokens"] += np.bincount(files[counted], weights=lengths[counted], minlength=num_files).astype(
            np.int64
        )
        sent = lengths[emitted]
        per_file["weighted_documents"] += np.bincount(files[emitted], minlength=num_files)
        per_file["weighted_tokens"] += np.bincount(files[emitted], weights=sent, minlength=num_files).astype(np.int64)
        if len(sent):
            stream = token_stream(list(compress(encoded, emitted)), sent, tokenizer.eos_id, dtype)
            doc_tokens.add_many(sent)
            chars += sum(map(len, compress(chunk.texts, emitted)))
            documents += len(sent)
            vocab_counts += np.bincount(stream, minlength=tokenizer.vocab_size)
            shards.write(cutter.push(stream))
            tokens += len(stream)
        progress(len(encoded))
    per_source: dict[str, dict[str, int]] = {}
    for file in np.flatnonzero(per_file["documents"]).tolist():  # the sources seen, as in the stream
        counts = per_source.setdefault(plan.sources[file], dict.fromkeys(SOURCE_COUNTS, 0))
        for key in SOURCE_COUNTS:
            counts[key] += int(per_file[key][file])
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
