"""Fixed-edge histograms that add up across tasks (so the report never needs raw lengths)."""

from __future__ import annotations

import bisect

import numpy as np

# Powers of two: lengths of a sentence (10 chars) to a book chapter (100k chars) each get a bucket.
EDGES = [0, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]


class Histogram:
    def __init__(self, counts: list[int] | None = None):
        self.counts = list(counts) if counts else [0] * len(EDGES)

    def add(self, value: int) -> None:
        self.counts[bisect.bisect_right(EDGES, value) - 1] += 1

    def add_many(self, values: np.ndarray) -> None:
        buckets = np.searchsorted(EDGES, values, side="right") - 1
        self.counts = [a + int(b) for a, b in zip(self.counts, np.bincount(buckets, minlength=len(EDGES)))]

    def merge(self, other: Histogram | dict) -> None:
        counts = other["counts"] if isinstance(other, dict) else other.counts
        self.counts = [a + b for a, b in zip(self.counts, counts)]

    def to_json(self) -> dict:
        # bucket i holds values in [edges[i], edges[i+1]); the last bucket is open-ended
        return {"edges": EDGES, "counts": self.counts}
