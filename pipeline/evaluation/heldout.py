"""Held-out loss, perplexity and next-token accuracy over packed validation blocks.

Exact aggregation: every rank sums token losses, correct predictions and predicted tokens in
float64; one all-reduce adds them; loss = sum ÷ tokens. (A mean of per-rank means would weight
ranks with fewer blocks wrongly.) Blocks are dealt to ranks round-robin (block i → rank
i mod world). Every rank runs the same number of forward passes — ZeRO-3 gathers parameters
collectively inside forward, so a rank that stops early hangs the others; a rank out of blocks
runs a zero-weight batch instead. Works on a plain Hugging Face model with world_size=1 and
torch.distributed not initialised.

Given `block_sources` (the source of each block, `DataManifest.block_sources`), the same sums
are also kept per source, in the same all-reduce, and reported in `EvalResult.per_source`.
The overall numbers are computed exactly as without it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch

from pipeline.formats.packed_shards import PackedBlocks
from tokenizer.tokenizer_config import SPECIAL_IDS

PAD_ID = SPECIAL_IDS["pad"]  # packed blocks hold no padding today; ignored in labels should that change


@dataclasses.dataclass(frozen=True)
class EvalResult:
    loss: float  # mean cross-entropy per predicted token (nats)
    perplexity: float
    accuracy: float  # share of predicted tokens whose argmax is the next token
    tokens: int  # predicted tokens counted, all ranks
    per_source: dict[str, EvalResult] = dataclasses.field(default_factory=dict)  # with block_sources


def _result(loss_sum: float, correct: float, tokens: float) -> EvalResult:
    loss = loss_sum / tokens
    return EvalResult(loss=loss, perplexity=float(np.exp(loss)), accuracy=correct / tokens, tokens=int(tokens))


def rank_batches(num_blocks: int, micro_batch_size: int, rank: int, world_size: int) -> list[list[int]]:
    """This rank's batches of block indices; every rank gets the same number (some may be empty)."""
    mine = list(range(rank, num_blocks, world_size))
    per_rank = math.ceil(num_blocks / world_size)
    count = math.ceil(per_rank / micro_batch_size)
    return [mine[i * micro_batch_size : (i + 1) * micro_batch_size] for i in range(count)]


def _model_device(model) -> torch.device:
    for param in model.parameters():
        return param.device
    return torch.device("cpu")


@torch.no_grad()
def evaluate_blocks(
    model,
    blocks: PackedBlocks,
    micro_batch_size: int,
    max_blocks: int | None = None,
    device=None,
    rank: int = 0,
    world_size: int = 1,
    block_sources: Sequence[str] | None = None,
) -> EvalResult:
    """Evaluate `model` (HF causal LM or DeepSpeed engine) on the first `max_blocks` blocks;
    per source too when `block_sources` names the source of every block."""
    num_blocks = len(blocks) if max_blocks is None else min(len(blocks), max_blocks)
    if num_blocks == 0:
        raise ValueError("evaluate_blocks: no validation blocks to evaluate")
    device = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, tokens
    names = sorted(set(block_sources[:num_blocks])) if block_sources is not None else []
    source_index = {name: i for i, name in enumerate(names)}
    by_source = torch.zeros(len(names), 3, dtype=torch.float64, device=device)
    try:
        for batch in rank_batches(num_blocks, micro_batch_size, rank, world_size):
            weight = 1.0 if batch else 0.0
            ids = torch.from_numpy(blocks.gather(batch or [0])).to(device)
            logits = model(input_ids=ids).logits[:, :-1].float()
            labels = ids[:, 1:]
            valid = labels != PAD_ID
            losses = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), labels.reshape(-1), reduction="none"
            ).view_as(labels)
            correct = (logits.argmax(dim=-1) == labels) & valid
            totals[0] += weight * losses[valid].double().sum()
            totals[1] += weight * correct.sum().double()
            totals[2] += weight * valid.sum().double()
            if names and batch:
                rows = torch.tensor([source_index[block_sources[i]] for i in batch], device=device)
                per_block = torch.stack(
                    [
                        (losses.double() * valid).sum(dim=1),
                        correct.sum(dim=1).double(),
                        valid.sum(dim=1).double(),
                    ],
                    dim=1,
                )
                by_source.index_add_(0, rows, per_block)
    finally:
        model.train(was_training)
    if world_size > 1:
        torch.distributed.all_reduce(totals)
        if names:
            torch.distributed.all_reduce(by_source)
    overall = _result(*totals.tolist())
    if not names:
        return overall
    per_source = {name: _result(*by_source[i].tolist()) for name, i in source_index.items() if by_source[i, 2] > 0}
    return dataclasses.replace(overall, per_source=per_source)
