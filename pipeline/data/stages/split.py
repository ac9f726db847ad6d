"""Stage `split`: drop duplicates (exact, and near ones when enabled), send each document to train or validation by its group's draw.

A document is held out iff its group's split draw (64 hash bits, see stages/group.py) is
below a threshold; the threshold is `validation_fraction` of the draw range, raised if needed
so that at least `min_validation_documents` (capped at `max_validation_share` of the
surviving documents) are held out. The group stage computes it once for every task. All
pieces of a source row, rows sharing an identical piece and (near dedup on) rows linked as
near duplicates share one draw: no row, text or near-duplicate cluster is on both sides.

Output of task i: work/sides/{i}.npy, one byte per cleaned piece of clean task i (TRAIN,
VALIDATION or DROPPED), decided for the whole task at once from the hashes (numpy; no text is
read but the samples' and the lengths' column). `pack` and the tokenizer read their side's
pieces from work/clean/ through it (`side_pieces`). With `split.write_documents`, the task
also writes its documents as an output for the user: docs/train/{i}.jsonl.zst and
docs/validation/{i}.jsonl.zst — off by default, since nothing downstream reads them and the
JSON export costs as much CPU as deciding the split a dozen times over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.data.executor import Stage
from pipeline.data.prepare_plan import Plan
from pipeline.data.samples import cut
from pipeline.data.stages.buckets import DROP, load_array, save_array
from pipeline.data.stages.clean import documents_path
from pipeline.data.stages.dedup import drop_path
from pipeline.data.stages.group import TaskDocuments, load_groups, sample_positions, validation_threshold
from pipeline.data.stages.histogram import Histogram
from pipeline.data.stages.near_dedup import near_duplicate_ordinals
from pipeline.formats.documents import PIECE_SCHEMA, DocumentWriter, piece_columns, read_pieces
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


def read_all_pieces(plan: Plan, task_id: int) -> pa.Table:
    """Clean task `task_id`'s pieces as one table, zero-copy from the memory-mapped file."""
    table = pa.ipc.open_stream(pa.memory_map(str(documents_path(plan, task_id)), "r")).read_all()
    if table.schema != PIECE_SCHEMA:
        raise ValueError(f"{documents_path(plan, task_id)}: not a file of cleaned pieces (schema {table.schema})")
    return table


def decide_sides(plan: Plan, task_id: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(side of each of the task's `count` pieces, drop reason: 0 kept, 1 duplicate, 2 near duplicate)."""
    draws = TaskDocuments(plan, task_id).draws(load_groups(plan))
    if len(draws) != count:
        raise ValueError(f"clean task {task_id}: {count} pieces in work/clean but {len(draws)} in its hash records")
    reason = np.zeros(count, dtype=np.uint8)
    # near dedup also links exact copies: those stay counted as exact duplicates (written last)
    reason[near_duplicate_ordinals(plan, task_id).astype(np.int64)] = 2
    reason[duplicate_ordinals(plan, task_id).astype(np.int64)] = 1
    held_out = draws < np.uint64(validation_threshold(plan))
    sides = np.where(reason > 0, DROPPED, np.where(held_out, VALIDATION, TRAIN)).astype(SIDE)
    return sides, reason


def run_task(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    pieces = read_all_pieces(plan, task_id)
    sides, reason = decide_sides(plan, task_id, pieces.num_rows)
    files, of_file = np.unique(pieces.column("file").to_numpy(), return_inverse=True)
    counts = {  # per input file of the task, in file order
        name: np.bincount(of_file[where], minlength=len(files))
        for name, where in (
            ("duplicates", reason == 1),
            ("near_duplicates", reason == 2),
            ("train", sides == TRAIN),
            ("validation", sides == VALIDATION),
        )
    }
    per_file = {str(file): {name: int(c[i]) for name, c in counts.items()} for i, file in enumerate(files.tolist())}
    kept = sides != DROPPED
    chars = Histogram()
    chars.add_many(pc.utf8_length(pieces.column("text").filter(pa.array(kept))).to_numpy())
    texts = pieces.column("text")
    max_chars = plan.config.samples.max_chars
    sample_texts = {str(o): cut(texts[o].as_py(), max_chars) for o in sorted(sample_positions(plan, task_id))}
    save_array(sides_path(plan, task_id), sides)
    document_files = write_documents(plan, task_id, sides) if plan.config.split.write_documents else {}
    progress(pieces.num_rows)
    return {
        "files": per_file,
        "train": int(np.count_nonzero(sides == TRAIN)),
        "validation": int(np.count_nonzero(sides == VALIDATION)),
        "document_files": document_files,  # for the manifest, so that `verify` re-hashes them too
        "doc_chars": chars.to_json(),
        "sample_texts": sample_texts,
    }


def write_documents(plan: Plan, task_id: int, sides: np.ndarray) -> dict[str, dict]:
    """docs/{train,validation}/{task_id}.jsonl.zst: the task's documents on each side, in input order."""
    paths = [entry.path for entry in plan.inputs]
    written = {}
    for name in ("train", "validation"):
        with DocumentWriter(split_path(plan, name, task_id)) as writer:
            for texts, files, rows, parts in side_pieces(plan, task_id, name, columns=("text", "file", "row", "part")):
                for text, file, row, part in zip(texts, files, rows, parts):
                    # docs/ records: these keys in this order are the output format (docs/data.md)
                    writer.write_record({"text": text, "source": paths[file], "row": row, "part": part, "file": file})
        written[name] = {
            "path": str(writer.path.relative_to(plan.output)),
            "bytes": writer.path.stat().st_size,
            "sha256": sha256_of_file(writer.path),
        }
    return written


def side_pieces(
    plan: Plan,
    clean_task: int,
    split: str,
    of_source: np.ndarray | None = None,
    columns: tuple[str, ...] = ("text", "file", "row"),
) -> Iterator[tuple[list, ...]]:
    """`columns` of clean task `clean_task`'s pieces on side `split` (only those of the input
    files where `of_source` is set, if given), as Python lists, batch by batch, in order. Only
    the chosen pieces' texts are copied out of the memory map."""
    sides = load_array(sides_path(plan, clean_task), SIDE)
    wanted_side = TRAIN if split == "train" else VALIDATION
    start = 0
    for batch in read_pieces(documents_path(plan, clean_task)):
        if start + batch.num_rows > len(sides):
            raise ValueError(f"{sides_path(plan, clean_task)}: {len(sides)} sides for more pieces than that")
        mask = sides[start : start + batch.num_rows] == wanted_side
        if of_source is not None:
            mask &= of_source[batch.column("file").to_numpy()]
        start += batch.num_rows
        if mask.any():
            yield piece_columns(batch.select(list(columns)), mask)
    if start != len(sides):
        raise ValueError(f"{sides_path(plan, clean_task)}: {len(sides)} sides for {start} pieces")


STAGE = Stage(name="split", run_task=run_task, count_tasks=lambda plan: plan.num_tasks)
