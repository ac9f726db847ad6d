"""Stage `dedup` (reduce side): one task per hash bucket; the first occurrence of a text wins.

"First" is the global input order (file index in the sorted input list, row, piece), which
does not depend on how files were split into tasks or how many buckets there are — so the
surviving documents are the same for any task count.

Outputs of bucket b: work/dedup/{b}.npy, the (task, ordinal) of every duplicate, and
work/dedup/links/{b}.npy, one ROW_LINK per duplicate whose first occurrence is in another
source row: the `group` stage keeps such rows on one side of the split. Links are written
even with `dedup.enabled: false`, so identical texts still never land on both sides.
An appended version (`prepare --append`) reads the earlier versions' records of the bucket
too; they come first in the global order, so a text they hold is a duplicate here, and
work/dedup/base_links/{b}.npy ties each such copy's row to the earlier document (the group
stage gives the row that document's side). The earlier versions' own decisions never change.
The marker carries this bucket's candidates for the duplicate samples: (kept, removed)
position pairs with the smallest sample keys of the removed copy, per source.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.executor import Stage
from pipeline.data.prepare_plan import Plan
from pipeline.data.samples import sample_key, smallest_per_group_indices, source_ids
from pipeline.data.stages.buckets import BASE_LINK, DROP, RECORD, ROW_LINK, load_array, save_array
from pipeline.data.stages.clean import bucket_path

_POSITION_FIELDS = ("file", "row", "part", "task", "ordinal")


def duplicate_candidates(plan: Plan, table: np.ndarray, head: np.ndarray, copies: np.ndarray) -> list[dict]:
    """Per source of the removed copy: the `samples.per_source` copies with the smallest keys,
    each with the position of the copy that was kept."""
    limit = plan.config.samples.per_source
    if limit <= 0 or not len(copies):
        return []
    names, file_source = source_ids(plan.sources)
    removed = table[copies]
    keys = sample_key(removed["file"], removed["row"], removed["part"])
    sources = file_source[removed["file"].astype(np.int64)]
    chosen = smallest_per_group_indices(keys, sources, limit)
    return [
        {
            "key": int(keys[i]),
            "source": names[int(sources[i])],
            "removed": {name: int(table[copies[i]][name]) for name in _POSITION_FIELDS},
            "kept": {name: int(table[head[copies[i]]][name]) for name in _POSITION_FIELDS},
        }
        for i in chosen
    ]


def drop_path(plan: Plan, bucket: int) -> Path:
    return plan.work_dir / "dedup" / f"{bucket:04d}.npy"


def links_path(plan: Plan, bucket: int) -> Path:
    return plan.work_dir / "dedup" / "links" / f"{bucket:04d}.npy"


def base_links_path(plan: Plan, bucket: int) -> Path:
    return plan.work_dir / "dedup" / "base_links" / f"{bucket:04d}.npy"


def _earlier_versions(plan: Plan, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """An appended version: every record of bucket `bucket` of the earlier versions (their hash
    tables persist under their work/buckets/), with the version each came from."""
    records, versions = [], []
    for version, base in enumerate(plan.base_plans(), 1):
        for task in range(base.num_tasks):
            part = load_array(bucket_path(base, task, bucket), RECORD)
            records.append(part)
            versions.append(np.full(len(part), version, dtype=np.uint32))
    if not records:
        return np.zeros(0, dtype=RECORD), np.zeros(0, dtype=np.uint32)
    return np.concatenate(records), np.concatenate(versions)


def run_task(plan: Plan, bucket: int, progress: Callable[[int], None]) -> dict:
    parts = [load_array(bucket_path(plan, task, bucket), RECORD) for task in range(plan.num_tasks)]
    own = np.concatenate(parts) if parts else np.zeros(0, dtype=RECORD)
    # earlier versions come first in the global order: a text they hold is a duplicate here
    earlier, earlier_version = _earlier_versions(plan, bucket)
    table = np.concatenate([earlier, own])
    version = np.concatenate([earlier_version, np.full(len(own), plan.version, dtype=np.uint32)])
    # sort by hash, then by global position: within a run of equal hashes the first row wins
    order = np.lexsort((table["part"], table["row"], table["file"], version, table["h1"], table["h0"]))
    table, version = table[order], version[order]
    same_as_previous = np.zeros(len(table), dtype=bool)
    if len(table) > 1:
        same_as_previous[1:] = (table["h0"][1:] == table["h0"][:-1]) & (table["h1"][1:] == table["h1"][:-1])
    same_as_previous &= version == plan.version  # an earlier version's decisions are final
    # every copy is linked to the first occurrence of its text (the head of its run)
    head = np.maximum.accumulate(np.where(same_as_previous, 0, np.arange(len(table))))
    copies = np.flatnonzero(same_as_previous)
    head_is_own = version[head[copies]] == plan.version
    # a copy of an earlier version's text: that document's side decides the copying row's side
    of_earlier = copies[~head_is_own]
    base_links = np.zeros(len(of_earlier), dtype=BASE_LINK)
    base_links["b_file"], base_links["b_row"] = table["file"][of_earlier], table["row"][of_earlier]
    base_links["version"] = version[head[of_earlier]]
    base_links["task"], base_links["ordinal"] = table["task"][head[of_earlier]], table["ordinal"][head[of_earlier]]
    if plan.version > 1:
        save_array(base_links_path(plan, bucket), base_links)
    copies = copies[head_is_own]
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
    candidates = duplicate_candidates(plan, table, head, copies if plan.config.dedup.enabled else copies[:0])
    duplicates = table[same_as_previous]
    drops = np.zeros(len(duplicates), dtype=DROP)
    drops["task"], drops["ordinal"] = duplicates["task"], duplicates["ordinal"]
    drops.sort(order=["task", "ordinal"])
    save_array(drop_path(plan, bucket), drops)
    progress(len(own))
    return {
        "documents": int(len(own)),
        "unique": int(len(own) - int(same_as_previous.sum())),
        "duplicates": int(len(drops)),
        "duplicates_of_earlier_versions": int(len(of_earlier)) if plan.config.dedup.enabled else 0,
        "row_links": int(len(links)),
        "duplicate_samples": candidates,
    }


STAGE = Stage(name="dedup", run_task=run_task, count_tasks=lambda plan: plan.num_buckets)
