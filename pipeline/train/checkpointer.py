"""When to save, and saving: the trainer asks after every step, the checkpointer decides.

A checkpoint is due (in this order of reasons): on a stop signal, at the end, on a new best
validation loss, when `checkpoint_interval_minutes` have passed on rank 0's clock, every
`checkpoint_interval_steps`. The clock is rank 0's alone — the trainer puts `time_due()` into its
one per-step vote, so every rank reaches the same decision.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.train import checkpoint
from pipeline.train.metrics import MetricsLogger
from pipeline.train.train_config import TrainConfig


class CheckPointer:
    def __init__(
        self, engine, ckpt_dir: Path, cfg: TrainConfig, rank: int, log: MetricsLogger, save_pause_s: float, group=None
    ):
        self.engine = engine
        self.group = group  # the gloo group the ranks exchange their file lists on
        self.ckpt_dir = Path(ckpt_dir)
        self.cfg = cfg
        self.rank = rank
        self.log = log
        self.save_pause_s = save_pause_s
        self.last_save_time = time.monotonic()

    def time_due(self) -> bool:
        """Rank 0's clock says a timed checkpoint is due (other ranks: always False)."""
        return self.rank == 0 and (time.monotonic() - self.last_save_time) / 60 >= self.cfg.checkpoint_interval_minutes

    def should_save(self, step: int, *, stopping: bool, finished: bool, new_best: bool, time_due: bool) -> str | None:
        """The reason to save after `step`, or None (torchtitan's CheckPointer._should_save)."""
        if stopping:
            return "stop signal"
        if finished:
            return "end"
        if new_best:
            return "new best val loss"
        if time_due:
            return "timer"
        if step % self.cfg.checkpoint_interval_steps == 0:
            return "interval"
        return None

    def save(self, step: int, state: dict, reason: str, keep: set[str]) -> None:
        """Collective: every rank calls it. `keep`: tags pruning must spare (the best)."""
        tag = checkpoint.tag_for(step)
        started = time.monotonic()
        try:
            checkpoint.save(self.engine, self.ckpt_dir, tag, state, self.rank, self.save_pause_s, self.group)
        except OSError as exc:  # disk full, quota, I/O error: say so in one line, keep what is committed
            committed = checkpoint.committed_tags(self.ckpt_dir)
            raise checkpoint.CheckpointError(
                f"checkpoint {tag}: saving failed on rank {self.rank}: {exc}. The newest committed checkpoint "
                f"({committed[-1] if committed else 'none'}) is intact; the partial {tag} is moved aside at the next "
                f"start. Free space and start the same command again."
            ) from None
        if self.rank == 0:
            pruned = checkpoint.prune(self.ckpt_dir, self.cfg.keep_last, keep)
            self.log.message(
                f"[checkpoint] saved {tag} ({reason}, {time.monotonic() - started:.1f}s)"
                + (f", pruned {pruned}" if pruned else "")
            )
        self.last_save_time = time.monotonic()
