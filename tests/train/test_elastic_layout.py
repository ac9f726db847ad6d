"""The batch layout of a resume on another world size, and the RNG re-seed of its ranks."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.train.checkpoint import CheckpointError, reseed_rng
from pipeline.train.run_setup import batch_layout, possible_world_sizes, resume_layout
from pipeline.train.train_config import TrainConfig

WHERE = Path("RUN/checkpoints/step_00000006")


def state(world, global_batch):
    return {"world_size": world, "global_batch": global_batch}


@pytest.mark.parametrize(
    "global_batch,world,micro,expected",
    [
        (12, 2, 2, (2, 3)),  # the configured layout
        (12, 1, 2, (2, 6)),  # fewer ranks: more accumulation, the same micro batch
        (12, 3, 2, (2, 2)),
        (12, 4, 2, (1, 3)),  # 3 samples a rank: micro 2 does not divide it, 1 does
        (16, 8, 4, (2, 1)),  # 2 samples a rank: the micro batch shrinks, never grows
        (512, 4, 32, (32, 4)),  # zh-3b1's 32 × 2 × 8 on half the GPUs
    ],
)
def test_the_global_batch_is_kept_with_the_configured_micro_batch_when_it_fits(global_batch, world, micro, expected):
    assert batch_layout(global_batch, world, micro) == expected
    got_micro, accum = expected
    assert got_micro * accum * world == global_batch


def test_another_world_size_derives_grad_accum_from_the_configured_micro_batch():
    cfg = TrainConfig(micro_batch_size=2, grad_accum_steps=3, max_steps=12)
    assert resume_layout(state(2, 12), cfg, 1, WHERE) == (2, 6)
    assert resume_layout(state(2, 12), cfg, 3, WHERE) == (2, 2)
    assert resume_layout(state(3, 12), cfg, 2, WHERE) == (2, 3)


def test_a_world_size_that_cannot_keep_the_global_batch_is_refused_naming_the_possible_ones():
    cfg = TrainConfig(micro_batch_size=4, grad_accum_steps=2, max_steps=12)
    with pytest.raises(CheckpointError) as refused:
        resume_layout(state(2, 16), cfg, 3, WHERE)
    message = str(refused.value)
    assert str(WHERE) in message and "16 is not a multiple of 3" in message
    assert "model shape, the data manifest, the global batch" in message
    assert "Possible world sizes for this run: [1, 2, 4, 8, 16]" in message
    assert possible_world_sizes(12) == [1, 2, 3, 4, 6, 12]


def test_the_same_world_size_with_another_global_batch_is_refused():
    cfg = TrainConfig(micro_batch_size=4, grad_accum_steps=4, max_steps=12)  # 32 on 2 ranks
    with pytest.raises(CheckpointError, match="global batch 16 .* this config gives 32 .* cannot change on resume"):
        resume_layout(state(2, 16), cfg, 2, WHERE)
    assert resume_layout(state(2, 32), cfg, 2, WHERE) == (4, 4)


def draws():
    return random.random(), float(np.random.random()), torch.rand(3).tolist()


def test_reseed_is_a_function_of_seed_step_and_rank():
    reseed_rng(7, 6, 1)
    first = draws()
    random.seed(0), np.random.seed(0), torch.manual_seed(0)  # whatever ran before does not matter
    reseed_rng(7, 6, 1)
    assert draws() == first
    others = []
    for seed, step, rank in ((7, 6, 0), (7, 6, 2), (7, 9, 1), (8, 6, 1)):
        reseed_rng(seed, step, rank)
        others.append(draws())
    assert all(other[i] != first[i] for other in others for i in range(3)), "every RNG differs per rank/step/seed"
