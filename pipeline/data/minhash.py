"""MinHash signatures over character n-grams, LSH band hashes, and first-in-order components.

The maths of near-duplicate removal, free of files and stages (those live in
pipeline/stages/near_dedup.py):

* A document is the set of its character n-grams (default 5 characters; a text shorter than
  n is one n-gram). Two documents are near-duplicates when the Jaccard similarity of their
  n-gram sets is high.
* MinHash: for each of P hash functions h_i, a document's signature value is the minimum of
  h_i over its n-grams; P(sig_a[i] == sig_b[i]) equals the Jaccard similarity, so the share
  of agreeing positions estimates it (`estimated_similarity`).
  Each n-gram is first hashed to 32 bits (a seeded polynomial over its code points, then the
  splitmix64 finaliser); the P functions are multiply-add-shift hashes
  h_i(x) = ((a_i·x + b_i) mod 2^64) >> 32 with random 64-bit a_i (odd), b_i — strongly
  universal for 32-bit x, and one numpy expression over an (n-grams × P) block.
* LSH: the signature is cut into b bands of r = P / b rows; documents whose band hashes agree
  in at least one band become candidates. A pair with similarity s is a candidate with
  probability 1 − (1 − s^r)^b, an S-curve whose steepest point (the implied threshold) is
  ≈ (1/b)^(1/r): 16 bands × 8 rows (the default) → 0.71, 32 × 4 → 0.42, 8 × 16 → 0.88.

Every constant comes from `numpy.random.PCG64(seed).random_raw`, whose stream numpy
guarantees, so signatures are identical across runs, machines and numpy versions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Not a Unicode code point: n of them follow each document in the concatenated stream, so no
# n-gram spans two documents and a text shorter than n (even an empty one) is one padded n-gram.
SENTINEL = 0x110000
NGRAMS_PER_BLOCK = 4096  # n-grams per (permutations × n-grams) block: 4 MiB at 128 permutations (measured best)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on uint64 that spreads every input bit (in place)."""
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def lsh_threshold(bands: int, rows: int) -> float:
    """Similarity at which a pair becomes a candidate with probability ≈ 1/2 (the S-curve's knee)."""
    return (1.0 / bands) ** (1.0 / rows)


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that a pair with this Jaccard similarity agrees in at least one band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


class MinHasher:
    """Seeded MinHash over character n-grams; `signatures(texts)` → (len(texts), P) uint32."""

    def __init__(self, ngram: int, num_permutations: int, bands: int, seed: int):
        if ngram < 1 or num_permutations < 1 or bands < 1 or num_permutations % bands:
            raise ValueError(f"need ngram ≥ 1 and num_permutations ({num_permutations}) a multiple of bands ({bands})")
        self.ngram = ngram
        self.num_permutations = num_permutations
        self.bands = bands
        self.rows = num_permutations // bands
        raw = np.random.PCG64(seed).random_raw(2 * num_permutations + ngram + self.rows + bands).astype(np.uint64)
        parts = np.split(raw, np.cumsum([num_permutations, num_permutations, ngram, self.rows]))
        self._multipliers = parts[0] | np.uint64(1)  # odd: multiplication mod 2^64 is then a bijection
        self._offsets = parts[1]
        self._ngram_weights = parts[2] | np.uint64(1)
        self._row_weights = parts[3] | np.uint64(1)
        self._band_salts = parts[4]

    @property
    def threshold(self) -> float:
        return lsh_threshold(self.bands, self.rows)

    def ngram_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """32-bit hashes (as uint64) of every document's n-grams, concatenated, and the
        number of n-grams per document (max(1, len − n + 1))."""
        n = self.ngram
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        code_points = np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4")
        padded_lengths = lengths + n
        padded_starts = np.concatenate(([0], np.cumsum(padded_lengths)[:-1])).astype(np.int64)
        stream = np.full(int(padded_lengths.sum()), SENTINEL, dtype=np.uint64)
        document_of_char = np.repeat(np.arange(len(texts)), lengths)
        char_starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        stream[padded_starts[document_of_char] + (np.arange(len(code_points)) - char_starts[document_of_char])] = (
            code_points
        )
        # polynomial hash of the n-gram starting at every stream position (a loop over n, not over positions)
        windows = len(stream) - n + 1
        hashes = np.zeros(max(windows, 0), dtype=np.uint64)
        for j in range(n):
            hashes += stream[j : j + windows] * self._ngram_weights[j]
        counts = np.maximum(lengths - n + 1, 1)
        first_ngram = np.repeat(padded_starts, counts)
        ngram_starts = first_ngram + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
        return mix64(hashes[ngram_starts]) >> np.uint64(32), counts

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """MinHash signatures, one row per text, in blocks of n-grams (memory stays bounded).

        Laid out permutations × n-grams so the per-document minimum (`reduceat`) runs along
        contiguous memory (5× faster than the transpose). The shift to the top 32 bits is
        monotone, so it is applied once to the minima instead of to every value."""
        minima = np.full((self.num_permutations, len(texts)), np.iinfo(np.uint64).max, dtype=np.uint64)
        if not texts:
            return minima.T.astype(np.uint32)
        hashes, counts = self.ngram_hashes(texts)
        document_of_ngram = np.repeat(np.arange(len(texts)), counts)
        block = np.empty((self.num_permutations, NGRAMS_PER_BLOCK), dtype=np.uint64)
        for lo in range(0, len(hashes), NGRAMS_PER_BLOCK):
            x = hashes[lo : lo + NGRAMS_PER_BLOCK]
            values = block[:, : len(x)]
            np.multiply(self._multipliers[:, None], x[None, :], out=values)
            values += self._offsets[:, None]
            documents = document_of_ngram[lo : lo + NGRAMS_PER_BLOCK]
            segment_starts = np.flatnonzero(np.concatenate(([True], documents[1:] != documents[:-1])))
            block_minima = np.minimum.reduceat(values, segment_starts, axis=1)
            owners = documents[segment_starts]  # distinct: a document's n-grams are contiguous
            minima[:, owners] = np.minimum(minima[:, owners], block_minima)
        return np.ascontiguousarray((minima >> np.uint64(32)).T, dtype=np.uint32)

    def band_hashes(self, signatures: np.ndarray) -> np.ndarray:
        """(D, P) signatures → (D, bands) uint64: a seeded hash of each band's r values,
        salted per band so equal values in different bands never look alike."""
        rows = signatures.astype(np.uint64).reshape(len(signatures), self.bands, self.rows)
        combined = (rows * self._row_weights).sum(axis=2, dtype=np.uint64) + self._band_salts
        return mix64(combined)


def estimated_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of equal signature positions, row by row: an unbiased Jaccard estimate."""
    return (a == b).mean(axis=-1)


def first_of_component(num_nodes: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Connected components of an undirected graph on nodes 0..num_nodes−1, vectorised
    union-find (hook roots to the smaller label, then compress paths until flat).

    Returns each node's label: the smallest node id in its component. Number the nodes in
    global document order and the label is the component's first document."""
    labels = np.arange(num_nodes, dtype=np.int64)
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    while True:
        a, b = labels[left], labels[right]
        differ = a != b
        if not differ.any():
            return labels
        a, b = a[differ], b[differ]
        low = np.minimum(a, b)
        # labels only ever decrease and point to smaller ids, so this forest has no cycles
        np.minimum.at(labels, a, low)
        np.minimum.at(labels, b, low)
        while True:
            compressed = labels[labels]
            if np.array_equal(compressed, labels):
                break
            labels = compressed
