"""Stage `dedup` (reduce side): one task per hash bucket; the first occurrence of a text wins.

"First" is the global input order (file index in the sorted input list, row, piece), which
does not depend on how files were split into tasks or how many buckets there are — so the
surviving documents are the same for any task count.

Outputs of bucket b: work/dedup/{b}.npy, the (task, ordinal) of every duplicate. The marker
also carries the bucket's unique-document count and its smallest split draws, from which
every split task derives the same validation threshold without another pass.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.executor import Stage
from pipeline.data.prepare_plan import Plan
from pipeline.data.stages.buckets import DROP, RECORD, load_array, save_array, split_draw
from pipeline.data.stages.clean import bucket_path


def drop_path(plan: Plan, bucket: int) -> Path:
    return plan.work_dir / "dedup" / f"{bucket:04d}.npy"


def run_task(plan: Plan, bucket: int, progress: Callable[[int], None]) -> dict:
    parts = [load_array(bucket_path(plan, task, bucket), RECORD) for task in range(plan.num_tasks)]
    table = np.concatenate(parts) if parts else np.zeros(0, dtype=RECORD)
    # sort by hash, then by global position: within a run of equal hashes the first row wins
    order = np.lexsort((table["part"], table["row"], table["file"], table["h1"], table["h0"]))
    table = table[order]
    same_as_previous = np.zeros(len(table), dtype=bool)
    if len(table) > 1:
        same_as_previous[1:] = (table["h0"][1:] == table["h0"][:-1]) & (table["h1"][1:] == table["h1"][:-1])
    if not plan.config.dedup.enabled:
        same_as_previous[:] = False
    duplicates = table[same_as_previous]
    drops = np.zeros(len(duplicates), dtype=DROP)
    drops["task"], drops["ordinal"] = duplicates["task"], duplicates["ordinal"]
    drops.sort(order=["task", "ordinal"])
    save_array(drop_path(plan, bucket), drops)
    unique = table[~same_as_previous]
    keep_smallest = plan.config.split.min_validation_documents
    draws = np.sort(split_draw(unique["h1"]))[:keep_smallest]
    progress(len(table))
    return {
        "documents": int(len(table)),
        "unique": int(len(unique)),
        "duplicates": int(len(drops)),
        "smallest_draws": [int(d) for d in draws],
    }


STAGE = Stage(name="dedup", run_task=run_task, count_tasks=lambda plan: plan.num_buckets)
