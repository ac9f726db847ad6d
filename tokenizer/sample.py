"""A deterministic, bounded sample of sentences from the train documents.

Sentencepiece trains on a text file with one sentence per line and loads all of it into
memory, so the sample must be bounded whatever the corpus size. Every document is split into
sentences; each distinct sentence gets a 128-bit hash keyed with the seed, and the sample is
the run of distinct sentences with the smallest hashes that fits both caps (bottom-k sampling).
The heap holding it never grows past the caps, and the result depends only on the multiset of
sentences — not on how the documents are spread over files or in which order they come.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.core.atomic import write_atomically
from tokenizer.tokenizer_config import TokenizerConfig

# A sentence ends after a run of Chinese full stop/exclamation/question marks (with any closing
# quotes or brackets that follow) or at a line break. Line breaks never reach the sample file,
# whose lines are the sentences.
_SENTENCE = re.compile(r"[^。！？]*[。！？]+[」』”’）】》]*|[^。！？]+")


def split_sentences(text: str, max_chars: int) -> Iterator[str]:
    """Sentences of `text`, none longer than `max_chars` (longer runs are cut into chunks)."""
    for line in text.splitlines():
        for sentence in _SENTENCE.findall(line):
            if not sentence.strip():
                continue
            for start in range(0, len(sentence), max_chars):
                yield sentence[start : start + max_chars]


def sentence_key(sentence: str, seed: int) -> int:
    """Seeded 128-bit hash: the sampling order, uniform and independent of input order."""
    digest = hashlib.blake2b(
        sentence.encode("utf-8", "surrogatepass"), digest_size=16, key=seed.to_bytes(8, "little", signed=True)
    ).digest()
    return int.from_bytes(digest, "big")


class BottomKSample:
    """The distinct sentences with the smallest keys, within a sentence cap and a character cap."""

    def __init__(self, max_sentences: int, max_chars: int, seed: int):
        self.max_sentences = max_sentences
        self.max_chars = max_chars
        self.seed = seed
        self._heap: list[tuple[int, str]] = []  # (-key, sentence): the largest key on top
        self._keys: set[int] = set()
        self.chars = 0

    def offer(self, sentence: str) -> None:
        key = sentence_key(sentence, self.seed)
        if key in self._keys:
            return
        if self._is_full() and key > -self._heap[0][0]:
            return  # larger than everything kept: it could only be evicted again
        heapq.heappush(self._heap, (-key, sentence))
        self._keys.add(key)
        self.chars += len(sentence)
        # Evicting the largest keys until both caps hold keeps exactly the longest
        # smallest-key run that fits, so the result is independent of arrival order.
        while len(self._heap) > self.max_sentences or self.chars > self.max_chars:
            negative_key, evicted = heapq.heappop(self._heap)
            self._keys.discard(-negative_key)
            self.chars -= len(evicted)

    def _is_full(self) -> bool:
        return len(self._heap) >= self.max_sentences

    def sentences(self) -> list[str]:
        """The sample in key order (a fixed, shuffled-looking order)."""
        return [sentence for _, sentence in sorted(self._heap, reverse=True)]

    def __len__(self) -> int:
        return len(self._heap)


def write_training_sample(texts: Iterable[str], out_path: Path, config: TokenizerConfig) -> dict:
    """Write the bounded sample of the sentences of the documents `texts` to `out_path`; the
    sample does not depend on the order of `texts`.

    One sentence per line, UTF-8, written atomically. Returns counts for the report.
    """
    sample = BottomKSample(config.max_sample_sentences, config.max_sample_chars, config.seed)
    documents = sentences_seen = chars_seen = 0
    for text in texts:
        documents += 1
        for sentence in split_sentences(text, config.max_sentence_chars):
            sentences_seen += 1
            chars_seen += len(sentence)
            sample.offer(sentence)
    with write_atomically(out_path, "w") as handle:
        for sentence in sample.sentences():
            handle.write(sentence)
            handle.write("\n")
    return {
        "documents": documents,
        "sentences_seen": sentences_seen,
        "chars_seen": chars_seen,
        "sentences_sampled": len(sample),
        "chars_sampled": sample.chars,
        "max_sample_sentences": config.max_sample_sentences,
        "max_sample_chars": config.max_sample_chars,
        "max_sentence_chars": config.max_sentence_chars,
    }
