"""Hash-bucket records exchanged between the clean (map) and dedup (reduce) stages.

A record says: the document at (task, ordinal) — input file `file`, row `row`, piece `part` —
has content hash (h0, h1). Records are fixed-size numpy rows written with `np.save`, so a
bucket of a million documents is 36 MB and loads in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.atomic import write_atomically

RECORD = np.dtype(
    [
        ("h0", "<u8"),
        ("h1", "<u8"),
        ("file", "<u4"),
        ("row", "<u8"),
        ("part", "<u4"),
        ("task", "<u4"),
        ("ordinal", "<u8"),
    ]
)
DROP = np.dtype([("task", "<u4"), ("ordinal", "<u8")])
# two source rows that must land on the same side of the split (a shared or near-identical piece)
ROW_LINK = np.dtype([("a_file", "<u4"), ("a_row", "<u8"), ("b_file", "<u4"), ("b_row", "<u8")])
# a row of an appended version holding a copy of an earlier version's document (version, task, ordinal)
BASE_LINK = np.dtype([("b_file", "<u4"), ("b_row", "<u8"), ("version", "<u4"), ("task", "<u4"), ("ordinal", "<u8")])
ROW_BITS = 40  # row_key = file << 40 | row: rows per file stay far below 2^40


def row_key(file, row):
    """One sortable uint64 per source row (numpy arrays or ints)."""
    return (np.asarray(file, dtype=np.uint64) << np.uint64(ROW_BITS)) | np.asarray(row, dtype=np.uint64)


def hash_words(digest: bytes) -> tuple[int, int]:
    """16-byte hash → two big-endian words, so numeric order equals byte order."""
    return int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:], "big")


def split_draw(h1):
    """A text's uniform draw in [0, 2^64): the hash's second word, independent of the first
    word that picks the bucket. A row's draw is its first piece's; a group's, its first row's
    (see stages/group.py). Works on ints and numpy arrays alike."""
    return h1


def save_array(path: Path, array: np.ndarray) -> None:
    with write_atomically(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def load_array(path: Path, dtype: np.dtype) -> np.ndarray:
    array = np.load(path, allow_pickle=False)
    if array.dtype != dtype:
        raise ValueError(f"{path}: unexpected record type {array.dtype}")
    return array
