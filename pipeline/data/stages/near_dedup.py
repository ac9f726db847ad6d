"""Optional near-duplicate removal (MinHash LSH, see pipeline/near_dedup.py) as three stages.

    near_map      N tasks  work/clean/{i} → signatures → one band record per (document, band),
                           into K bucket files by band hash
    near_reduce   K tasks  group records by (band, band hash); link every member of a group to
                           the group's first document in global order → edge list
    near_resolve  1 task   union-find over all edges; each component keeps its first document
                           → work/near_dedup/drops.npy, the (task, ordinal) of all the others

"First" is the global input order (file, row, piece), as in exact dedup, so the documents
removed are the same for any task or bucket count. With `dedup.near.enabled: false` (the
default) every stage has 0 tasks and `near_duplicate_ordinals` returns nothing.

Candidate pairs are verified: a member is linked to its group's first document only if their
signatures agree in at least `min_similarity` of the positions (an unbiased Jaccard estimate).
This removes LSH false positives (with 16 × 8 bands, a pair at similarity 0.5 still collides
in some band 6 % of the time) and stops chains of loosely similar documents from merging into
one component — a component is then a star of verified pairs around its first document plus
what other bands link to it. Set `min_similarity: 0` to link every candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.executor import Stage
from pipeline.data.minhash import MinHasher, estimated_similarity, first_of_component
from pipeline.data.prepare_plan import Plan
from pipeline.data.samples import sample_key, smallest_per_group_indices, source_ids
from pipeline.data.stages.buckets import DROP, load_array, save_array
from pipeline.data.stages.clean import documents_path
from pipeline.formats.documents import piece_columns, read_pieces

BATCH_DOCUMENTS = 512  # documents hashed per numpy call

_POSITION = [("file", "<u4"), ("row", "<u8"), ("part", "<u4"), ("task", "<u4"), ("ordinal", "<u8")]
BAND_RECORD = np.dtype([("band", "<u2"), ("hash", "<u8"), *_POSITION])
# an edge links `other` to `first` (the earlier document of a verified candidate pair)
EDGE = np.dtype(
    [*((f"first_{name}", kind) for name, kind in _POSITION), *((f"other_{name}", kind) for name, kind in _POSITION)]
)


def hasher_for(plan: Plan) -> MinHasher:
    near = plan.config.dedup.near
    return MinHasher(near.ngram, near.num_permutations, near.bands, near.seed)


def near_dir(plan: Plan) -> Path:
    return plan.work_dir / "near_dedup"


def signatures_path(plan: Plan, task_id: int) -> Path:
    return near_dir(plan) / "signatures" / f"{task_id:05d}.npy"


def band_bucket_path(plan: Plan, task_id: int, bucket: int) -> Path:
    return near_dir(plan) / "bands" / f"{task_id:05d}" / f"{bucket:04d}.npy"


def edges_path(plan: Plan, bucket: int) -> Path:
    return near_dir(plan) / "edges" / f"{bucket:04d}.npy"


def drops_path(plan: Plan) -> Path:
    return near_dir(plan) / "drops.npy"


def _enabled(plan: Plan) -> bool:
    return plan.config.dedup.near.enabled


# --- near_map ---------------------------------------------------------------------------------


def run_map(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    hasher = hasher_for(plan)
    signatures: list[np.ndarray] = []
    positions: list[tuple[int, int, int]] = []
    batch: list[str] = []
    for texts, files, rows, parts in map(piece_columns, read_pieces(documents_path(plan, task_id))):
        for text, position in zip(texts, zip(files, rows, parts)):
            batch.append(text)
            positions.append(position)
            if len(batch) == BATCH_DOCUMENTS:
                signatures.append(hasher.signatures(batch))
                progress(len(batch))
                batch = []
    signatures.append(hasher.signatures(batch))
    progress(len(batch))
    table = np.concatenate(signatures)
    save_array(signatures_path(plan, task_id), table)

    count = len(table)
    position = np.array(positions, dtype=[("file", "<u4"), ("row", "<u8"), ("part", "<u4")])
    records = np.zeros((count, hasher.bands), dtype=BAND_RECORD)
    records["band"] = np.arange(hasher.bands, dtype=np.uint16)
    records["hash"] = hasher.band_hashes(table)
    for name in ("file", "row", "part"):
        records[name] = position[name][:, None]
    records["task"] = task_id
    records["ordinal"] = np.arange(count, dtype=np.uint64)[:, None]
    records = records.reshape(-1)
    buckets = records["hash"] % np.uint64(plan.num_buckets)
    for bucket in range(plan.num_buckets):
        save_array(band_bucket_path(plan, task_id, bucket), records[buckets == bucket])
    return {"documents": count, "band_records": int(len(records))}


# --- near_reduce ------------------------------------------------------------------------------


class SignatureTable:
    """Random access to the map tasks' signature files (memory-mapped, opened on first use)."""

    def __init__(self, plan: Plan):
        self._plan = plan
        self._open: dict[int, np.ndarray] = {}

    def rows(self, tasks: np.ndarray, ordinals: np.ndarray) -> np.ndarray:
        width = self._plan.config.dedup.near.num_permutations
        out = np.empty((len(tasks), width), dtype=np.uint32)
        for task in np.unique(tasks):
            task = int(task)
            if task not in self._open:
                path = signatures_path(self._plan, task)
                table = np.load(path, mmap_mode="r", allow_pickle=False)
                if table.dtype != np.uint32 or table.ndim != 2 or table.shape[1] != width:
                    raise ValueError(
                        f"{path}: expected a (documents, {width}) uint32 signature table, found {table.dtype} {table.shape}"
                    )
                self._open[task] = table
            chosen = tasks == task
            out[chosen] = self._open[task][ordinals[chosen].astype(np.int64)]
        return out


def run_reduce(plan: Plan, bucket: int, progress: Callable[[int], None]) -> dict:
    parts = [load_array(band_bucket_path(plan, task, bucket), BAND_RECORD) for task in range(plan.num_tasks)]
    table = np.concatenate(parts) if parts else np.zeros(0, dtype=BAND_RECORD)
    # by (band, hash), then global position: each group's first row is its first document
    table = table[np.lexsort((table["part"], table["row"], table["file"], table["hash"], table["band"]))]
    starts_group = np.ones(len(table), dtype=bool)
    if len(table) > 1:
        starts_group[1:] = (table["band"][1:] != table["band"][:-1]) | (table["hash"][1:] != table["hash"][:-1])
    group_first = np.maximum.accumulate(np.where(starts_group, np.arange(len(table)), 0))
    members = np.flatnonzero(~starts_group)
    edges = np.zeros(len(members), dtype=EDGE)
    for name, _ in _POSITION:
        edges[f"first_{name}"] = table[name][group_first[members]]
        edges[f"other_{name}"] = table[name][members]
    # the same pair collides in several bands (and exact duplicates in all of them)
    edges = np.unique(edges)
    candidates = len(edges)
    min_similarity = plan.config.dedup.near.min_similarity
    if min_similarity > 0 and len(edges):
        signatures = SignatureTable(plan)
        similarity = estimated_similarity(
            signatures.rows(edges["first_task"], edges["first_ordinal"]),
            signatures.rows(edges["other_task"], edges["other_ordinal"]),
        )
        edges = edges[similarity >= min_similarity]
    save_array(edges_path(plan, bucket), edges)
    progress(len(table))
    return {"band_records": int(len(table)), "candidate_pairs": int(candidates), "edges": int(len(edges))}


# --- near_resolve -----------------------------------------------------------------------------


def run_resolve(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    parts = [load_array(edges_path(plan, bucket), EDGE) for bucket in range(plan.num_buckets)]
    edges = np.concatenate(parts) if parts else np.zeros(0, dtype=EDGE)
    node_dtype = np.dtype(_POSITION)
    ends = np.zeros(2 * len(edges), dtype=node_dtype)
    for name, _ in _POSITION:
        ends[name] = np.concatenate((edges[f"first_{name}"], edges[f"other_{name}"]))
    # structured np.unique sorts by fields in order, (file, row, part) first: node ids follow global order
    nodes, inverse = np.unique(ends, return_inverse=True)
    inverse = inverse.reshape(-1)
    labels = first_of_component(len(nodes), inverse[: len(edges)], inverse[len(edges) :])
    is_duplicate = labels != np.arange(len(nodes))
    duplicates = nodes[is_duplicate]
    drops = np.zeros(len(duplicates), dtype=DROP)
    drops["task"], drops["ordinal"] = duplicates["task"], duplicates["ordinal"]
    drops.sort(order=["task", "ordinal"])
    save_array(drops_path(plan), drops)
    progress(len(edges))
    return {
        "cluster_samples": cluster_samples(plan, nodes, labels),
        "edges": int(len(edges)),
        "documents_in_components": int(len(nodes)),
        "components": int(len(nodes) - len(duplicates)),
        "near_duplicates": int(len(drops)),
    }


def cluster_samples(plan: Plan, nodes: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Per source of a cluster's first (kept) document: the `samples.per_source` clusters whose
    first document has the smallest sample keys, with up to `cluster_members` members in
    global order (positions only; the split stage fetches their texts)."""
    limit, show = plan.config.samples.per_source, plan.config.samples.cluster_members
    heads = np.flatnonzero(labels == np.arange(len(nodes)))
    if limit <= 0 or not len(heads):
        return []
    keys = sample_key(nodes["file"][heads], nodes["row"][heads], nodes["part"][heads])
    names, file_source = source_ids(plan.sources)
    sources = file_source[nodes["file"][heads].astype(np.int64)]
    order = np.argsort(labels, kind="stable")  # members of a component, in global order
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, heads)
    ends = np.searchsorted(sorted_labels, heads, side="right")
    out = []
    for at in smallest_per_group_indices(keys, sources, limit):
        members = order[starts[at] : min(ends[at], starts[at] + show)]
        out.append(
            {
                "key": int(keys[at]),
                "source": names[int(sources[at])],
                "size": int(ends[at] - starts[at]),
                "members": [{name: int(nodes[m][name]) for name, _ in _POSITION} for m in members],
            }
        )
    return out


def near_duplicate_ordinals(plan: Plan, task_id: int) -> np.ndarray:
    """Sorted ordinals (positions in work/clean/{task}) of this task's near-duplicates; empty
    when near dedup is disabled. Overlaps exact duplicates: count those first."""
    if not _enabled(plan):
        return np.zeros(0, dtype=np.uint64)
    drops = load_array(drops_path(plan), DROP)
    lo, hi = np.searchsorted(drops["task"], [task_id, task_id + 1])
    return drops["ordinal"][lo:hi].copy()


def _tasks_if_enabled(count: Callable[[Plan], int]) -> Callable[[Plan], int]:
    return lambda plan: count(plan) if _enabled(plan) else 0


MAP_STAGE = Stage(name="near_map", run_task=run_map, count_tasks=_tasks_if_enabled(lambda plan: plan.num_tasks))
REDUCE_STAGE = Stage(
    name="near_reduce",
    run_task=run_reduce,
    count_tasks=_tasks_if_enabled(lambda plan: plan.num_buckets),
    unit="records",
)
RESOLVE_STAGE = Stage(
    name="near_resolve", run_task=run_resolve, count_tasks=_tasks_if_enabled(lambda plan: 1), unit="edges"
)
STAGES = [MAP_STAGE, REDUCE_STAGE, RESOLVE_STAGE]
