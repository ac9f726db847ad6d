import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from pipeline.evaluation.heldout import evaluate_blocks, rank_batches
from pipeline.formats.packed_shards import PackedBlocks
from tests.helpers.train_fixtures import make_packed_data, tiny_hf_model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_packed_data(tmp_path_factory.mktemp("data"), train_blocks=8, val_blocks=37)


def test_rank_batches_cover_every_block_once_with_equal_counts():
    for n, mbs, world in [(37, 4, 2), (5, 4, 3), (1, 2, 4), (64, 8, 2)]:
        per_rank = [rank_batches(n, mbs, r, world) for r in range(world)]
        assert len({len(b) for b in per_rank}) == 1  # same forward passes on every rank
        flat = sorted(i for batches in per_rank for b in batches for i in b)
        assert flat == list(range(n))


def reference(model, blocks, max_blocks):
    """Straightforward per-block evaluation, independent of the batching under test."""
    loss_sum = correct = tokens = 0.0
    model.eval()
    with torch.no_grad():
        for i in range(max_blocks):
            ids = torch.from_numpy(blocks.gather([i]))
            logits = model(input_ids=ids).logits[0, :-1].double()
            labels = ids[0, 1:]
            loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(-1) == labels).sum().item()
            tokens += labels.numel()
    return loss_sum / tokens, correct / tokens, tokens


def test_single_process_matches_reference_and_cap(data):
    blocks = PackedBlocks(data.shard_paths("validation"))
    model = tiny_hf_model()
    result = evaluate_blocks(model, blocks, micro_batch_size=5, max_blocks=23)
    loss, acc, tokens = reference(model, blocks, 23)
    assert result.tokens == tokens == 23 * 63
    assert result.loss == pytest.approx(loss, rel=1e-5)
    assert result.accuracy == pytest.approx(acc, abs=1e-9)
    assert result.perplexity == pytest.approx(math.exp(loss), rel=1e-5)
    assert model.training is False  # from_config models start in eval mode; state is restored
    model.train()
    evaluate_blocks(model, blocks, micro_batch_size=8)
    assert model.training is True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, data_dir, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    from pipeline.formats.manifest import load_manifest

    blocks = PackedBlocks(load_manifest(data_dir).shard_paths("validation"))
    labels = [f"s{i % 3}" for i in range(len(blocks))]
    result = evaluate_blocks(
        tiny_hf_model(), blocks, micro_batch_size=4, rank=rank, world_size=world, block_sources=labels
    )
    per_source = {name: (r.loss, r.tokens) for name, r in result.per_source.items()}
    out[rank] = (result.loss, result.accuracy, result.tokens, per_source)
    torch.distributed.destroy_process_group()


def test_two_ranks_equal_one_rank_with_uneven_split(data):
    """37 blocks over 2 ranks: 19 + 18 blocks, so a mean of per-rank means would differ."""
    blocks = PackedBlocks(data.shard_paths("validation"))
    labels = [f"s{i % 3}" for i in range(len(blocks))]
    single = evaluate_blocks(tiny_hf_model(), blocks, micro_batch_size=4, block_sources=labels)
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(2, _free_port(), str(data.root), out), nprocs=2, join=True)
    for rank in range(2):
        loss, acc, tokens, per_source = out[rank]  # per-source sums are all-reduced too
        assert sorted(per_source) == ["s0", "s1", "s2"]
        for name, (source_loss, source_tokens) in per_source.items():
            assert source_tokens == single.per_source[name].tokens
            assert source_loss == pytest.approx(single.per_source[name].loss, rel=1e-6)
        assert tokens == single.tokens == 37 * 63
        assert loss == pytest.approx(single.loss, rel=1e-6)
        assert acc == pytest.approx(single.accuracy, abs=1e-12)
    assert np.isfinite(single.loss)


class Subset:
    """Blocks `chosen` of `blocks`, renumbered from 0."""

    def __init__(self, blocks, chosen):
        self.blocks, self.chosen = blocks, chosen

    def gather(self, indices):
        return self.blocks.gather([self.chosen[i] for i in indices])


def test_per_source_results_match_a_reference_on_each_sources_blocks(data):
    """Blocks labelled with sources (as `DataManifest.block_sources` gives them): each source's
    numbers equal the straightforward evaluation of that source's blocks alone; the overall
    numbers are unchanged by the labels."""
    blocks = PackedBlocks(data.shard_paths("validation"))
    model = tiny_hf_model()
    labels = ["news" if i % 3 == 0 else "forum" for i in range(len(blocks))]  # interleaved across batches
    result = evaluate_blocks(model, blocks, micro_batch_size=4, max_blocks=23, block_sources=labels)
    plain = evaluate_blocks(model, blocks, micro_batch_size=4, max_blocks=23)
    assert (result.loss, result.accuracy, result.tokens) == (plain.loss, plain.accuracy, plain.tokens)
    assert sorted(result.per_source) == ["forum", "news"]
    for name, scored in result.per_source.items():
        chosen = [i for i in range(23) if labels[i] == name]

        loss, acc, tokens = reference(model, Subset(blocks, chosen), len(chosen))
        assert scored.tokens == tokens == len(chosen) * 63
        assert scored.loss == pytest.approx(loss, rel=1e-5) and scored.accuracy == pytest.approx(acc, abs=1e-9)
