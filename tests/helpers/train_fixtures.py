"""Small prepared-data directories and model configs for the training tests.

The token stream is learnable: documents come from a sparse random Markov chain (each token
has three likely successors), so a tiny model's loss really falls from ln(vocab) towards
ln(3). Written with the real ShardWriter and manifest, as `python -m pipeline prepare` does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pipeline.formats.manifest import write_manifest
from pipeline.formats.packed_shards import ShardWriter, token_dtype

SPECIAL = {"unk": 0, "bos": 1, "eos": 2, "pad": 3}
REPO = Path(__file__).resolve().parents[2]


def markov_stream(num_tokens: int, vocab_size: int, seed: int) -> np.ndarray:
    """Documents of 20–80 tokens from a fixed sparse Markov chain, each ended by EOS."""
    rng = np.random.default_rng(seed)
    chain = np.random.default_rng(1234)  # the grammar is the same for train and validation
    first = 4
    successors = chain.integers(first, vocab_size, size=(vocab_size, 3))
    out = np.empty(num_tokens + 100, dtype=np.int64)
    pos = 0
    while pos < num_tokens:
        length = int(rng.integers(20, 80))
        token = int(rng.integers(first, vocab_size))
        for _ in range(length):
            out[pos] = token
            pos += 1
            token = int(successors[token, rng.choice(3, p=[0.7, 0.2, 0.1])])
        out[pos] = SPECIAL["eos"]
        pos += 1
    return out[:num_tokens]


def write_split(root: Path, split: str, blocks: np.ndarray, vocab_size: int, shards: int) -> list[dict]:
    entries = []
    for index, part in enumerate(np.array_split(blocks, shards)):
        rel = f"{split}/{split}-{index:05d}.arrow"
        with ShardWriter(root / rel, blocks.shape[1], token_dtype(vocab_size)) as writer:
            writer.write_blocks(part)
        digest = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        entries.append({"path": rel, "blocks": int(len(part)), "tokens": int(part.size), "sha256": digest})
    return entries


def make_packed_data(
    root: Path,
    train_blocks: int = 256,
    val_blocks: int = 37,
    block_size: int = 64,
    vocab_size: int = 96,
    seed: int = 0,
    tokenizer_tag: str = "dummy",
):
    """A prepared-data directory (manifest, tokenizer dir, train/validation shards)."""
    root = Path(root)
    tok_dir = root / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    (tok_dir / "README.txt").write_text(f"dummy tokenizer {tokenizer_tag} (tests only)\n")
    stream = markov_stream((train_blocks + val_blocks) * block_size, vocab_size, seed)
    all_blocks = stream.reshape(-1, block_size)
    raw = {
        "block_size": block_size,
        "dtype": str(token_dtype(vocab_size)),
        "vocab_size": vocab_size,
        "special_ids": dict(SPECIAL),
        "tokenizer": {"path": "tokenizer", "fingerprint": hashlib.sha256(tokenizer_tag.encode()).hexdigest()},
        "splits": {
            "train": {"shards": write_split(root, "train", all_blocks[:train_blocks], vocab_size, 2)},
            "validation": {"shards": write_split(root, "validation", all_blocks[train_blocks:], vocab_size, 1)},
        },
    }
    return write_manifest(root, raw)


TINY_MODEL = {
    "architecture": "gpt2",
    "hf_config": {
        "n_layer": 2,
        "n_embd": 32,
        "n_head": 2,
        "n_positions": 64,
        "resid_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "attn_pdrop": 0.1,
    },
    "activation_checkpointing": False,
}


def write_yaml(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_hf_model(vocab_size: int = 96, block_size: int = 64, seed: int = 0):
    import torch
    from transformers import AutoModelForCausalLM

    from pipeline.core.typed_config import from_dict
    from pipeline.model.model_config import ModelConfig, build_hf_config

    torch.manual_seed(seed)
    config = build_hf_config(from_dict(ModelConfig, TINY_MODEL), vocab_size, block_size)
    return AutoModelForCausalLM.from_config(config)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_run_configs(directory: Path, **train_overrides) -> Path:
    """A tiny model config + train config for 2-rank CPU tests; returns the train YAML path."""
    directory.mkdir(parents=True, exist_ok=True)
    model = write_yaml(directory / "model.yaml", TINY_MODEL)
    train = {
        "model_config": str(model),
        "deepspeed_config": str(REPO / "configs/deepspeed/zero2.json"),
        "seed": 7,
        "micro_batch_size": 4,
        "grad_accum_steps": 2,
        "max_steps": 12,
        "lr": 3.0e-3,
        "min_lr": 3.0e-4,
        "warmup_steps": 3,
        "precision": "fp32",
        "eval_interval": 6,
        "eval_max_blocks": 32,
        "checkpoint_interval_steps": 100,
        "log_interval": 1,
        "tensorboard": False,
        "audit_samples": True,
        **train_overrides,
    }
    return write_yaml(directory / "train.yaml", train)


LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def train_env(**hooks: str) -> dict:
    """The launch environment; `hooks`: test hooks (pipeline/train/hooks.py), e.g.
    ZH_PRETRAIN_TEST_SIGNAL_AT_STEP="5"."""
    import os

    # a launch defines its own ranks: variables the test process inherited (or a test leaked)
    # would make a single-process `pipeline train` wait for ranks that never come
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES}
    env.update(hooks)
    env.update(
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def train_command(
    config: Path,
    data: Path,
    run: Path,
    *extra: str,
    nproc: int = 2,
    launcher: str = "torchrun",
    deepspeed_config: str | None = None,
) -> list[str]:
    import sys

    bin_dir = Path(sys.executable).parent
    script = str(REPO / "launch/pretrain.py")
    if launcher == "deepspeed":
        head = [str(bin_dir / "deepspeed"), "--num_gpus", str(nproc), "--master_port", str(free_port()), script]
    else:
        head = [
            str(bin_dir / "torchrun"),
            "--nproc_per_node",
            str(nproc),
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            script,
        ]
    args = ["--config", str(config), "--data", str(data), "--output", str(run)]
    if deepspeed_config:
        args += ["--deepspeed", str(REPO / deepspeed_config)]
    return head + args + list(extra)


def run_training(*args, timeout: float = 240, hooks: dict | None = None, **kwargs):
    """Run a training launch to completion; returns CompletedProcess (stdout+stderr merged)."""
    import subprocess

    return subprocess.run(
        train_command(*args, **kwargs),
        env=train_env(**(hooks or {})),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def audit_steps(run: Path, world: int = 2) -> dict[int, dict]:
    """step → {"stream": sample ids in stream order, "losses": per-rank per-micro loss hex}; the
    strict reader: a step logged twice by a rank or a gap fails (pipeline.train.audit)."""
    from pipeline.train.audit import read_audit

    return read_audit(Path(run), world)


def live_ranks(pid: int) -> list:
    """The trainer ranks (`pretrain.py` processes) under launcher `pid` that still run. A rank
    that died but is not reaped yet is a zombie: psutil cannot read its command line, and it is
    not running, so it is left out rather than raising."""
    import psutil

    def is_live_rank(process) -> bool:
        try:
            return process.status() != psutil.STATUS_ZOMBIE and "pretrain.py" in " ".join(process.cmdline())
        except psutil.Error:  # it exited (or became a zombie) since children() listed it
            return False

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if is_live_rank(p)]


def kill_tree(pid: int) -> None:
    """SIGKILL a launcher and every process under it at once. Not `killpg`: torchrun starts each
    rank in a session of its own, so a signal to the launcher's process group misses the ranks
    (they would run on as orphans)."""
    import os
    import signal

    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
