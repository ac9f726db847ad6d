"""Stage `dedup` (reduce side): one task per hash bucket; the first occurrence of a text wins.

"First" is the global input order (file index in the sorted input list, row, piece), which
does not depend on how files were split into tasks or how many buckets there are — so the
surviving documents are the same for any task count.

Outputs of bucket b: work/dedup/{b}.npy, the (task, ordinal) of every duplicate, and
work/dedup/links/{b}.npy, one ROW_LINK per duplicate whose first occurrence is in another
source row: the `group` stage keeps such rows on one side of the split. Links are written
even with `dedup.enabled: false`, so identical texts still never land on both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.executor import Stage
from pipeline.data.prepare_plan import Plan
from pipeline.data.stages.buckets import DROP, RECORD, ROW_LINK, load_array, save_array
from pipeline.data.stages.clean import bucket_path


def drop_path(plan: Plan, bucket: int) -> Path:
    return plan.work_dir / "dedup" / f"{bucket:04d}.npy"


def links_path(plan: Plan, bucket: int) -> Path:
    return plan.work_dir / "dedup" / "links" / f"{bucket:04d}.npy"


def run_task(plan: Plan, bucket: int, progress: Callable[[int], None]) -> dict:
    parts = [load_array(bucket_path(plan, task, bucket), RECORD) for task in range(plan.num_tasks)]
    table = np.concatenate(parts) if parts else np.zeros(0, dtype=RECORD)
    # sort by hash, then by global position: within a run of equal hashes the first row wins
    order = np.lexsort((table["part"], table["row"], table["file"], table["h1"], table["h0"]))
    table = table[order]
    same_as_previous = np.zeros(len(table), dtype=bool)
    if len(table) > 1:
        same_as_previous[1:] = (table["h0"][1:] == table["h0"][:-1]) & (table["h1"][1:] == table["h1"][:-1])
    # every copy is linked to the first occurrence of its text (the head of its run)
    head = np.maximum.accumulate(np.where(same_as_previous, 0, np.arange(len(table))))
    copies = np.flatnonzero(same_as_previous)
    other_row = (table["file"][head[copies]] != table["file"][copies]) | (
        table["row"][head[copies]] != table["row"][copies]
    )
    links = np.zeros(int(other_row.sum()), dtype=ROW_LINK)
    linked = copies[other_row]
    links["a_file"], links["a_row"] = table["file"][head[linked]], table["row"][head[linked]]
    links["b_file"], links["b_row"] = table["file"][linked], table["row"][linked]
    save_array(links_path(plan, bucket), links)
    if not plan.config.dedup.enabled:
        same_as_previous[:] = False
    duplicates = table[same_as_previous]
    drops = np.zeros(len(duplicates), dtype=DROP)
    drops["task"], drops["ordinal"] = duplicates["task"], duplicates["ordinal"]
    drops.sort(order=["task", "ordinal"])
    save_array(drop_path(plan, bucket), drops)
    progress(len(table))
    return {
        "documents": int(len(table)),
        "unique": int(len(table) - int(same_as_previous.sum())),
        "duplicates": int(len(drops)),
        "row_links": int(len(links)),
    }


STAGE = Stage(name="dedup", run_task=run_task, count_tasks=lambda plan: plan.num_buckets)
