"""The unit of work between stages: a Document, stored as zstd-compressed JSON lines.

Intermediate files never sit in memory whole: `DocumentWriter` streams into a zstd frame,
`read_documents` streams back out. Writers go through `write_atomically`, so a killed task
never leaves a half-written shard under the final name.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path
from typing import Iterable, Iterator

import zstandard

from .atomic import write_atomically


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


class DocumentWriter:
    """Streams documents into `path` (.jsonl.zst), renamed into place on close."""

    def __init__(self, path: str | Path, level: int = 3):
        self._context = write_atomically(path, "wb")
        raw = self._context.__enter__()
        self._zstd = zstandard.ZstdCompressor(level=level).stream_writer(raw, closefd=False)
        self._text = io.TextIOWrapper(self._zstd, encoding="utf-8", write_through=True)
        self.count = 0

    def write(self, doc: Document, **extra) -> None:
        record = {"text": doc.text, "source": doc.source, "row": doc.row, **extra}
        self._text.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def write_record(self, record: dict) -> None:
        """Copy a record read by `read_records` (keeps its extra fields)."""
        self._text.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        self._text.flush()
        self._text.detach()
        self._zstd.close()
        self._context.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        self._context.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> "DocumentWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)


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
