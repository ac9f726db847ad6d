"""Read stage: stream Documents out of one `.csv` or `.csv.zst` file, isolating its faults.

Parser choice: Python's C `csv` module (strict mode) over a streaming text decoder, not
pyarrow's streaming CSV reader. Reasons:

* Exact row accounting at faults. pyarrow parses a block at a time and fails the whole block
  on an unterminated quote or a bad byte, so the rows before the fault in that block are lost
  or unaccounted. `csv.reader` hands out one record at a time, so every record is either
  yielded or counted as malformed, with its row and line number.
* Encodings. pyarrow only parses UTF-8; GB18030 would need a transcoding layer anyway, and
  undecodable bytes must be counted (a counting codec error handler does that in C speed).
* Bounded memory. `io.TextIOWrapper` decodes `block_bytes` at a time; lines are read with a
  length cap and `csv.field_size_limit` caps a quoted multi-line field, so memory is bounded by
  the block plus the longest allowed record (`max_record_chars`), never by the file size.
* Throughput. Decoding, line splitting and CSV parsing all run in C; the only Python work is
  one small generator step per line and one per record (see benchmarks/bench_read_clean.py).

Accounting invariant (tested): rows_read == documents yielded + rows_malformed + rows_empty_text.
Blank lines between records are not records (like every CSV reader) and are not counted.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import zstandard

from pipeline.formats.documents import Document

# --- undecodable-byte counting ------------------------------------------------------------
# A codec error handler is process-global, so it adds to a counter that each reader samples
# before and after every decode call: the difference is that file's count, even when several
# readers are interleaved in one thread.
_UNDECODABLE = [0]
_ERROR_HANDLER = "pipeline-read-count-replace"


def _count_and_replace(exc: UnicodeError):
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _UNDECODABLE[0] += exc.end - exc.start
    return "\ufffd", exc.end


codecs.register_error(_ERROR_HANDLER, _count_and_replace)

_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_MAX_PROBLEMS = 20  # per file: row-level messages kept in the report (all are counted)


@dataclass
class ReadConfig:
    text_column: str = "content"
    # Tried in order on a leading sample of each file; a BOM overrides (utf-8-sig / utf-16).
    encodings: list[str] = field(default_factory=lambda: ["utf-8", "gb18030"])
    # Bytes read and decoded at a time (the memory bound, together with max_record_chars).
    block_bytes: int = 1 << 20
    # Longest record (line or quoted field) accepted; past it the rest of the file is
    # reported malformed instead of growing memory without bound.
    max_record_chars: int = 1 << 22
    # How far into a file to look for the first non-ASCII bytes to decide the encoding.
    detect_max_bytes: int = 1 << 24
    # A last record without a line terminator is a file truncated mid-row (every CSV writer
    # ends its last row with a newline); count it malformed. False keeps such a row.
    require_final_newline: bool = True

    def check(self) -> None:
        if not self.text_column:
            raise ValueError("text_column must not be empty")
        if not self.encodings:
            raise ValueError("encodings must list at least one encoding")
        for name in self.encodings:
            try:
                codecs.lookup(name)
            except LookupError:
                raise ValueError(f"encodings: unknown encoding {name!r}") from None
        for name in ("block_bytes", "max_record_chars", "detect_max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class FileReport:
    """What happened to one input file. JSON-serialisable via dataclasses.asdict."""

    path: str
    encoding: str | None = None  # "utf-8", "utf-8-sig", "gb18030", ...
    compressed: bool = False  # .csv.zst
    rows_read: int = 0  # data records met, including malformed and empty ones
    rows_malformed: int = 0  # not yielded: bad quoting, wrong field count, truncated tail
    rows_empty_text: int = 0  # not yielded: text cell empty or whitespace only
    undecodable_bytes: int = 0  # replaced by U+FFFD (the cleaner removes those)
    skipped_reason: str | None = None  # "empty_file" | "missing_column" | "open_error"
    error: str | None = None  # file-level message (skips, read failures)
    problems: list[str] = field(default_factory=list)  # first row-level messages, with rows
    bytes_read: int = 0  # on-disk (compressed) bytes consumed so far; live during reading

    def add_problem(self, message: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(message)
        elif len(self.problems) == _MAX_PROBLEMS:
            self.problems.append("... (further problems counted, not listed)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _CountingRaw(io.RawIOBase):
    """Raw file wrapper that keeps `report.bytes_read` current (progress bars read it)."""

    def __init__(self, raw: BinaryIO, report: FileReport):
        self._raw = raw
        self._report = report

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        self._report.bytes_read += n or 0
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_bytes(path: str, config: ReadConfig, report: FileReport) -> BinaryIO:
    """Open `path` as a stream of decompressed bytes, read `block_bytes` at a time."""
    raw = _CountingRaw(open(path, "rb", buffering=0), report)
    if path.endswith(".zst"):
        reader = zstandard.ZstdDecompressor().stream_reader(
            raw,
            read_size=config.block_bytes,
            read_across_frames=True,  # pzstd, cat a.zst b.zst
        )
        return io.BufferedReader(reader, buffer_size=config.block_bytes)
    return io.BufferedReader(raw, buffer_size=config.block_bytes)


def _decode_errors(data: bytes, encoding: str, final: bool) -> int:
    decoder = codecs.getincrementaldecoder(encoding)(errors=_ERROR_HANDLER)
    before = _UNDECODABLE[0]
    decoder.decode(data, final=final)
    return _UNDECODABLE[0] - before


def _detect_encoding(stream: BinaryIO, config: ReadConfig) -> str | None:
    """Pick the encoding from the file's start; None for an empty (or whitespace-only) file.

    ASCII decodes the same in every candidate, so the decision is taken on the first block
    that holds non-ASCII bytes (which starts at a character boundary: the byte before it is
    ASCII). The first candidate that decodes it cleanly wins; otherwise the one with the
    fewest undecodable bytes (ties go to the earlier one).
    """
    head = stream.read(config.block_bytes)
    bom_encoding = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if bom_encoding:
        head = head[len(codecs.BOM_UTF8 if bom_encoding == "utf-8-sig" else codecs.BOM_UTF16) :]
    while not head.strip():  # only whitespace so far: is there anything at all?
        more = stream.read(config.block_bytes)
        if not more:
            return None
        head = more
    if bom_encoding:
        return bom_encoding
    scanned = len(head)
    block = head
    while block.isascii():
        if scanned >= config.detect_max_bytes:
            return config.encodings[0]
        block = stream.read(config.block_bytes)
        if not block:
            return config.encodings[0]
        scanned += len(block)
    sample = block[_NON_ASCII.search(block).start() :]
    final = not stream.read(1)
    for name in config.encodings:  # strict first: a clean decode is the common answer, at C speed
        try:
            codecs.getincrementaldecoder(name)(errors="strict").decode(sample, final=final)
            return name
        except UnicodeDecodeError:
            pass
    best, fewest = config.encodings[0], None
    for name in config.encodings:  # none is clean: the one with the fewest bad bytes
        errors = _decode_errors(sample, name, final)
        if errors == 0:
            return name
        if fewest is None or errors < fewest:
            best, fewest = name, errors
    return best


class _Lines:
    """Lines (terminators kept, as csv wants) with a length cap and a note of how input ended."""

    def __init__(self, text: io.TextIOBase, max_chars: int):
        self._readline = text.readline
        self._max = max_chars
        self.line_unterminated = False  # the last line handed out had no terminator (EOF)
        self.overlong = False  # a line exceeded max_chars; input was cut there

    def __iter__(self):
        readline, cap = self._readline, self._max
        while True:
            line = readline(cap)
            if not line:
                return
            if line[-1] not in "\n\r":
                if len(line) >= cap:
                    self.overlong = True
                    return
                self.line_unterminated = True
            yield line


def read_csv_file(path: str, config: ReadConfig, report: FileReport) -> Iterator[Document]:
    """Stream Documents (text, source=path as given, row=0-based data record index) from one
    .csv or .csv.zst file, filling `report`. Never raises for a bad file: faults go into the
    report. Empty text cells are counted (`rows_empty_text`) and not yielded."""
    for row, text in read_csv_rows(path, config, report):
        yield Document(text=text, source=path, row=row)


def read_csv_rows(path: str, config: ReadConfig, report: FileReport) -> Iterator[tuple[int, str]]:
    """`read_csv_file` as (row, text) pairs: the clean stage's hot path, no object per row."""
    report.compressed = path.endswith(".zst")
    try:
        with _open_bytes(path, config, report) as probe:
            encoding = _detect_encoding(probe, config)
    except (OSError, zstandard.ZstdError) as exc:
        report.skipped_reason = "open_error"
        report.error = f"cannot read {path}: {exc}"
        return
    if encoding is None:
        report.skipped_reason = "empty_file"
        report.error = f"{path} is empty"
        return
    report.encoding = encoding
    report.bytes_read = 0  # the probe's bytes are read again
    previous_limit = csv.field_size_limit()  # process-wide: restored so other csv users keep theirs
    try:
        yield from _parse(path, encoding, config, report)
    except (OSError, zstandard.ZstdError) as exc:
        # Read failure mid-file (I/O error, corrupt zstd frame): what was yielded stays; the
        # record being parsed when it happened is the broken tail.
        report.rows_read += 1
        report.rows_malformed += 1
        report.error = f"read failed after {report.bytes_read} bytes of {path}: {exc}"
    finally:
        csv.field_size_limit(previous_limit)


def _parse(path: str, encoding: str, config: ReadConfig, report: FileReport) -> Iterator[Document]:
    csv.field_size_limit(config.max_record_chars)
    stream = _open_bytes(path, config, report)
    with io.TextIOWrapper(stream, encoding=encoding, errors=_ERROR_HANDLER, newline="") as text:
        text._CHUNK_SIZE = config.block_bytes  # decode a block at a time, not 8 KiB
        lines = _Lines(text, config.max_record_chars)
        records = csv.reader(lines, strict=True)
        undecodable_start = _UNDECODABLE[0]
        try:
            yield from _records_to_documents(path, records, lines, config, report)
        finally:
            report.undecodable_bytes += _UNDECODABLE[0] - undecodable_start


def _records_to_documents(path, records, lines: _Lines, config: ReadConfig, report: FileReport):
    try:
        header = next(records)
        while not header:  # blank lines before the header
            header = next(records)
    except StopIteration:
        header = []
    except csv.Error as exc:
        report.skipped_reason = "missing_column"
        report.error = f"{path}: header line cannot be parsed ({exc}); no column {config.text_column!r}"
        return
    columns = [name.strip() for name in header]
    if config.text_column not in columns:
        report.skipped_reason = "missing_column"
        listed = ", ".join(columns) if any(columns) else "(none)"
        report.error = f"{path}: no column {config.text_column!r}; columns are: {listed}"
        return
    text_index = columns.index(config.text_column)
    width = len(columns)
    require_newline = config.require_final_newline
    row = -1
    line_end = records.line_num
    while True:
        line_start = line_end + 1
        try:
            fields = next(records)
        except StopIteration:
            break
        except csv.Error as exc:
            row += 1
            line_end = records.line_num
            report.rows_read += 1
            report.rows_malformed += 1
            if lines.overlong or "field larger than field limit" in str(exc):
                # An unterminated quote swallowing the rest, most likely: stop here.
                _note_cut(path, row, line_start, config, report)
                return
            at_eof = "unexpected end of data" in str(exc)
            reason = "unterminated quoted field at end of file" if at_eof else str(exc)
            report.add_problem(f"row {row} (line {line_start}): {reason}")
            continue
        line_end = records.line_num
        if not fields:
            continue  # a blank line
        row += 1
        report.rows_read += 1
        if len(fields) != width:
            report.rows_malformed += 1
            report.add_problem(f"row {row} (line {line_start}): {len(fields)} fields, header has {width}")
            continue
        if require_newline and lines.line_unterminated:
            report.rows_malformed += 1
            report.add_problem(f"row {row} (line {line_start}): last row has no line end (file truncated mid-row?)")
            continue
        value = fields[text_index]
        if not value or value.isspace():
            report.rows_empty_text += 1
            continue
        yield row, value
    if lines.overlong:
        report.rows_read += 1
        report.rows_malformed += 1
        _note_cut(path, row + 1, line_end + 1, config, report)


def _note_cut(path: str, row: int, line: int, config: ReadConfig, report: FileReport) -> None:
    report.error = (
        f"{path}: row {row} (line {line}) is longer than max_record_chars={config.max_record_chars} "
        f"(an unterminated quote?); the rest of the file was not read"
    )
    report.add_problem(report.error)
