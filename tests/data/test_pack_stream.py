"""The pack stage's stream plumbing: chunks re-cut to the encode batch size, token streams with EOS."""

from __future__ import annotations

import random

import numpy as np

from pipeline.data.stages.pack import Chunk, sized, token_stream


def test_sized_recuts_the_stream_into_chunks_of_exactly_the_batch_size():
    # the shards' bytes depend on the groups in which blocks reach the writer: the cut must not
    # depend on how the pieces were batched before (Arrow batches, passes)
    rng = random.Random(3)
    chunks, total = [], 0
    for _ in range(60):
        count = rng.choice([0, 1, 5, 29, 600])
        numbers = np.arange(total, total + count)
        chunks.append(Chunk([f"d{i}" for i in numbers], numbers, numbers % 3 != 0, numbers % 5 != 0))
        total += count
    for size in (1, 7, 512):
        out = list(sized(iter(chunks), size))
        assert [len(c.texts) for c in out] == [size] * (total // size) + ([total % size] if total % size else [])
        numbers = np.arange(total)
        assert [text for c in out for text in c.texts] == [f"d{i}" for i in numbers]
        np.testing.assert_array_equal(np.concatenate([c.files for c in out]), numbers)
        np.testing.assert_array_equal(np.concatenate([c.emitted for c in out]), numbers % 3 != 0)
        np.testing.assert_array_equal(np.concatenate([c.counted for c in out]), numbers % 5 != 0)


def test_token_stream_puts_one_eos_after_every_document_even_an_empty_one():
    encoded = [[5, 6, 7], [], [8], [9, 10]]
    stream = token_stream(encoded, np.array([4, 1, 2, 3]), eos=2, dtype=np.dtype(np.uint16))
    assert stream.dtype == np.uint16
    assert stream.tolist() == [5, 6, 7, 2, 2, 8, 2, 9, 10, 2]
