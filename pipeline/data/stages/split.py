"""Stage `split`: drop duplicates (exact, and near ones when enabled), send each document to train or validation by its group's draw.

A document is held out iff its group's split draw (64 hash bits, see stages/group.py) is
below a threshold; the threshold is `validation_fraction` of the draw range, raised if needed
so that at least `min_validation_documents` (capped at `max_validation_share` of the
surviving documents) are held out. The group stage computes it once for every task. All
pieces of a source row, rows sharing an identical piece and (near dedup on) rows linked as
near duplicates share one draw: no row, text or near-duplicate cluster is on both sides.

Outputs of task i: docs/train/{i}.jsonl.zst and docs/validation/{i}.jsonl.zst (the documents,
an output for the user), and work/sides/{i}.npy: one byte per cleaned piece of clean task i
(TRAIN, VALIDATION or DROPPED), with which `pack` reads the pieces from work/clean/ directly —
the JSON documents are written once and never parsed again on the way to the shards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.executor import Stage
from pipeline.data.prepare_plan import Plan
from pipeline.data.samples import cut
from pipeline.data.stages.buckets import DROP, load_array, save_array
from pipeline.data.stages.clean import documents_path
from pipeline.data.stages.dedup import drop_path
from pipeline.data.stages.group import TaskDocuments, load_groups, sample_positions, validation_threshold
from pipeline.data.stages.histogram import Histogram
from pipeline.data.stages.near_dedup import near_duplicate_ordinals
from pipeline.formats.documents import DocumentWriter, piece_columns, read_pieces
from pipeline.formats.packed_shards import sha256_of_file

TRAIN, VALIDATION, DROPPED = 0, 1, 2  # a piece's side, in work/sides/
SIDE = np.dtype("u1")


def split_path(plan: Plan, split: str, task_id: int) -> Path:
    return plan.docs_dir(split) / f"{task_id:05d}.jsonl.zst"


def sides_path(plan: Plan, task_id: int) -> Path:
    return plan.work_dir / "sides" / f"{task_id:05d}.npy"


def duplicate_ordinals(plan: Plan, task_id: int) -> np.ndarray:
    """Sorted ordinals (positions in work/clean/{task}) of this task's duplicates."""
    found = []
    for bucket in range(plan.num_buckets):
        drops = load_array(drop_path(plan, bucket), DROP)
        lo, hi = np.searchsorted(drops["task"], [task_id, task_id + 1])
        found.append(drops["ordinal"][lo:hi])
    return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64)


def run_task(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    threshold = validation_threshold(plan)
    draws = TaskDocuments(plan, task_id).draws(load_groups(plan))
    duplicates = set(duplicate_ordinals(plan, task_id).tolist())
    # near dedup also links exact copies: those stay counted as exact duplicates
    near_duplicates = set(near_duplicate_ordinals(plan, task_id).tolist()) - duplicates
    per_file: dict[int, dict[str, int]] = {}
    wanted = sample_positions(plan, task_id)
    sample_texts: dict[str, str] = {}  # ordinal → text, for the duplicate samples
    chars = Histogram()
    sides = bytearray()
    paths = [entry.path for entry in plan.inputs]
    with (
        DocumentWriter(split_path(plan, "train", task_id)) as train,
        DocumentWriter(split_path(plan, "validation", task_id)) as validation,
    ):
        ordinal = 0
        for batch in read_pieces(documents_path(plan, task_id)):
            for text, file, row, part in zip(*piece_columns(batch)):
                if ordinal in wanted:
                    sample_texts[str(ordinal)] = cut(text, plan.config.samples.max_chars)
                counts = per_file.setdefault(file, {"duplicates": 0, "near_duplicates": 0, "train": 0, "validation": 0})
                dropped_as = (
                    "duplicates" if ordinal in duplicates else "near_duplicates" if ordinal in near_duplicates else None
                )
                if dropped_as is not None:
                    counts[dropped_as] += 1
                    sides.append(DROPPED)
                else:
                    side, target, name = (
                        (VALIDATION, validation, "validation")
                        if draws[ordinal] < threshold
                        else (TRAIN, train, "train")
                    )
                    # docs/ records: these keys in this order are the output format (docs/data.md)
                    target.write_record({"text": text, "source": paths[file], "row": row, "part": part, "file": file})
                    sides.append(side)
                    counts[name] += 1
                    chars.add(len(text))
                ordinal += 1
            progress(batch.num_rows)
    save_array(sides_path(plan, task_id), np.frombuffer(bytes(sides), dtype=SIDE))
    return {
        "files": {str(k): v for k, v in sorted(per_file.items())},
        "train": train.count,
        "validation": validation.count,
        # for the manifest, so that `verify` can re-hash the documents too
        "document_files": {
            name: {
                "path": str(writer.path.relative_to(plan.output)),
                "bytes": writer.path.stat().st_size,
                "sha256": sha256_of_file(writer.path),
            }
            for name, writer in (("train", train), ("validation", validation))
        },
        "doc_chars": chars.to_json(),
        "sample_texts": sample_texts,
    }


STAGE = Stage(name="split", run_task=run_task, count_tasks=lambda plan: plan.num_tasks)
