"""RUN/metrics.jsonl: one JSON record per logged step, written by the trainer, read by reports and the planner.

Record names are a contract:
  train: kind step epoch consumed_samples tokens loss lr grad_norm tokens_per_s samples_per_s
         step_time_s data_wait_share mfu eta_s time
  eval:  kind step tokens val_loss val_ppl val_acc val_tokens
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_metrics(run: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Records of RUN/metrics.jsonl (`run`: the run directory or the file), in step order.

    A step logged twice (by a start that was interrupted, then redone) keeps its last record.
    A missing file is an empty run; a broken line is an error naming file and line."""
    path = Path(run)
    if path.is_dir() or not path.suffix:
        path = path / "metrics.jsonl"
    if not path.exists():
        return []
    latest: dict[tuple[str, int], tuple[int, dict[str, Any]]] = {}  # (kind, step) → (line, record)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path}:{number}: not a JSON line") from None
        if (kind is None or record.get("kind") == kind) and "step" in record:
            latest[(record.get("kind", "train"), int(record["step"]))] = (number, record)
    # by step; within a step in the order they were logged (train before its eval)
    return [record for _, (_, record) in sorted(latest.items(), key=lambda item: (item[0][1], item[1][0]))]
