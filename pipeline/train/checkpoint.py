"""Checkpoints: DeepSpeed engine state + client state + per-rank RNG, committed by `latest`.

Layout: RUN/checkpoints/<tag>/ (DeepSpeed's files, `trainer_state.json`, `rng_rank<r>.pt`)
and RUN/checkpoints/latest (the tag of the newest complete checkpoint).

A checkpoint counts only once `latest` names it. DeepSpeed's own `latest` is not safe for
that: rank 0 writes it right after its own files, before the other ranks have finished
theirs, and with a plain open('w') (a kill in between leaves it empty). So DeepSpeed is told
not to write it; after DeepSpeed's closing barrier (every rank's files written), rank 0
fsyncs the tag directory's files and replaces `latest` atomically. A `kill -9` at any moment
leaves `latest` on the previous complete checkpoint; the next start deletes the partial
directory (`discard_incomplete`) and resumes from `latest`.

DeepSpeed does not save the torch RNG; without it dropout differs after a resume, so each
rank saves python/numpy/torch(/cuda) RNG states in its own file.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from pipeline.core.atomic import write_atomically, write_json_atomically

TAG_PATTERN = re.compile(r"^step_(\d{8,})$")
STATE_FILE = "trainer_state.json"


class CheckpointError(RuntimeError):
    pass


def tag_for(step: int) -> str:
    return f"step_{step:08d}"


def step_of(tag: str) -> int | None:
    match = TAG_PATTERN.match(tag)
    return int(match.group(1)) if match else None


def read_latest(ckpt_dir: Path) -> str | None:
    path = Path(ckpt_dir) / "latest"
    if not path.is_file():
        return None
    tag = path.read_text().strip()
    return tag or None


def write_latest(ckpt_dir: Path, tag: str) -> None:
    with write_atomically(Path(ckpt_dir) / "latest", "w") as handle:
        handle.write(tag)


def tag_dirs(ckpt_dir: Path) -> list[Path]:
    dirs = [p for p in Path(ckpt_dir).glob("step_*") if p.is_dir() and step_of(p.name) is not None]
    return sorted(dirs, key=lambda p: step_of(p.name))


def discard_incomplete(ckpt_dir: Path) -> list[str]:
    """Delete tag directories newer than `latest` (left by a save that was killed). Rank 0 only."""
    latest = read_latest(ckpt_dir)
    latest_step = step_of(latest) if latest else -1
    removed = []
    for path in tag_dirs(ckpt_dir):
        if step_of(path.name) > latest_step:
            shutil.rmtree(path)
            removed.append(path.name)
    return removed


def read_state(tag_dir: Path) -> dict:
    path = Path(tag_dir) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{tag_dir}: not a checkpoint of this trainer ({STATE_FILE} missing)")
    return json.loads(path.read_text())


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(engine, ckpt_dir: Path, tag: str, state: dict, rank: int, pause_before_commit_s: float = 0.0) -> None:
    """Collective: every rank calls it. Returns after `latest` names the new checkpoint."""
    tag_dir = Path(ckpt_dir) / tag
    tag_dir.mkdir(parents=True, exist_ok=True)
    with write_atomically(tag_dir / f"rng_rank{rank}.pt", "wb") as handle:
        torch.save(rng_state(), handle)
    if rank == 0:
        write_json_atomically(tag_dir / STATE_FILE, state)
    engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state={"trainer_state": state}, save_latest=False)
    # save_checkpoint ends with a barrier: every rank's files exist now.
    if rank == 0:
        _fsync_tree(tag_dir)
        if pause_before_commit_s:  # testing aid: a window for `kill -9` between files and commit
            print(f"[checkpoint] {tag}: files written, pausing {pause_before_commit_s}s before commit", flush=True)
            import time

            time.sleep(pause_before_commit_s)
        write_latest(ckpt_dir, tag)
    torch.distributed.barrier()


def load(engine, ckpt_dir: Path, tag: str, rank: int) -> dict:
    """Load engine/optimizer/scheduler state and this rank's RNG; returns the trainer state."""
    tag_dir = Path(ckpt_dir) / tag
    rng_file = tag_dir / f"rng_rank{rank}.pt"
    if not rng_file.is_file():
        raise CheckpointError(f"{tag_dir}: no RNG state for rank {rank} ({rng_file.name} missing)")
    path, client = engine.load_checkpoint(
        str(ckpt_dir), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=True
    )
    if path is None:
        raise CheckpointError(f"{tag_dir}: DeepSpeed could not load this checkpoint")
    set_rng_state(torch.load(rng_file, weights_only=False))
    return client["trainer_state"]


def prune(ckpt_dir: Path, keep_last: int, keep: set[str]) -> list[str]:
    """Delete complete checkpoints beyond the newest `keep_last`, sparing tags in `keep`. Rank 0."""
    latest = read_latest(ckpt_dir)
    latest_step = step_of(latest) if latest else -1
    complete = [p for p in tag_dirs(ckpt_dir) if step_of(p.name) <= latest_step]
    removed = []
    for path in complete[:-keep_last] if keep_last > 0 else complete:
        if path.name not in keep and path.name != latest:
            shutil.rmtree(path)
            removed.append(path.name)
    return removed
