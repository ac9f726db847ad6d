"""Stage `group` (one task, before the split): which documents must land on the same side.

A document is a piece of a source row (`clean.max_chars` cuts long rows into pieces). The
split must not hash pieces one by one: the pieces of one article would scatter over train and
validation. So the unit of the split is a *group* of rows:

- every piece of one row belongs to its row;
- rows linked by an exact copy of a piece (dedup's row links, written even with dedup off)
  or by a near-duplicate pair (near_reduce's verified edges, when near dedup is on) are one
  group (union-find; the group's first row in global order (file, row) names it).

- an appended version (`prepare --append`): a row holding a copy of an earlier version's
  document takes that document's draw, and so does its whole group (the earlier split is final).

A row's draw is its first piece's split draw (the text hash, so identical single-piece rows
draw alike); a group's draw is its first row's. Every document takes its group's draw.

Outputs: work/groups/rows.npy — (row key, draw) of every row in a group of two or more,
sorted by key; rows absent from it are alone. The marker carries the validation threshold,
computed here over the draws of the documents that survive dedup (with multiplicity, so at
least `min_validation_documents` are held out), so every split task uses the same number; an
appended version reuses version 1's threshold.
It also carries the duplicate and near-duplicate examples chosen for OUT/dropped/
(positions only: the split tasks, which read every document anyway, fetch their texts).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.executor import Stage, read_marker
from pipeline.data.minhash import first_of_component
from pipeline.data.prepare_plan import Plan
from pipeline.data.samples import smallest_per_group
from pipeline.data.stages.buckets import BASE_LINK, DROP, RECORD, ROW_LINK, load_array, row_key, save_array, split_draw
from pipeline.data.stages.clean import bucket_path
from pipeline.data.stages.dedup import base_links_path, drop_path, links_path
from pipeline.data.stages.near_dedup import EDGE, drops_path, edges_path

DRAW_RANGE = 1 << 64
GROUP_ROW = np.dtype([("key", "<u8"), ("draw", "<u8")])


def groups_path(plan: Plan) -> Path:
    return plan.work_dir / "groups" / "rows.npy"


def load_groups(plan: Plan) -> np.ndarray:
    return load_array(groups_path(plan), GROUP_ROW)


def _near_enabled(plan: Plan) -> bool:
    return plan.config.dedup.near.enabled


def _row_links(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) row keys of every link: exact copies across rows, verified near-duplicate pairs."""
    left, right = [], []
    for bucket in range(plan.num_buckets):
        links = load_array(links_path(plan, bucket), ROW_LINK)
        left.append(row_key(links["a_file"], links["a_row"]))
        right.append(row_key(links["b_file"], links["b_row"]))
        if _near_enabled(plan):
            edges = load_array(edges_path(plan, bucket), EDGE)
            left.append(row_key(edges["first_file"], edges["first_row"]))
            right.append(row_key(edges["other_file"], edges["other_row"]))
    a = np.concatenate(left) if left else np.zeros(0, dtype=np.uint64)
    b = np.concatenate(right) if right else np.zeros(0, dtype=np.uint64)
    keep = a != b
    return a[keep], b[keep]


class TaskDocuments:
    """One clean task's documents in ordinal order: row keys and own split draws."""

    def __init__(self, plan: Plan, task_id: int):
        records = np.concatenate([load_array(bucket_path(plan, task_id, b), RECORD) for b in range(plan.num_buckets)])
        records = records[np.argsort(records["ordinal"], kind="stable")]
        self.count = len(records)
        self.keys = row_key(records["file"], records["row"])
        # pieces of a row are consecutive ordinals: the row's first piece sits `part` places back
        first_piece = np.arange(self.count, dtype=np.int64) - records["part"].astype(np.int64)
        self.row_draws = split_draw(records["h1"])[first_piece] if self.count else np.zeros(0, dtype=np.uint64)

    def draws(self, groups: np.ndarray) -> np.ndarray:
        """Each document's draw: its group's, or its row's when the row is alone."""
        draws = self.row_draws.copy()
        if len(groups) and self.count:
            at = np.searchsorted(groups["key"], self.keys)
            inside = at < len(groups)
            hit = np.zeros(self.count, dtype=bool)
            hit[inside] = groups["key"][at[inside]] == self.keys[inside]
            draws[hit] = groups["draw"][at[hit]]
        return draws


def dropped_ordinals(drops: np.ndarray, task_id: int) -> np.ndarray:
    """Ordinals of `task_id` in a (task, ordinal)-sorted DROP table."""
    lo, hi = np.searchsorted(drops["task"], [task_id, task_id + 1])
    return drops["ordinal"][lo:hi]


def all_drops(plan: Plan) -> np.ndarray:
    """Exact and near duplicates of every task, sorted by (task, ordinal)."""
    parts = [load_array(drop_path(plan, bucket), DROP) for bucket in range(plan.num_buckets)]
    if _near_enabled(plan):
        parts.append(load_array(drops_path(plan), DROP))
    drops = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=DROP)
    return drops


def _earlier_anchors(plan: Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An appended version: (row key, rank, draw) of each own row that holds a copy of an
    earlier version's document, one per row: the earliest such document (by version, task,
    ordinal — the global order), with the draw that document's split used. Empty for version 1."""
    empty = np.zeros(0, dtype=np.uint64)
    if plan.version == 1:
        return empty, empty, empty
    links = np.concatenate([load_array(base_links_path(plan, b), BASE_LINK) for b in range(plan.num_buckets)])
    if not len(links):
        return empty, empty, empty
    draws = np.zeros(len(links), dtype=np.uint64)
    bases = plan.base_plans()
    for version in np.unique(links["version"]):
        base = bases[int(version) - 1]
        groups = load_groups(base)
        for task in np.unique(links["task"][links["version"] == version]):
            chosen = (links["version"] == version) & (links["task"] == task)
            draws[chosen] = TaskDocuments(base, int(task)).draws(groups)[links["ordinal"][chosen].astype(np.int64)]
    rank = np.empty(len(links), dtype=np.uint64)
    rank[np.lexsort((links["ordinal"], links["task"], links["version"]))] = np.arange(len(links), dtype=np.uint64)
    keys = row_key(links["b_file"], links["b_row"])
    order = np.lexsort((rank, keys))
    first = order[np.r_[True, keys[order][1:] != keys[order][:-1]]]
    return keys[first], rank[first], draws[first]


def run_task(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    a, b = _row_links(plan)
    anchor_keys, anchor_rank, anchor_draw = _earlier_anchors(plan)
    nodes, inverse = np.unique(np.concatenate([a, b, anchor_keys]), return_inverse=True)
    inverse = inverse.reshape(-1)
    labels = first_of_component(len(nodes), inverse[: len(a)], inverse[len(a) : len(a) + len(b)])
    label_keys = nodes[labels]  # node keys are sorted: the label is the group's first row

    # the draw of each group's first row: its first piece's, found in the clean tasks' records
    wanted = np.unique(label_keys)
    found = np.zeros(len(wanted), dtype=np.uint64)
    for task in range(plan.num_tasks):  # one task's records in memory at a time
        docs = TaskDocuments(plan, task)
        at = np.searchsorted(wanted, docs.keys)
        inside = at < len(wanted)
        hit = np.zeros(docs.count, dtype=bool)
        hit[inside] = wanted[at[inside]] == docs.keys[inside]
        found[at[hit]] = docs.row_draws[hit]
    groups = np.zeros(len(nodes), dtype=GROUP_ROW)
    groups["key"] = nodes
    groups["draw"] = found[np.searchsorted(wanted, label_keys)] if len(nodes) else np.zeros(0, dtype=np.uint64)
    if len(anchor_keys):
        # a group holding a copy of an earlier version's text takes that document's side: the
        # earlier version's split is final (the earliest such document, when there are several)
        anchored = labels[inverse[len(a) + len(b) :]]
        order = np.lexsort((anchor_rank, anchored))
        first = order[np.r_[True, anchored[order][1:] != anchored[order][:-1]]]
        side = np.full(len(nodes), -1, dtype=np.int64)
        side[anchored[first]] = first
        member_side = side[labels]
        groups["draw"][member_side >= 0] = anchor_draw[member_side[member_side >= 0]]
    save_array(groups_path(plan), groups)

    # the threshold: over the documents that survive dedup, each with its group's draw
    cfg = plan.config.split
    keep_smallest = cfg.min_validation_documents
    drops = all_drops(plan)
    smallest = np.zeros(0, dtype=np.uint64)
    survivors = 0
    for task in range(plan.num_tasks):
        docs = TaskDocuments(plan, task)
        alive = np.ones(docs.count, dtype=bool)
        alive[dropped_ordinals(drops, task).astype(np.int64)] = False
        draws = docs.draws(groups)[alive]
        survivors += len(draws)
        smallest = np.sort(np.concatenate([smallest, draws]))[:keep_smallest]
        progress(docs.count)
    threshold = int(cfg.validation_fraction * DRAW_RANGE)
    wanted_docs = min(cfg.min_validation_documents, int(survivors * cfg.max_validation_share))
    if plan.fixed_threshold is not None:  # an appended version: version 1's threshold, so one rule for all
        threshold = plan.fixed_threshold
    elif wanted_docs > 0 and len(smallest) >= wanted_docs and int(smallest[wanted_docs - 1]) >= threshold:
        threshold = int(smallest[wanted_docs - 1]) + 1
    return {
        "samples": chosen_samples(plan),
        "threshold": threshold,
        "documents": int(survivors),
        "grouped_rows": int(len(nodes)),
        "groups": int(len(np.unique(labels))),
    }


def chosen_samples(plan: Plan) -> dict[str, list[dict]]:
    """The global duplicate samples (each bucket's candidates merged: smallest keys per source)
    and the near-duplicate cluster samples."""
    candidates = [c for b in range(plan.num_buckets) for c in read_marker(plan, "dedup", b)["duplicate_samples"]]
    duplicates = smallest_per_group(candidates, lambda c: c["source"], plan.config.samples.per_source)
    clusters = read_marker(plan, "near_resolve", 0)["cluster_samples"] if _near_enabled(plan) else []
    return {"duplicates": duplicates, "near_duplicates": clusters}


def sample_positions(plan: Plan, task_id: int) -> set[int]:
    """Ordinals in clean task `task_id` whose texts the samples need."""
    samples = read_marker(plan, "group", 0)["samples"]
    positions = [p for s in samples["duplicates"] for p in (s["kept"], s["removed"])]
    positions += [m for s in samples["near_duplicates"] for m in s["members"]]
    return {p["ordinal"] for p in positions if p["task"] == task_id}


def validation_threshold(plan: Plan) -> int:
    """Draws below this value are held out; the same number for every split task."""
    return int(read_marker(plan, "group", 0)["threshold"])


STAGE = Stage(name="group", run_task=run_task, count_tasks=lambda plan: 1, unit="docs")
