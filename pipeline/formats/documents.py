"""The unit of work between stages: a Document, and the two files it is stored in.

- Cleaned pieces between `clean` and `split`/`pack` (work/clean/): an Arrow IPC stream of
  (text, file, row, part) columns, `PieceWriter` / `read_pieces`. Read back through a memory
  map without parsing: the texts are handed to the next stage as Arrow strings, not re-decoded
  JSON, and a reader that wants only some rows (pack: one split side) copies only those.
- Documents as an output (docs/, dropped/ samples): zstd-compressed JSON lines,
  `DocumentWriter` / `read_records`, readable with any tool.

Files never sit in memory whole: writers stream (one batch at a time), readers stream back.
Writers are `AtomicFileWriter`s, so a killed task never leaves a half-written file under the
final name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import zstandard

from pipeline.core.atomic import AtomicFileWriter


@dataclasses.dataclass
class Document:
    """One row of the corpus. `source` + `row` form the stable key that follows it to the end."""

    text: str
    source: str  # input path as globbed
    row: int  # 0-based data row in that file (header excluded)

    @property
    def key(self) -> str:
        return f"{self.source}:{self.row}"


def content_hash(text: str) -> bytes:
    """128-bit hash of cleaned text: identity for dedup, and (other bytes) the split draw."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


FLUSH_CHARS = 1 << 19
_JSON = json.JSONEncoder(ensure_ascii=False)  # what json.dumps(…, ensure_ascii=False) builds per call


class DocumentWriter(AtomicFileWriter):
    """Streams documents into `path` (.jsonl.zst), renamed into place on close."""

    def __init__(self, path: str | Path, level: int = 3):
        super().__init__(path)
        self._zstd = zstandard.ZstdCompressor(level=level).stream_writer(self.sink, closefd=False)
        self._lines: list[str] = []  # batched: one compressor call per ~1 MB, not per document
        self._pending_chars = 0
        self.count = 0

    def write(self, doc: Document, **extra) -> None:
        self.write_record({"text": doc.text, "source": doc.source, "row": doc.row, **extra})

    def write_record(self, record: dict) -> None:
        """Write one record (also: copy a record read by `read_records`, extra fields kept)."""
        line = _JSON.encode(record)
        self._lines.append(line)
        self._pending_chars += len(line)
        self.count += 1
        if self._pending_chars >= FLUSH_CHARS:
            self._flush()

    def _flush(self) -> None:
        if self._lines:
            self._lines.append("")
            self._zstd.write("\n".join(self._lines).encode("utf-8"))
            self._lines, self._pending_chars = [], 0

    def _finish(self) -> None:
        self._flush()
        self._zstd.close()


def read_records(path: str | Path) -> Iterator[dict]:
    """Yield the raw JSON records of a .jsonl.zst file, streaming."""
    with open(path, "rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        for line in io.TextIOWrapper(reader, encoding="utf-8"):
            if line.strip():
                yield json.loads(line)


def read_documents(path: str | Path) -> Iterator[Document]:
    for record in read_records(path):
        yield Document(text=record["text"], source=record["source"], row=record["row"])


def write_documents(path: str | Path, docs: Iterable[Document]) -> int:
    with DocumentWriter(path) as writer:
        for doc in docs:
            writer.write(doc)
        return writer.count


PIECE_SCHEMA = pa.schema([("text", pa.string()), ("file", pa.uint32()), ("row", pa.uint64()), ("part", pa.uint32())])


class PieceWriter(AtomicFileWriter):
    """Streams cleaned pieces — text, input file index, data row, piece number within the row —
    into `path` as an Arrow IPC stream, one record batch per ~FLUSH_CHARS of text."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._writer = pa.ipc.new_stream(self.sink, PIECE_SCHEMA)
        self._columns: tuple[list, list, list, list] = ([], [], [], [])
        self._pending_chars = 0
        self.count = 0

    def write(self, text: str, file: int, row: int, part: int) -> None:
        texts, files, rows, parts = self._columns
        texts.append(text)
        files.append(file)
        rows.append(row)
        parts.append(part)
        self._pending_chars += len(text)
        self.count += 1
        if self._pending_chars >= FLUSH_CHARS:
            self._flush()

    def write_batch(self, texts: list[str], files: list[int], rows: list[int], parts: list[int]) -> None:
        """Write pieces given as columns, as one record batch (after any pieces `write` holds)."""
        self._flush()
        if texts:
            self._writer.write_batch(pa.record_batch([texts, files, rows, parts], schema=PIECE_SCHEMA))
            self.count += len(texts)

    def _flush(self) -> None:
        if self._columns[0]:
            self._writer.write_batch(pa.record_batch(list(self._columns), schema=PIECE_SCHEMA))
            self._columns, self._pending_chars = ([], [], [], []), 0

    def _finish(self) -> None:
        self._flush()
        self._writer.close()


def read_pieces(path: str | Path) -> Iterator[pa.RecordBatch]:
    """The record batches of a `PieceWriter` file, in order, zero-copy from a memory map."""
    reader = pa.ipc.open_stream(pa.memory_map(str(path), "r"))
    if reader.schema != PIECE_SCHEMA:
        raise ValueError(f"{path}: not a file of cleaned pieces (schema {reader.schema})")
    yield from reader


def piece_columns(batch: pa.RecordBatch, mask: np.ndarray | None = None) -> tuple[list, ...]:
    """(texts, files, rows, parts) of `batch` as Python lists, only the rows where `mask` is set."""
    if mask is not None:
        batch = batch.filter(pa.array(mask, type=pa.bool_()))
    return tuple(column.to_pylist() for column in batch.columns)


def read_piece_records(path: str | Path) -> Iterator[dict]:
    """Every piece as a dict (text, file, row, part): for tests and tools, not the hot path."""
    for batch in read_pieces(path):
        yield from batch.to_pylist()
