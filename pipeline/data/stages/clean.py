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
from pipeline.data.stages.buckets import RECORD, save_array
from pipeline.formats.csv_corpus import FileReport, read_csv_rows
from pipeline.formats.documents import FLUSH_CHARS, PieceWriter, content_hash


def documents_path(plan: Plan, task_id: int) -> Path:
    return plan.work_dir / "clean" / f"{task_id:05d}.arrow"


def bucket_path(plan: Plan, task_id: int, bucket: int) -> Path:
    return plan.work_dir / "buckets" / f"{task_id:05d}" / f"{bucket:04d}.npy"


def run_task(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    # the files must be the ones `init` saw: a task started later (a SLURM array task, a
    # re-run) on edited inputs would mix two corpora in one output
    plan.check_inputs_unchanged(plan.task_files[task_id])
    pieces_of = Cleaner(plan.config.clean).pieces
    digests: list[bytes] = []  # per piece, in order: its content hash, file, row and part
    files: list[int] = []
    rows: list[int] = []
    parts: list[int] = []
    reports = []
    samples = SmallestPerGroup(plan.config.samples.per_source)
    with PieceWriter(documents_path(plan, task_id)) as writer:
        texts: list[str] = []  # pieces not yet handed to the writer: from position written on
        written = pending_chars = 0

        def write_pending() -> None:
            nonlocal written, pending_chars
            writer.write_batch(texts, files[written:], rows[written:], parts[written:])
            written, pending_chars = len(files), 0
            texts.clear()

        for file_index in plan.task_files[task_id]:
            source = plan.inputs[file_index].path
            report = FileReport(path=source)
            dropped_rows: list[tuple[str, int, str]] = []  # reason, row, raw text
            rows_kept = documents = 0
            for row, raw in read_csv_rows(source, plan.config.read, report):
                kept, reason = pieces_of(raw)
                if reason is not None:
                    dropped_rows.append((reason, row, raw))
                    continue
                rows_kept += 1
                for part, text in enumerate(kept):
                    digests.append(content_hash(text))
                    texts.append(text)
                    files.append(file_index)
                    rows.append(row)
                    parts.append(part)
                documents += len(kept)
                pending_chars += len(raw)  # about the pieces' length: one check per row
                if pending_chars >= FLUSH_CHARS:
                    write_pending()
            offer_dropped_samples(plan, samples, file_index, dropped_rows)
            dropped = Counter(reason for reason, _, _ in dropped_rows)
            # rows the reader met but could not turn into documents are drops with reasons too
            if report.rows_malformed:
                dropped["malformed"] += report.rows_malformed
            if report.rows_empty_text:
                dropped["empty_text"] += report.rows_empty_text
            entry = dataclasses.asdict(report)
            entry.update(
                file_index=file_index, rows_kept=rows_kept, dropped=dict(sorted(dropped.items())), documents=documents
            )
            reports.append(entry)
            plan.check_inputs_unchanged([file_index])  # not rewritten while we read it
            progress(plan.inputs[file_index].size)
        write_pending()
    table = records(task_id, digests, files, rows, parts)
    buckets = table["h0"] % plan.num_buckets if len(table) else np.zeros(0, dtype=np.uint64)
    for bucket in range(plan.num_buckets):
        save_array(bucket_path(plan, task_id, bucket), table[buckets == bucket])
    return {"files": reports, "documents": len(table), "dropped_samples": samples.items()}


def records(task_id: int, digests: list[bytes], files: list[int], rows: list[int], parts: list[int]) -> np.ndarray:
    """The task's hash records (RECORD), built column by column: the 16-byte digests read as
    two big-endian words, as `hash_words` reads one."""
    table = np.zeros(len(digests), dtype=RECORD)
    if digests:
        words = np.frombuffer(b"".join(digests), dtype=">u8").reshape(-1, 2)
        table["h0"], table["h1"] = words[:, 0], words[:, 1]
        table["file"], table["row"], table["part"] = files, rows, parts
        table["task"] = task_id
        table["ordinal"] = np.arange(len(digests), dtype=np.uint64)
    return table


def offer_dropped_samples(
    plan: Plan, samples: SmallestPerGroup, file_index: int, dropped_rows: list[tuple[str, int, str]]
) -> None:
    """Offer one file's dropped rows as samples of their reason; keys computed for all at once."""
    if not dropped_rows or plan.config.samples.per_source <= 0:
        return
    source, name, max_chars = plan.inputs[file_index].path, plan.sources[file_index], plan.config.samples.max_chars
    keys = sample_key(np.full(len(dropped_rows), file_index), np.array([row for _, row, _ in dropped_rows]))
    for (reason, row, raw), key in zip(dropped_rows, keys.tolist()):
        samples.offer(
            f"{reason}\0{name}",
            key,
            lambda reason=reason, row=row, raw=raw: {
                "reason": reason,
                "source": name,
                "path": source,
                "row": row,
                "chars": len(raw),
                "text": cut(raw, max_chars),
            },
        )


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
