"""The unit of work between stages: a Document, stored as zstd-compressed JSON lines.

Intermediate files never sit in memory whole: `DocumentWriter` streams into a zstd frame,
`read_documents` streams back out. Writers are `AtomicFileWriter`s, so a killed task
never leaves a half-written shard under the final name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

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
        line = json.dumps(record, ensure_ascii=False)
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
