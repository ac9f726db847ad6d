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
    ):
        if num_samples <= 0:
            raise ValueError("ResumableSampler: the training split has no blocks")
        self.num_samples = num_samples
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

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._perm = rng.permutation(self.num_samples)
            self._perm_epoch = epoch
        return self._perm

    @property
    def epoch(self) -> int:
        """The epoch of the next sample to be consumed."""
        return self.consumed_samples // self.num_samples

    def samples_at(self, start: int, count: int) -> np.ndarray:
        """Block indices of stream positions [start, start + count)."""
        out = np.empty(count, dtype=np.int64)
        filled = 0
        while filled < count:
            position = start + filled
            epoch, offset = divmod(position, self.num_samples)
            take = min(count - filled, self.num_samples - offset)
            out[filled : filled + take] = self.permutation(epoch)[offset : offset + take]
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
