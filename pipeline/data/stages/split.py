"""Stage `split`: drop duplicates (exact, and near ones when enabled), send each document to train or validation by its hash.

A document is held out iff its split draw (64 hash bits) is below a threshold; the threshold
is `validation_fraction` of the draw range, raised if needed so that at least
`min_validation_documents` (capped at `max_validation_share` of all documents) are held
out. Every task computes the same threshold from the dedup markers, and identical texts
have identical draws, so no text is ever on both sides.

Outputs of task i: docs/train/{i}.jsonl.zst and docs/validation/{i}.jsonl.zst.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.executor import Stage, read_marker
from pipeline.data.prepare_plan import Plan
from pipeline.data.stages.buckets import DROP, RECORD, load_array, split_draw
from pipeline.data.stages.clean import bucket_path, documents_path
from pipeline.data.stages.dedup import drop_path
from pipeline.data.stages.histogram import Histogram
from pipeline.data.stages.near_dedup import near_duplicate_ordinals
from pipeline.formats.documents import DocumentWriter, read_records

DRAW_RANGE = 1 << 64


def split_path(plan: Plan, split: str, task_id: int) -> Path:
    return plan.docs_dir(split) / f"{task_id:05d}.jsonl.zst"


def validation_threshold(plan: Plan) -> int:
    """Draws below this value are held out. Derived from the dedup markers alone, so every
    task (on any node) computes the same number."""
    cfg = plan.config.split
    unique = 0
    draws: list[int] = []
    for bucket in range(plan.num_buckets):
        marker = read_marker(plan, "dedup", bucket)
        unique += marker["unique"]
        draws.extend(marker["smallest_draws"])
    draws.sort()
    threshold = int(cfg.validation_fraction * DRAW_RANGE)
    wanted = min(cfg.min_validation_documents, int(unique * cfg.max_validation_share))
    if wanted > 0 and len(draws) >= wanted and draws[wanted - 1] >= threshold:
        threshold = draws[wanted - 1] + 1
    return threshold


def duplicate_ordinals(plan: Plan, task_id: int) -> np.ndarray:
    """Sorted ordinals (positions in work/clean/{task}) of this task's duplicates."""
    found = []
    for bucket in range(plan.num_buckets):
        drops = load_array(drop_path(plan, bucket), DROP)
        lo, hi = np.searchsorted(drops["task"], [task_id, task_id + 1])
        found.append(drops["ordinal"][lo:hi])
    return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64)


def split_draws(plan: Plan, task_id: int) -> np.ndarray:
    """Every document's split draw, indexed by its ordinal: read back from the task's own hash
    bucket records (the clean stage hashed each text once; no need to hash it again)."""
    records = np.concatenate([load_array(bucket_path(plan, task_id, b), RECORD) for b in range(plan.num_buckets)])
    draws = np.zeros(len(records), dtype=np.uint64)
    draws[records["ordinal"]] = split_draw(records["h1"])
    return draws


def run_task(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    threshold = validation_threshold(plan)
    draws = split_draws(plan, task_id)
    duplicates = set(duplicate_ordinals(plan, task_id).tolist())
    # near dedup also links exact copies: those stay counted as exact duplicates
    near_duplicates = set(near_duplicate_ordinals(plan, task_id).tolist()) - duplicates
    per_file: dict[int, dict[str, int]] = {}
    chars = Histogram()
    with (
        DocumentWriter(split_path(plan, "train", task_id)) as train,
        DocumentWriter(split_path(plan, "validation", task_id)) as validation,
    ):
        for ordinal, record in enumerate(read_records(documents_path(plan, task_id))):
            counts = per_file.setdefault(
                record["file"], {"duplicates": 0, "near_duplicates": 0, "train": 0, "validation": 0}
            )
            if ordinal in duplicates:
                counts["duplicates"] += 1
                continue
            if ordinal in near_duplicates:
                counts["near_duplicates"] += 1
                continue
            target, name = (validation, "validation") if draws[ordinal] < threshold else (train, "train")
            target.write_record(record)
            counts[name] += 1
            chars.add(len(record["text"]))
            if ordinal % 1000 == 999:
                progress(1000)
    return {
        "files": {str(k): v for k, v in sorted(per_file.items())},
        "train": train.count,
        "validation": validation.count,
        "doc_chars": chars.to_json(),
    }


STAGE = Stage(name="split", run_task=run_task, count_tasks=lambda plan: plan.num_tasks)
