"""Stage `clean` (map side of dedup): read a slice of input files, clean, write documents.

Outputs of task i:
  work/clean/{i}.arrow            cleaned pieces in input order: text, file, row, part (Arrow IPC)
  work/buckets/{i}/{b}.npy        (hash, position) records of those documents, by hash bucket
Statistics (marker): one entry per input file with the exact row accounting, and this task's
candidates for the samples of dropped rows (the smallest sample keys per reason and source,
with the text before cleaning; see pipeline/data/samples.py).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.data.cleaner import Cleaner
from pipeline.data.executor import Stage, read_marker
from pipeline.data.prepare_plan import Plan, PlanError
from pipeline.data.samples import SmallestPerGroup, cut, sample_key
from pipeline.data.stages.buckets import RECORD, hash_words, save_array
from pipeline.formats.csv_corpus import FileReport, read_csv_file
from pipeline.formats.documents import PieceWriter, content_hash


def documents_path(plan: Plan, task_id: int) -> Path:
    return plan.work_dir / "clean" / f"{task_id:05d}.arrow"


def bucket_path(plan: Plan, task_id: int, bucket: int) -> Path:
    return plan.work_dir / "buckets" / f"{task_id:05d}" / f"{bucket:04d}.npy"


def run_task(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    # the files must be the ones `init` saw: a task started later (a SLURM array task, a
    # re-run) on edited inputs would mix two corpora in one output
    plan.check_inputs_unchanged(plan.task_files[task_id])
    cleaner = Cleaner(plan.config.clean)
    records: list[tuple] = []
    files = []
    ordinal = 0
    samples = SmallestPerGroup(plan.config.samples.per_source)
    max_chars = plan.config.samples.max_chars
    with PieceWriter(documents_path(plan, task_id)) as writer:
        for file_index in plan.task_files[task_id]:
            source = plan.inputs[file_index].path
            source_name = plan.sources[file_index]
            report = FileReport(path=source)
            dropped: Counter[str] = Counter()
            rows_kept = documents = 0
            for doc in read_csv_file(source, plan.config.read, report):
                pieces, reason = cleaner(doc)
                if reason is not None:
                    dropped[reason] += 1
                    samples.offer(
                        f"{reason}\0{source_name}",
                        sample_key(file_index, doc.row),
                        lambda doc=doc, reason=reason, path=source, name=source_name: {
                            "reason": reason,
                            "source": name,
                            "path": path,
                            "row": doc.row,
                            "chars": len(doc.text),
                            "text": cut(doc.text, max_chars),
                        },
                    )
                    continue
                rows_kept += 1
                for part, piece in enumerate(pieces):
                    h0, h1 = hash_words(content_hash(piece.text))
                    writer.write(piece.text, file_index, piece.row, part)
                    records.append((h0, h1, file_index, piece.row, part, task_id, ordinal))
                    ordinal += 1
                    documents += 1
            # rows the reader met but could not turn into documents are drops with reasons too
            if report.rows_malformed:
                dropped["malformed"] += report.rows_malformed
            if report.rows_empty_text:
                dropped["empty_text"] += report.rows_empty_text
            entry = dataclasses.asdict(report)
            entry.update(
                file_index=file_index, rows_kept=rows_kept, dropped=dict(sorted(dropped.items())), documents=documents
            )
            files.append(entry)
            plan.check_inputs_unchanged([file_index])  # not rewritten while we read it
            progress(plan.inputs[file_index].size)
    table = np.array(records, dtype=RECORD)
    buckets = table["h0"] % plan.num_buckets if len(table) else np.zeros(0, dtype=np.uint64)
    for bucket in range(plan.num_buckets):
        save_array(bucket_path(plan, task_id, bucket), table[buckets == bucket])
    return {"files": files, "documents": ordinal, "dropped_samples": samples.items()}


def require_rows(plan: Plan) -> int:
    """Fail loudly when not a single input row could be read (every file broken or empty)."""
    files = [entry for task in range(plan.num_tasks) for entry in read_marker(plan, "clean", task)["files"]]
    rows = sum(entry["rows_read"] for entry in files)
    if rows == 0:
        problems = "; ".join(
            f"{e['path']}: {e.get('skipped_reason') or 'no rows'} {e.get('error') or ''}".strip() for e in files[:20]
        )
        raise PlanError(f"no input row could be read from {len(files)} file(s): {problems}")
    return rows


def total_bytes(plan: Plan) -> int:
    return sum(f.size for f in plan.inputs)


STAGE = Stage(
    name="clean",
    run_task=run_task,
    count_tasks=lambda plan: plan.num_tasks,
    unit="B",
    total_units=total_bytes,
)
