"""Training metrics: one record per log step on the console, in RUN/metrics.jsonl and TensorBoard.

Record names are a contract (reports and plots read them):
  train: kind step epoch consumed_samples tokens loss lr grad_norm tokens_per_s samples_per_s
         step_time_s data_wait_share mfu eta_s time
  eval:  kind step tokens val_loss val_ppl val_acc val_tokens
         [val_by_source: {source: {val_loss val_ppl val_acc val_tokens}}]
Only rank 0 writes (`enabled=False` elsewhere makes every call a no-op).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any


def _format(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


class MetricsLogger:
    """Append-only metrics sink for rank 0; the JSON-lines file survives restarts (resumes append)."""

    CONSOLE_KEYS = {
        "train": ("step", "loss", "lr", "grad_norm", "tokens_per_s", "step_time_s", "data_wait_share", "mfu", "eta_s"),
        "eval": ("step", "val_loss", "val_ppl", "val_acc", "val_tokens"),
    }

    def __init__(
        self,
        run_dir: str | Path,
        enabled: bool = True,
        tensorboard: bool = True,
        echo: bool = True,
        resume_step: int = 0,
    ):
        """`resume_step`: the step this start continues from (0: a fresh start). Records an
        interrupted earlier start logged after it are dropped, since those steps are redone —
        also when that start died before its first checkpoint."""
        self.enabled = enabled
        self.echo = echo
        self._jsonl = None
        self._tb = None
        if not enabled:
            return
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "metrics.jsonl"
        truncate_after(run_dir, resume_step)
        self._jsonl = open(self.path, "a", encoding="utf-8")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # TensorBoard's own "redo from here"
            self._tb = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=resume_step + 1)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"kind": record.get("kind", "train"), **record}
        record.setdefault("time", time.time())
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        self._jsonl.write(json.dumps(clean, ensure_ascii=False) + "\n")
        self._jsonl.flush()
        kind = record["kind"]
        if self._tb is not None:
            step = int(record["step"])
            for key, value in record.items():
                if key not in ("kind", "step", "time") and isinstance(value, (int, float)) and value is not None:
                    self._tb.add_scalar(f"{kind}/{key}", value, step)
            for source, values in record.get("val_by_source", {}).items():  # eval/val_loss/<source>: one chart
                for key, value in values.items():
                    self._tb.add_scalar(f"{kind}/{key}/{source}", value, step)
            self._tb.flush()
        if self.echo:
            keys = self.CONSOLE_KEYS.get(kind, tuple(record))
            parts = [f"{k}={_format(record[k])}" for k in keys if record.get(k) is not None]
            parts += [
                f"val_loss[{source}]={_format(v['val_loss'])}" for source, v in record.get("val_by_source", {}).items()
            ]
            print(f"[{kind}] " + " ".join(parts), flush=True)

    def message(self, text: str) -> None:
        if self.enabled:
            print(text, flush=True)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def truncate_after(run_dir: str | Path, step: int) -> int:
    """Remove records with step > `step` from RUN/metrics.jsonl (atomically); returns how many."""
    from pipeline.core.atomic import write_atomically

    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:  # a line torn by a kill: drop it
            continue
    if len(kept) != len(lines):
        with write_atomically(path, "w") as handle:
            handle.write("".join(line + "\n" for line in kept))
    return len(lines) - len(kept)
