"""Bounded, deterministic samples of what preparation dropped: OUT/dropped/<reason>.jsonl.zst.

Which rows are shown must not depend on how the work was split into tasks. Every candidate
gets a key, `sample_key(file, row, part)` (splitmix64 of its position in the plan's sorted
input list), and a sample keeps the `per_source` candidates with the smallest keys in each
(reason, source). Each task keeps its own smallest ones; the union of the tasks' picks holds
the global smallest, so merging them (keep the smallest again) gives the same sample for any
task count. Texts are cut to `max_chars` characters (the record says how long they were).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

import numpy as np

from pipeline.data.minhash import mix64

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """One splitmix64 output per uint64 input: the increment, then minhash's finaliser."""
    with np.errstate(over="ignore"):
        return mix64(np.asarray(x, dtype=np.uint64) + _GOLDEN)


def sample_key(file, row, part=0):
    """A document's (or row's) sampling key from its position; numpy arrays, or ints → an int."""
    scalar = not isinstance(file, np.ndarray)
    file, row, part = (np.atleast_1d(np.asarray(v, dtype=np.uint64)) for v in (file, row, part))
    keys = _splitmix64(_splitmix64((file << np.uint64(40)) | row) ^ part)
    return int(keys[0]) if scalar else keys


def smallest_per_group_indices(keys: np.ndarray, groups: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the `limit` smallest keys within each group (ties: the earlier index), in
    (group, key) order — the vectorised form of SmallestPerGroup, for candidates in arrays."""
    order = np.lexsort((np.arange(len(keys)), keys, groups))
    grouped = groups[order]
    place = np.arange(len(order)) - np.searchsorted(grouped, grouped)  # rank within its group
    return order[place < limit]


def source_ids(file_sources: list[str]) -> tuple[list[str], np.ndarray]:
    """(source names sorted, the index into them of each input file's source)."""
    names = sorted(set(file_sources))
    index = {name: i for i, name in enumerate(names)}
    return names, np.array([index[name] for name in file_sources], dtype=np.int64)


class SmallestPerGroup:
    """Keeps the `limit` items with the smallest keys in each group (a max-heap per group)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._heaps: dict[str, list[tuple[int, int, dict]]] = {}
        self._counter = 0

    def offer(self, group: str, key: int, make_item) -> None:
        """`make_item()` builds the item only if it is kept (texts are cut only then)."""
        if self.limit <= 0:
            return
        heap = self._heaps.setdefault(group, [])
        if len(heap) >= self.limit and -heap[0][0] <= key:
            return
        self._counter += 1
        item = {"key": key, **make_item()}
        if len(heap) < self.limit:
            heapq.heappush(heap, (-key, self._counter, item))
        else:
            heapq.heapreplace(heap, (-key, self._counter, item))

    def items(self) -> list[dict]:
        """Every kept item, sorted by (group, key)."""
        out = []
        for group in sorted(self._heaps):
            out += sorted((entry[2] for entry in self._heaps[group]), key=lambda item: item["key"])
        return out


def smallest_per_group(items: Iterable[dict], group_of, limit: int) -> list[dict]:
    """Merge: the `limit` items with the smallest "key" per group, sorted by (group, key)."""
    kept = SmallestPerGroup(limit)
    for item in items:
        kept.offer(group_of(item), item["key"], lambda item=item: {k: v for k, v in item.items() if k != "key"})
    return kept.items()


def cut(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars] + "…"
