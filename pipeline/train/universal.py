"""DeepSpeed universal checkpoints: how a ZeRO checkpoint written on W ranks is resumed on W'.

ZeRO 1–3 save the optimizer state (and ZeRO-3 the weights) as W flat partitions; DeepSpeed loads
them only on the same data-parallel world size. `deepspeed.checkpoint.ds_to_universal` rewrites a
checkpoint as one file per parameter and state (`zero/<param>/{fp32,exp_avg,exp_avg_sq}.pt`), which
an engine configured with `"checkpoint": {"load_universal": true}` slices for any world size.

`convert(ckpt_dir, tag)` (rank 0, before the engine exists) writes RUN/checkpoints/universal/<tag>/:
  - converted into a hidden work folder `universal/.<tag>.converting` by DeepSpeed's converter in
    its own process (`python -m deepspeed.checkpoint.ds_to_universal --inject_missing_state`: our
    checkpoints are not Megatron's, they carry no `universal_checkpoint_info`);
  - every file fsynced, then the folder's own COMMITTED record (same format as a tag's, plus the
    source tag and world size), then renamed into place — a folder named <tag> in universal/ is
    either committed or damaged, never half-written. The source tag is not touched (committed
    checkpoints are immutable); the copy is pruned together with its tag.
A committed copy is reused (a restart on the same new world size before the first save); a damaged
one is moved to checkpoints/.incomplete/<tag>.universal[.N].

Unsafe loads: the converter and DeepSpeed's universal loader call `torch.load(weights_only=False)`
themselves (not through the engine's checkpoint engine). They only ever read a committed checkpoint
of this run (or the `--resume` tag you named) and the copy converted from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from pipeline.train.checkpoint import (
    UNIVERSAL_DIR,
    CheckpointError,
    commit_problem,
    fsync_path,
    move_aside,
    write_commit,
)


def universal_root(ckpt_dir: Path) -> Path:
    """The folder DeepSpeed's `load_checkpoint(load_dir, tag)` reads a converted tag from."""
    return Path(ckpt_dir) / UNIVERSAL_DIR


def convert(ckpt_dir: Path, source: Path, source_world: int, workers: int = 2) -> tuple[Path, str]:
    """Rank 0: the committed universal copy of checkpoint folder `source` under `ckpt_dir`
    (converted now, or reused). Returns (its root for load_checkpoint, a line for the log)."""
    source, root = Path(source), universal_root(ckpt_dir)
    tag = source.name
    target = root / tag
    if target.is_dir():
        problem = commit_problem(target)
        if problem is None:
            return root, f"[checkpoint] {tag}: reusing its universal copy {target}"
        where = move_aside(ckpt_dir, target, f"{tag}.universal")
        print(f"[checkpoint] {target}: not committed ({problem}); moved to {where}", flush=True)
    root.mkdir(parents=True, exist_ok=True)
    work = root / f".{tag}.converting"
    shutil.rmtree(work, ignore_errors=True)  # an interrupted conversion: derived data, redone from the source
    started = time.monotonic()
    command = [
        sys.executable,
        "-m",
        "deepspeed.checkpoint.ds_to_universal",
        "--input_folder",
        str(source),
        "--output_folder",
        str(work),
        "--inject_missing_state",
        "--num_extract_workers",
        str(workers),
        "--num_merge_workers",
        str(workers),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise CheckpointError(
            f"{source}: DeepSpeed's universal conversion failed (exit {result.returncode}: {last}); resume on "
            f"{source_world} ranks, the world size that wrote it"
        )
    (root / "latest_universal").unlink(missing_ok=True)  # the converter's pointer; tags are named explicitly
    files = {}
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        fsync_path(path)
        files[str(path.relative_to(work))] = path.stat().st_size
    for folder in sorted({p.parent for p in work.rglob("*") if p.is_file()}, key=lambda p: -len(p.parts)):
        fsync_path(folder)
    write_commit(work, tag, files, source=str(source), source_world_size=source_world)
    os.replace(work, target)
    fsync_path(root)
    fsync_path(Path(ckpt_dir))
    took = time.monotonic() - started
    return root, f"[checkpoint] {tag}: converted to a universal checkpoint in {took:.1f}s ({target})"


def repair_after_load(engine, load_dir: Path, tag: str) -> None:
    """Undo two things DeepSpeed 0.19.8's ZeRO-3 universal loader
    (`stage3.load_hp_checkpoint_state_from_checkpoint_dir_stage3`) gets wrong for an optimizer with
    more than one param group (this trainer has two: decayed weights, and biases/norms/embeddings):

    - it gives every sub-group the *same* `step` tensor object; torch's AdamW increments `step` in
      place once per sub-group, so the count advanced by 2 per optimizer step and Adam's bias
      correction was wrong from the first step after the resume (found by the elastic test: ZeRO-3's
      losses drifted 2.7e-3 after one step, 2e-2 after eight; ZeRO-2 stayed within 2e-7);
    - it copies param group 0's hyperparameters into every group, so the no-decay group would be
      decayed.
    Both are restored as a same-world load leaves them (and as ZeRO 1/2's universal loader does): each
    state its own step tensor, each group its saved hyperparameters from the converted
    `zero/optimizer_state.pt` (read through the engine's weights-only checkpoint engine). For ZeRO 1/2
    this changes nothing."""
    inner = engine.optimizer.optimizer  # the torch optimizer inside ZeRO
    for state in inner.state.values():
        if isinstance(state.get("step"), torch.Tensor):
            state["step"] = state["step"].clone()
    saved = engine.checkpoint_engine.load(str(Path(load_dir) / tag / "zero" / "optimizer_state.pt"), map_location="cpu")
    if len(saved["param_groups"]) != len(inner.param_groups):
        raise CheckpointError(
            f"{Path(load_dir) / tag}: {len(saved['param_groups'])} optimizer param groups saved, "
            f"{len(inner.param_groups)} built"
        )
    for group, loaded in zip(inner.param_groups, saved["param_groups"]):
        group.update({key: value for key, value in loaded.items() if key != "params"})
