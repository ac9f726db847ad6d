import numpy as np
import pytest

from pipeline.train.sampler import ResumableSampler


def consume(num, micro, accum, world, seed, steps, start=0):
    samplers = [ResumableSampler(num, micro, accum, r, world, seed, consumed_samples=start) for r in range(world)]
    stream = []
    for _ in range(steps):
        per_rank = [s.next_step() for s in samplers]
        for k in range(accum):
            for r in range(world):
                stream.extend(per_rank[r][k].tolist())
    return stream, samplers[0].consumed_samples


@pytest.mark.parametrize("num,micro,accum,world", [(50, 4, 2, 2), (48, 4, 3, 2), (7, 2, 1, 3)])
def test_every_block_exactly_once_per_epoch_and_tail_rolls_over(num, micro, accum, world):
    G = micro * accum * world
    steps = (3 * num) // G + 1
    stream, consumed = consume(num, micro, accum, world, seed=5, steps=steps)
    assert consumed == steps * G == len(stream)
    for epoch in range(3):
        chunk = stream[epoch * num : (epoch + 1) * num]
        assert sorted(chunk) == list(range(num))  # a permutation: nothing dropped, nothing twice
    assert stream[:num] != stream[num : 2 * num]  # a new order each epoch


def test_resume_from_consumed_samples_continues_the_stream():
    full, _ = consume(50, 4, 2, 2, seed=1, steps=10)
    head, consumed = consume(50, 4, 2, 2, seed=1, steps=4)
    tail, _ = consume(50, 4, 2, 2, seed=1, steps=6, start=consumed)
    assert head + tail == full


def test_order_follows_consumed_samples_not_world_size():
    two, _ = consume(40, 2, 2, 2, seed=3, steps=5)
    one, _ = consume(40, 4, 2, 1, seed=3, steps=5)  # same global batch on one rank
    assert two == one


def test_bad_resume_position_is_refused():
    with pytest.raises(ValueError, match="global batch"):
        ResumableSampler(10, 2, 1, 0, 2, seed=0, consumed_samples=6)


def test_seek_to_the_end_of_an_epoch_needs_no_replay():
    sampler = ResumableSampler(1000, 4, 1, 0, 1, seed=0, consumed_samples=996)
    first = sampler.next_step()[0]
    np.testing.assert_array_equal(first, sampler.permutation(0, 1000)[996:])
    assert sampler.epoch == 1


@pytest.mark.parametrize("resume_at", [0, 24, 30, 36, 60])  # positions: start, mid-epoch, epoch boundaries
def test_a_grown_corpus_joins_from_the_next_epoch_and_every_epoch_is_exact(resume_at):
    old, new, micro, world = 30, 47, 3, 2  # G = 6; 30 old blocks, 17 appended after them
    before = ResumableSampler(old, micro, 1, 0, world, seed=5)
    stream = []
    while before.consumed_samples < resume_at:
        stream += [i for rank in range(world) for i in _rank_view(before, rank)]
    resumed = [ResumableSampler(old, micro, 1, r, world, seed=5, consumed_samples=resume_at) for r in range(world)]
    firsts = {s.grow(new) for s in resumed}
    # the documented rule, computed here: the epoch in progress keeps the old blocks
    epoch, offset = divmod(resume_at, old)
    expected_first = epoch + (offset > 0)
    assert firsts == {expected_first}
    # a later resume from the saved schedule continues the same stream
    saved = resumed[0].schedule
    for _ in range(30):
        stream += [i for s in resumed for i in s.next_step()[0]]
    again = ResumableSampler(
        new, micro, 1, 0, world, seed=5, consumed_samples=resumed[0].consumed_samples, schedule=saved
    )
    tail = again.samples_at(resumed[0].consumed_samples - 12, 12)
    assert tail.tolist() == stream[-12:]
    sizes = [old] * expected_first + [new] * 20
    position = 0
    for size in sizes:
        if position + size > len(stream):
            break
        assert sorted(stream[position : position + size]) == list(range(size)), f"epoch of {size} blocks"
        position += size
    assert position >= old + new


def _rank_view(sampler: ResumableSampler, rank: int) -> list[int]:
    """One step of `rank` from a sampler built for rank 0 (same stream, another offset)."""
    twin = ResumableSampler(
        sampler.num_samples,
        sampler.micro,
        sampler.accum,
        rank,
        sampler.world,
        sampler.seed,
        sampler.consumed_samples,
        sampler.schedule,
    )
    out = twin.next_step()[0].tolist()
    if rank == sampler.world - 1:
        sampler.next_step()
    return out
