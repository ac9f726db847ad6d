"""Training throughput benchmark (not a test): loader, trainer overhead, data wait.

    python benchmarks/bench_train.py [--steps 60] [--nproc 2]

(a) loader: tokens/s of sampler + gather out of memory-mapped shards in one process, and the
    time to seek to a resume position at the start vs the end of an epoch (a fresh sampler at
    that position, up to its first batch: includes drawing the epoch's permutation).
(b) trainer vs bare DeepSpeed: the same model, batch and DeepSpeed config, 2 ranks; wall time
    per step from the trainer's metrics (all overheads: sampler, stop vote, logging) vs a loop
    that only does forward/backward/step on a fixed batch.
(c) data-wait share of the trainer's step time (from its metrics).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODEL = {"architecture": "gpt2", "hf_config": {"n_layer": 2, "n_embd": 128, "n_head": 4, "n_positions": 256}}
BLOCK = 256
MICRO = 8
VOCAB = 4096  # trainer part: a small vocabulary keeps the CPU step short (the output matmul dominates)


def make_data(root: Path, train_blocks: int, block_size: int, vocab: int = 32000):
    import hashlib

    import numpy as np

    from pipeline.formats.manifest import write_manifest
    from pipeline.formats.packed_shards import ShardWriter, token_dtype

    rng = np.random.default_rng(0)
    (root / "tokenizer").mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, blocks in (("train", train_blocks), ("validation", 64)):
        entries = []
        for index in range(4 if split == "train" else 1):
            rel = f"{split}/{split}-{index:05d}.arrow"
            data = rng.integers(4, vocab, size=(blocks // (4 if split == "train" else 1), block_size))
            with ShardWriter(root / rel, block_size, token_dtype(vocab)) as writer:
                writer.write_blocks(data)
            entries.append(
                {
                    "path": rel,
                    "blocks": len(data),
                    "tokens": int(data.size),
                    "sha256": hashlib.sha256((root / rel).read_bytes()).hexdigest(),
                }
            )
        splits[split] = {"shards": entries}
    return write_manifest(
        root,
        {
            "block_size": block_size,
            "dtype": str(token_dtype(vocab)),
            "vocab_size": vocab,
            "special_ids": {"unk": 0, "bos": 1, "eos": 2, "pad": 3},
            "tokenizer": {"path": "tokenizer", "fingerprint": "bench"},
            "splits": splits,
        },
    )


def bench_loader(manifest) -> dict:
    from pipeline.formats.packed_shards import PackedBlocks
    from pipeline.train.sampler import ResumableSampler, batch_tensor

    blocks = PackedBlocks(manifest.shard_paths("train"))
    n = len(blocks)
    sampler = ResumableSampler(n, micro_batch_size=MICRO, grad_accum_steps=1, rank=0, world_size=1, seed=0)
    rates = []
    for _epoch in range(3):  # the first pass touches every mapped page once; later passes are warm
        steps = 0
        started = time.perf_counter()
        for _ in range(n // MICRO):
            for indices in sampler.next_step():
                batch_tensor(blocks, indices)
            steps += 1
        rates.append(steps * MICRO * blocks.block_size / (time.perf_counter() - started))
    seek = {}
    for name, position in (("start", 0), ("end", (n // MICRO - 1) * MICRO)):
        t0 = time.perf_counter()
        fresh = ResumableSampler(n, MICRO, 1, 0, 1, seed=0, consumed_samples=position)
        batch_tensor(blocks, fresh.next_step()[0])
        seek[f"seek_ms_{name}_of_epoch"] = 1000 * (time.perf_counter() - t0)
        t0 = time.perf_counter()
        fresh.consumed_samples = position  # permutation cached: the O(1) part alone
        batch_tensor(blocks, fresh.next_step()[0])
        seek[f"seek_ms_{name}_of_epoch_cached_permutation"] = 1000 * (time.perf_counter() - t0)
    return {
        "loader_blocks": n,
        "loader_micro_batch": MICRO,
        "loader_tokens_per_s_first_pass": rates[0],
        "loader_tokens_per_s_warm": max(rates[1:]),
        **seek,
    }


def bare_loop(args) -> None:
    """Runs under torchrun: DeepSpeed forward/backward/step on a fixed batch, wall time per step."""
    import deepspeed
    import torch

    from pipeline.core.typed_config import from_dict
    from pipeline.model.build import build_model
    from pipeline.model.model_config import ModelConfig, build_hf_config
    from pipeline.train import distributed
    from pipeline.train.optim import WarmupCosineSchedule, param_groups
    from pipeline.train.train_config import TrainConfig
    from pipeline.train.trainer import deepspeed_config

    dist = distributed.detect()
    device = distributed.init(dist)
    cfg = from_dict(TrainConfig, {"max_steps": args.steps, "micro_batch_size": MICRO})
    model = build_model(build_hf_config(from_dict(ModelConfig, MODEL), VOCAB, BLOCK), False, seed=0)
    engine, *_ = deepspeed.initialize(
        model=model,
        model_parameters=param_groups(model, 0.1),
        config=deepspeed_config(REPO / "configs/deepspeed/zero2.json", cfg, "fp32"),
        lr_scheduler=lambda opt: WarmupCosineSchedule(opt, cfg.lr, cfg.min_lr, 10, args.steps),
    )
    ids = torch.randint(4, VOCAB, (MICRO, BLOCK), generator=torch.Generator().manual_seed(dist.rank)).to(device)
    stamps = []
    for _ in range(args.steps):
        loss = engine(input_ids=ids, labels=ids).loss
        engine.backward(loss)
        engine.step()
        if (len(stamps) + 1) % 10 == 0:
            loss.item()
        stamps.append(time.perf_counter())
    if dist.is_main:
        Path(args.bare_out).write_text(json.dumps(stamps))
    distributed.shutdown()


def per_step_walls(stamps: list[float], every: int) -> list[float]:
    return [(b - a) / every for a, b in zip(stamps, stamps[1:])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        return bare_loop(args)

    import yaml

    env = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    torchrun = [
        str(Path(sys.executable).parent / "torchrun"),
        "--nproc_per_node",
        str(args.nproc),
        "--master_addr",
        "127.0.0.1",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = make_data(tmp / "data", train_blocks=20_000, block_size=512)
        result = bench_loader(manifest)
        small = make_data(tmp / "small", train_blocks=4096, block_size=BLOCK, vocab=VOCAB)
        (tmp / "model.yaml").write_text(yaml.safe_dump(MODEL))
        (tmp / "train.yaml").write_text(
            yaml.safe_dump(
                {
                    "model_config": str(tmp / "model.yaml"),
                    "deepspeed_config": str(REPO / "configs/deepspeed/zero2.json"),
                    "micro_batch_size": MICRO,
                    "max_steps": args.steps,
                    "warmup_steps": 10,
                    "precision": "fp32",
                    "eval_interval": 10**6,
                    "checkpoint_interval_steps": 10**6,
                    "log_interval": 10,
                    "tensorboard": False,
                }
            )
        )
        trainer_steps, bare_steps, waits = [], [], []
        for rep in range(args.repeats):  # alternate the two so that machine load hits both alike
            bare_out = tmp / f"bare{rep}.json"
            subprocess.run(
                torchrun
                + [
                    "--master_port",
                    str(29631 + 2 * rep),
                    __file__,
                    "--bare",
                    "--steps",
                    str(args.steps),
                    "--bare-out",
                    str(bare_out),
                ],
                check=True,
                env=env,
                capture_output=True,
            )
            run = tmp / f"run{rep}"
            subprocess.run(
                torchrun
                + [
                    "--master_port",
                    str(29632 + 2 * rep),
                    str(REPO / "launch/pretrain.py"),
                    "--config",
                    str(tmp / "train.yaml"),
                    "--data",
                    str(small.root),
                    "--output",
                    str(run),
                ],
                check=True,
                env=env,
                capture_output=True,
            )
            records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            train = [r for r in records if r["kind"] == "train"]
            # skip the first window (start-up, allocator warm-up) on both sides
            trainer_steps.append(statistics.median(per_step_walls([r["time"] for r in train], 10)[1:]))
            bare_steps.append(statistics.median(per_step_walls(json.loads(bare_out.read_text())[9::10], 10)[1:]))
            waits.append(statistics.median(r["data_wait_share"] for r in train[1:]))
        trainer_step, bare_step = min(trainer_steps), min(bare_steps)
        result.update(
            {
                "model": MODEL["hf_config"],
                "vocab": VOCAB,
                "block_size": BLOCK,
                "micro_batch_size": MICRO,
                "ranks": args.nproc,
                "trainer_step_s": trainer_step,
                "bare_deepspeed_step_s": bare_step,
                "trainer_over_bare": trainer_step / bare_step,
                "trainer_step_s_all": trainer_steps,
                "bare_deepspeed_step_s_all": bare_steps,
                "data_wait_share": statistics.median(waits),
            }
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
