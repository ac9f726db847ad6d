"""Packed token blocks in Arrow IPC stream files: the hand-off from data prep to training.

One column, `input_ids`, a fixed-size list of `block_size` uint16 (uint32 when the
vocabulary does not fit in 16 bits). The stream format is what `datasets.Dataset.from_file`
reads, and `pyarrow.memory_map` + `ipc.open_stream` gives zero-copy access: a block is a
numpy view into the mapped file, so a 100 GB shard set costs page cache, not RAM.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.core.atomic import AtomicFileWriter

COLUMN = "input_ids"
ROWS_PER_BATCH = 1024  # record batch size inside a shard; bounds writer memory


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (vocab ≤ 65,536), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def shard_schema(block_size: int, dtype: np.dtype) -> pa.Schema:
    return pa.schema([pa.field(COLUMN, pa.list_(pa.from_numpy_dtype(dtype), block_size))])


class ShardWriter(AtomicFileWriter):
    """Writes blocks (rows of `block_size` ids) to one Arrow stream file, atomically."""

    def __init__(self, path: str | Path, block_size: int, dtype: np.dtype):
        super().__init__(path)
        self.block_size = block_size
        self.dtype = np.dtype(dtype)
        self.schema = shard_schema(block_size, self.dtype)
        self._writer = pa.ipc.new_stream(self.sink, self.schema)
        self._pending: list[np.ndarray] = []
        self.blocks = 0

    def write_blocks(self, blocks: np.ndarray) -> None:
        """`blocks`: array of shape (n, block_size)."""
        if blocks.ndim != 2 or blocks.shape[1] != self.block_size:
            raise ValueError(f"expected blocks of shape (n, {self.block_size}), got {blocks.shape}")
        self._pending.append(blocks.astype(self.dtype, copy=False))
        if sum(len(b) for b in self._pending) >= ROWS_PER_BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        rows = np.concatenate(self._pending)
        self._pending = []
        values = pa.array(rows.reshape(-1), type=pa.from_numpy_dtype(self.dtype))
        column = pa.FixedSizeListArray.from_arrays(values, self.block_size)
        self._writer.write_batch(pa.record_batch([column], schema=self.schema))
        self.blocks += len(rows)

    def _finish(self) -> None:
        self._flush()
        self._writer.close()


class PackedBlocks:
    """Random access by global block index over a list of shards, zero-copy via mmap."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [Path(p) for p in paths]
        self._chunks: list[np.ndarray] = []  # each (rows, block_size), a view into a mapped file
        self._starts: list[int] = []
        total = 0
        self.block_size: int | None = None
        for path in self.paths:
            source = pa.memory_map(str(path), "r")
            table = pa.ipc.open_stream(source).read_all()
            if table.schema.names != [COLUMN]:
                raise ValueError(f"{path}: expected one column '{COLUMN}', found {table.schema.names}")
            list_type = table.schema.field(COLUMN).type
            if not pa.types.is_fixed_size_list(list_type):
                raise ValueError(f"{path}: '{COLUMN}' must be a fixed-size list, found {list_type}")
            if self.block_size is None:
                self.block_size = list_type.list_size
            elif list_type.list_size != self.block_size:
                raise ValueError(f"{path}: block size {list_type.list_size} != {self.block_size} of earlier shards")
            for chunk in table.column(COLUMN).chunks:
                if len(chunk) == 0:
                    continue
                flat = chunk.values.to_numpy(zero_copy_only=True)
                self._chunks.append(flat.reshape(len(chunk), self.block_size))
                self._starts.append(total)
                total += len(chunk)
        self.num_blocks = total

    def __len__(self) -> int:
        return self.num_blocks

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self.num_blocks:
            raise IndexError(f"block {index} out of range [0, {self.num_blocks})")
        chunk = bisect.bisect_right(self._starts, index) - 1
        return self._chunks[chunk][index - self._starts[chunk]]

    def token_counts(self, vocab_size: int) -> np.ndarray:
        """How often each id occurs in all blocks (chunk by chunk over the mapped files)."""
        counts = np.zeros(vocab_size, dtype=np.int64)
        for chunk in self._chunks:
            counts += np.bincount(chunk.reshape(-1), minlength=vocab_size)[:vocab_size]
        return counts

    def gather(self, indices: Sequence[int]) -> np.ndarray:
        """Blocks at `indices` as one (len(indices), block_size) int64 array (copies)."""
        return np.stack([self[i] for i in indices]).astype(np.int64)


def inspect_shard(path: str | Path) -> tuple[int, str, int]:
    """(block size, dtype name, number of blocks) of a shard, read through to the end (a
    truncated stream raises)."""
    with pa.memory_map(str(path), "r") as source:
        reader = pa.ipc.open_stream(source)
        list_type = reader.schema.field(COLUMN).type if reader.schema.names == [COLUMN] else None
        if list_type is None or not pa.types.is_fixed_size_list(list_type):
            raise ValueError(f"expected one fixed-size list column '{COLUMN}', found {reader.schema}")
        blocks = sum(batch.num_rows for batch in reader)
    return list_type.list_size, np.dtype(list_type.value_type.to_pandas_dtype()).name, blocks


def sha256_of_file(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


class BlockCutter:
    """Accumulates token ids and hands out full blocks; keeps the partial remainder."""

    def __init__(self, block_size: int, dtype: np.dtype):
        self.block_size = block_size
        self.dtype = dtype
        self.pending = np.zeros(0, dtype=dtype)

    def push(self, ids: np.ndarray) -> np.ndarray:
        stream = np.concatenate([self.pending, ids]) if len(self.pending) else ids
        full = len(stream) // self.block_size * self.block_size
        self.pending = stream[full:].copy()
        return stream[:full].reshape(-1, self.block_size)
