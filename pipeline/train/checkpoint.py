"""Checkpoints: DeepSpeed engine state + trainer state + per-rank RNG, each tag committed by its
own record, immutable once committed.

Layout of RUN/checkpoints/:
  <tag>/                 DeepSpeed's files, trainer_state.json, rng_rank<r>.pt, and COMMITTED
  <tag>/COMMITTED        the commit record: JSON with every file of the tag and its size. Written
                         last, after every rank has fsynced its own files; then fsynced with the
                         tag directory and the checkpoints directory. A tag counts only with it.
  latest                 the newest committed tag — a convenience for people and tools; never the
                         only truth (a missing, empty or garbage `latest` loses nothing)
  .incomplete/<tag>[.N]  tags without a valid record (an interrupted save, a damaged copy), moved
                         aside at start-up — never deleted: it might be the only copy of something
  universal/<tag>/       DeepSpeed's universal form of <tag>, written on a resume on another world
                         size (universal.py), with its own COMMITTED record; pruned with <tag>

Rules: a committed tag is never rewritten (saving onto one raises); resuming from an older tag
while newer committed tags exist is refused (`resume_choice`), so later steps can never overwrite
them. Loading uses `torch.load(weights_only=True)` — our RNG files hold tensors and plain types
only; DeepSpeed's own files load through checkpoint_engine.SafeCheckpointEngine with an explicit
allowlist.

DeepSpeed does not save the torch RNG; without it dropout differs after a resume, so each rank
saves python/numpy/torch(/cuda) RNG states in its own file.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.core.atomic import write_atomically, write_json_atomically

TAG_PATTERN = re.compile(r"^step_(\d{8,})$")
STATE_FILE = "trainer_state.json"
COMMIT_FILE = "COMMITTED"
INCOMPLETE_DIR = ".incomplete"
UNIVERSAL_DIR = "universal"  # converted copies for a resume on another world size (universal.py)


class CheckpointError(RuntimeError):
    pass


def tag_for(step: int) -> str:
    return f"step_{step:08d}"


def step_of(tag: str) -> int | None:
    match = TAG_PATTERN.match(tag)
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------- durability


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's fsync makes renames/creations in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- reading the state


def read_latest(ckpt_dir: Path) -> str | None:
    """The tag `latest` names, if it names a committed tag of `ckpt_dir`; else the newest
    committed tag (`latest` is a convenience: missing, empty, garbage or stale changes nothing)."""
    path = Path(ckpt_dir) / "latest"
    try:
        tag = path.read_text(errors="replace").strip() if path.is_file() else ""
    except OSError:
        tag = ""
    if tag and step_of(tag) is not None and commit_problem(Path(ckpt_dir) / tag) is None:
        return tag
    committed = committed_tags(ckpt_dir)
    return committed[-1] if committed else None


def write_latest(ckpt_dir: Path, tag: str) -> None:
    with write_atomically(Path(ckpt_dir) / "latest", "w") as handle:
        handle.write(tag)
    fsync_path(Path(ckpt_dir))


def tag_dirs(ckpt_dir: Path) -> list[Path]:
    dirs = [p for p in Path(ckpt_dir).glob("step_*") if p.is_dir() and step_of(p.name) is not None]
    return sorted(dirs, key=lambda p: step_of(p.name))


def read_commit(tag_dir: Path) -> dict | None:
    try:
        record = json.loads((Path(tag_dir) / COMMIT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("files"), dict) else None


def commit_problem(tag_dir: Path) -> str | None:
    """None when `tag_dir` is committed and every file its record lists has the recorded size;
    else what is wrong (for the message that moves it aside)."""
    tag_dir = Path(tag_dir)
    record = read_commit(tag_dir)
    if record is None:
        return f"no valid {COMMIT_FILE} record (a save that did not finish)"
    if record.get("tag") != tag_dir.name:
        return f"{COMMIT_FILE} names tag {record.get('tag')!r} (the folder was renamed or copied over)"
    for name, size in record["files"].items():
        path = tag_dir / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, the record says {size} (truncated or damaged)"
    return None


def committed_tags(ckpt_dir: Path) -> list[str]:
    """Tags with a valid commit record, oldest first."""
    return [p.name for p in tag_dirs(ckpt_dir) if commit_problem(p) is None]


def move_aside(ckpt_dir: Path, folder: Path, name: str | None = None) -> Path:
    """Move a folder to checkpoints/.incomplete/ as `name` (default: its own name), under a free
    name (`name.N`); returns where it went."""
    parking = Path(ckpt_dir) / INCOMPLETE_DIR
    parking.mkdir(exist_ok=True)
    name = name or folder.name
    target = parking / name
    n = 0
    while target.exists():
        n += 1
        target = parking / f"{name}.{n}"
    os.replace(folder, target)
    fsync_path(parking)
    fsync_path(Path(ckpt_dir))
    return target


def write_commit(folder: Path, tag: str, files: dict[str, int], **extra) -> None:
    """The commit record, written last: {tag, step, files: {name: size}, time, **extra}, atomically,
    then the folder fsynced. The caller has fsynced every listed file."""
    record = {"tag": tag, "step": step_of(tag), "files": dict(sorted(files.items())), **extra, "time": time.time()}
    write_json_atomically(Path(folder) / COMMIT_FILE, record)
    fsync_path(Path(folder))


def set_aside_uncommitted(ckpt_dir: Path) -> list[tuple[str, str, Path]]:
    """Rank 0 at start-up: every tag folder without a valid commit record goes to .incomplete/.
    Returns (tag, why, new place) for each; nothing is deleted."""
    moved = []
    for path in tag_dirs(ckpt_dir):
        problem = commit_problem(path)
        if problem is not None:
            moved.append((path.name, problem, move_aside(ckpt_dir, path)))
    return moved


def resume_choice(ckpt_dir: Path, resume: str | None) -> tuple[Path, str] | None:
    """(folder, tag) to resume from: `--resume` if given, else the newest committed tag of this run.

    An explicit older tag while this run holds newer committed ones is refused: its later steps
    would be saved under the names of those checkpoints, and committed checkpoints are never
    rewritten."""
    ckpt_dir = Path(ckpt_dir)
    committed = committed_tags(ckpt_dir) if ckpt_dir.is_dir() else []
    if not resume:
        return (ckpt_dir, committed[-1]) if committed else None
    path = Path(resume)
    if step_of(path.name) is None or not path.is_dir():
        raise CheckpointError(f"--resume {resume}: expected a RUN/checkpoints/step_XXXXXXXX directory")
    problem = commit_problem(path)
    if problem is not None:
        raise CheckpointError(f"--resume {resume}: not a committed checkpoint: {problem}")
    newer = [tag for tag in committed if step_of(tag) > step_of(path.name)]
    if newer:
        raise CheckpointError(
            f"--resume {resume}: {ckpt_dir} holds newer committed checkpoints {newer}; continuing from "
            f"{path.name} here would write its later steps under their names, and committed checkpoints are "
            f"never rewritten. Branch into a new run directory instead: --output NEW_RUN --resume {path}"
        )
    return path.parent, path.name


def read_state(tag_dir: Path) -> dict:
    path = Path(tag_dir) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{tag_dir}: not a checkpoint of this trainer ({STATE_FILE} missing)")
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------- RNG


def rng_state() -> dict:
    """Every RNG as tensors and plain values (loadable with weights_only=True, no allowlist)."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(words), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# ---------------------------------------------------------------------------- save / load


def _gather(obj, group=None) -> list:
    out = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj, group=group)
    return out


def save(
    engine,
    ckpt_dir: Path,
    tag: str,
    state: dict,
    rank: int,
    pause_before_commit_s: float = 0.0,
    group=None,
) -> None:
    """Collective: every rank calls it. Returns once the tag is committed (record + `latest`).

    1. every rank writes its files (ours atomically; DeepSpeed's through SafeCheckpointEngine,
       which fsyncs each one in the rank that wrote it — on a shared filesystem only the writer's
       fsync makes its node's data durable);
    2. the ranks exchange the names and sizes of what they wrote (the exchange is the barrier);
    3. rank 0 writes COMMITTED (fsynced), fsyncs the tag folder and the checkpoints folder, then
       points `latest` at the tag."""
    ckpt_dir = Path(ckpt_dir)
    tag_dir = ckpt_dir / tag
    if rank == 0 and tag_dir.exists():
        if commit_problem(tag_dir) is None:
            raise CheckpointError(f"{tag_dir}: already committed; a committed checkpoint is never rewritten")
        moved = move_aside(ckpt_dir, tag_dir)
        print(f"[checkpoint] {tag}: an uncommitted folder of that name was moved to {moved}", flush=True)
    torch.distributed.barrier()
    tag_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    with write_atomically(tag_dir / f"rng_rank{rank}.pt", "wb") as handle:
        torch.save(rng_state(), handle)
    written[f"rng_rank{rank}.pt"] = (tag_dir / f"rng_rank{rank}.pt").stat().st_size
    if rank == 0:
        write_json_atomically(tag_dir / STATE_FILE, state)
        written[STATE_FILE] = (tag_dir / STATE_FILE).stat().st_size
    # pipeline.train.checkpoint_engine.SafeCheckpointEngine fsyncs each file it saves and lists it
    ds_written = getattr(engine.checkpoint_engine, "written", None)
    if ds_written is None:
        raise CheckpointError("the engine's checkpoint engine is not checkpoint_engine.SafeCheckpointEngine")
    ds_written.clear()
    engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state={"trainer_state": state}, save_latest=False)
    for path in map(Path, ds_written):
        if tag_dir in path.parents:
            written[str(path.relative_to(tag_dir))] = path.stat().st_size
    fsync_path(tag_dir)
    everything = {}
    for files in _gather(written, group):  # also the barrier: every rank has fsynced its files
        everything.update(files)
    if rank == 0:
        for path in sorted(p for p in tag_dir.rglob("*") if p.is_file()):
            name = str(path.relative_to(tag_dir))
            if name not in everything and name != COMMIT_FILE:  # e.g. DeepSpeed's recovery scripts
                fsync_path(path)
                everything[name] = path.stat().st_size
        for name, size in everything.items():
            if not (tag_dir / name).is_file() or (tag_dir / name).stat().st_size != size:
                raise CheckpointError(
                    f"{tag_dir / name}: written by another rank ({size} bytes) but not seen here — checkpoints need "
                    f"a filesystem shared by all nodes"
                )
        if pause_before_commit_s:  # test hook: a window for `kill -9` between files and commit
            print(f"[checkpoint] {tag}: files written, pausing {pause_before_commit_s}s before commit", flush=True)
            time.sleep(pause_before_commit_s)
        write_commit(tag_dir, tag, everything)
        fsync_path(ckpt_dir)
        write_latest(ckpt_dir, tag)
    torch.distributed.barrier()


def load(engine, ckpt_dir: Path, tag: str, rank: int, load_dir: Path | None = None, reseed: int | None = None) -> dict:
    """Load engine/optimizer/scheduler state and this rank's RNG; returns the trainer state.

    Same world size: DeepSpeed's files of `ckpt_dir/tag`, RNG from rng_rank<rank>.pt (bitwise).
    Another world size: `load_dir` is where DeepSpeed reads (the universal copy, see universal.py;
    `ckpt_dir` for ZeRO-0), and `reseed` (the run's seed) re-seeds every RNG from (seed, step, rank) —
    the old ranks' RNG files do not map onto the new ranks."""
    tag_dir = Path(ckpt_dir) / tag
    rng_file = tag_dir / f"rng_rank{rank}.pt"
    if reseed is None and not rng_file.is_file():
        raise CheckpointError(f"{tag_dir}: no RNG state for rank {rank} ({rng_file.name} missing)")
    path, client = engine.load_checkpoint(
        str(load_dir or ckpt_dir), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=True
    )
    if path is None:
        raise CheckpointError(f"{tag_dir}: DeepSpeed could not load this checkpoint")
    if reseed is None:
        set_rng_state(torch.load(rng_file, weights_only=True))
    else:
        reseed_rng(reseed, client["trainer_state"]["step"], rank)
    return client["trainer_state"]


def reseed_rng(seed: int, step: int, rank: int) -> None:
    """Every RNG of this rank from (seed, step, rank): after a world-size change there is no saved
    state for a new rank, and a deterministic seed keeps the continued run reproducible."""
    words = np.random.SeedSequence([seed, step, rank]).generate_state(2, dtype=np.uint32)
    value = int(words[0]) << 32 | int(words[1])
    random.seed(value)
    np.random.seed(words)
    torch.manual_seed(value)  # also seeds every CUDA device


def prune(ckpt_dir: Path, keep_last: int, keep: set[str]) -> list[str]:
    """Delete committed checkpoints beyond the newest `keep_last`, sparing tags in `keep` and the
    newest. Rank 0. Folders without a record are never touched here."""
    committed = committed_tags(ckpt_dir)
    removed = []
    for tag in committed[:-keep_last] if keep_last > 0 else committed[:-1]:
        if tag not in keep and tag != committed[-1]:
            shutil.rmtree(Path(ckpt_dir) / tag)
            shutil.rmtree(Path(ckpt_dir) / UNIVERSAL_DIR / tag, ignore_errors=True)  # its converted copy, if any
            removed.append(tag)
    return removed
