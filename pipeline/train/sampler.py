"""Training data order: a resumable, deterministic sampler over memory-mapped packed blocks.

The sample stream is the concatenation of per-epoch permutations: stream position p is
block `perm(epoch = p // N)[p % N]`, where perm(e) is a permutation of the N training blocks
drawn from (seed, e). Global batch b is stream positions [b·G, (b+1)·G), G = micro × accum ×
world. Tail rule: when N is not a multiple of G, the last global batch of an epoch is filled
with the first samples of the next epoch's permutation — nothing is dropped or repeated, and
every block is used exactly once per epoch (the epoch a sample belongs to is that of its stream
position). Inside a global batch, micro-step k gives rank r the positions
b·G + k·(micro·world) + r·micro … + micro.

Resuming needs only `consumed_samples` (= b·G): the position is computed, never replayed
(the permutation of the current epoch is drawn once, cached, O(N) per epoch). The data order
depends on (seed, consumed samples), not on the world size.

A corpus that grows (`prepare --append`) keeps its earlier blocks as a prefix of the block
numbering. The epoch in progress when a run resumes on the grown corpus finishes over the N
blocks it started with; from the next epoch on, each epoch is a permutation of all N' blocks
(drawn from (seed, epoch) as always). `schedule` records this: [(first epoch, blocks), …],
saved in every checkpoint, so the stream stays a function of (seed, schedule, consumed samples).
"""

from __future__ import annotations

import numpy as np

from pipeline.formats.packed_shards import PackedBlocks


class ResumableSampler:
    def __init__(
        self,
        num_samples: int,
        micro_batch_size: int,
        grad_accum_steps: int,
        rank: int,
        world_size: int,
        seed: int,
        consumed_samples: int = 0,
        schedule: list[tuple[int, int]] | None = None,
    ):
        if num_samples <= 0:
            raise ValueError("ResumableSampler: the training split has no blocks")
        self.schedule = [(int(e), int(n)) for e, n in schedule] if schedule else [(0, num_samples)]
        if self.schedule[0][0] != 0 or any(n <= 0 or n > num_samples for _, n in self.schedule):
            raise ValueError(f"ResumableSampler: bad epoch schedule {self.schedule} for {num_samples} blocks")
        self.num_samples = num_samples  # blocks in the corpus now (the epochs of `schedule` may use fewer)
        self.micro = micro_batch_size
        self.accum = grad_accum_steps
        self.rank = rank
        self.world = world_size
        self.seed = seed
        self.global_batch = micro_batch_size * grad_accum_steps * world_size
        if consumed_samples % self.global_batch:
            raise ValueError(
                f"consumed_samples={consumed_samples} is not a multiple of the global batch "
                f"{self.global_batch}: the checkpoint was written with another batch layout"
            )
        self.consumed_samples = consumed_samples
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    def permutation(self, epoch: int, size: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._perm = rng.permutation(size)
            self._perm_epoch = epoch
        return self._perm

    def locate(self, position: int) -> tuple[int, int, int]:
        """(epoch, offset in it, blocks in it) of stream position `position`."""
        start = 0
        for index, (first_epoch, size) in enumerate(self.schedule):
            last = index + 1 == len(self.schedule)
            span = None if last else (self.schedule[index + 1][0] - first_epoch) * size
            if last or position < start + span:
                epochs, offset = divmod(position - start, size)
                return first_epoch + epochs, offset, size
            start += span
        raise AssertionError("unreachable: the last segment is open-ended")

    @property
    def epoch(self) -> int:
        """The epoch of the next sample to be consumed."""
        return self.locate(self.consumed_samples)[0]

    def grow(self, num_samples: int) -> int:
        """The corpus now has `num_samples` blocks (the old ones first): every epoch from the
        next one to start uses them all. Returns that epoch."""
        epoch, offset, size = self.locate(self.consumed_samples)
        first = epoch + (offset > 0)
        if self.schedule[-1][0] == first:
            self.schedule[-1] = (first, num_samples)
        elif self.schedule[-1][1] != num_samples:
            self.schedule.append((first, num_samples))
        self.num_samples = num_samples
        self._perm_epoch = -1
        return first

    def samples_at(self, start: int, count: int) -> np.ndarray:
        """Block indices of stream positions [start, start + count)."""
        out = np.empty(count, dtype=np.int64)
        filled = 0
        while filled < count:
            epoch, offset, size = self.locate(start + filled)
            take = min(count - filled, size - offset)
            out[filled : filled + take] = self.permutation(epoch, size)[offset : offset + take]
            filled += take
        return out

    def next_step(self) -> list[np.ndarray]:
        """This rank's micro-batches (block indices) for the next optimizer step; advances."""
        base = self.consumed_samples
        span = self.micro * self.world
        batches = [self.samples_at(base + k * span + self.rank * self.micro, self.micro) for k in range(self.accum)]
        self.consumed_samples += self.global_batch
        return batches


def batch_tensor(blocks: PackedBlocks, indices: np.ndarray):
    """(micro, block) int64 tensor of the blocks at `indices` (one copy out of the mmap)."""
    import torch

    return torch.from_numpy(blocks.gather(indices))
