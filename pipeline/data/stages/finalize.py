"""Stage `finalize` (one task): OUT/manifest.json for training and OUT/report.json for people.

Both are built from the task markers alone (no data pass), and contain no timings or host
names, so the same inputs and config give byte-identical files. Version 1's manifest also
lists every published appended version (pipeline/data/versions.py): publishing one re-runs
this task.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

from pipeline.core.atomic import write_json_atomically
from pipeline.core.typed_config import to_dict
from pipeline.data.executor import Stage, read_marker
from pipeline.data.prepare_plan import Plan
from pipeline.data.stages import pack as pack_stage
from pipeline.data.stages.dropped import write_dropped_samples
from pipeline.data.stages.histogram import Histogram
from pipeline.data.versions import combine_versions, version_summaries
from pipeline.formats.manifest import write_manifest
from pipeline.formats.packed_shards import token_dtype

SOURCE_COUNTS = (
    "train_documents",
    "train_tokens",
    "train_weighted_documents",
    "train_weighted_tokens",
    "validation_documents",
    "validation_tokens",
    "validation_blocks",
)


def build_report(plan: Plan, vocab_size: int, pack: list[dict]) -> dict:
    files: dict[int, dict] = {}
    for task in range(plan.num_tasks):
        for entry in read_marker(plan, "clean", task)["files"]:
            files[entry["file_index"]] = {**entry, "duplicates": 0, "near_duplicates": 0, "train": 0, "validation": 0}
    doc_chars = Histogram()
    for task in range(plan.num_tasks):
        marker = read_marker(plan, "split", task)
        for index, counts in marker["files"].items():
            for key, value in counts.items():
                files[int(index)][key] += value
        doc_chars.merge(marker["doc_chars"])

    dropped: Counter[str] = Counter()
    totals = Counter()
    for entry in files.values():
        dropped.update(entry["dropped"])
        for key in (
            "rows_read",
            "rows_kept",
            "documents",
            "duplicates",
            "near_duplicates",
            "train",
            "validation",
            "undecodable_bytes",
        ):
            totals[key] += entry.get(key, 0)
    errors = [
        {"path": e["path"], "reason": e["skipped_reason"], "error": e["error"]}
        for e in files.values()
        if e.get("skipped_reason") or e.get("error")
    ]

    doc_tokens = Histogram()
    used_ids: set[int] = set()
    split_totals = {s: Counter() for s in ("train", "validation")}
    for marker in pack:
        doc_tokens.merge(marker["doc_tokens"])
        used_ids.update(marker["vocab_ids_used"])
        st = split_totals[marker["split"]]
        st["documents"] += marker["documents"]
        st["tokens"] += marker["tokens"]
        st["chars"] += marker["chars"]
        st["partial_tokens_dropped"] += marker["partial_tokens_dropped"]
        st["blocks"] += sum(s["blocks"] for s in marker["shards"])
    sources = {
        name: {"weight": weight, "files": plan.sources.count(name), **dict.fromkeys(SOURCE_COUNTS, 0)}
        for name, weight in plan.weights.items()
    }
    for marker in pack:
        split = marker["split"]
        for name, counts in marker["sources"].items():
            keys = (
                ("documents", "tokens", "weighted_documents", "weighted_tokens")
                if split == "train"
                else ("documents", "tokens")
            )
            for key in keys:
                sources[name][f"{split}_{key}"] += counts[key]
        for shard in marker["shards"]:
            if split == "validation":
                sources[shard["source"]]["validation_blocks"] += shard["blocks"]
    all_tokens = sum(st["tokens"] for st in split_totals.values())
    all_chars = sum(st["chars"] for st in split_totals.values())
    all_docs = sum(st["documents"] for st in split_totals.values())
    lost = sum(st["partial_tokens_dropped"] for st in split_totals.values())
    return {
        "inputs": {"files": len(plan.inputs), "bytes": sum(f.size for f in plan.inputs), "ignored": plan.ignored},
        "totals": {
            "rows_read": totals["rows_read"],
            "rows_kept": totals["rows_kept"],
            "dropped": dict(sorted(dropped.items())),
            "documents": totals["documents"],
            "duplicates": totals["duplicates"],
            "near_duplicates": totals["near_duplicates"],
            "train_documents": totals["train"],
            "validation_documents": totals["validation"],
            "undecodable_bytes": totals["undecodable_bytes"],
            "tokens": all_tokens,
            "tokens_in_blocks": all_tokens - lost,
            "partial_tokens_dropped": lost,
            "blocks": sum(st["blocks"] for st in split_totals.values()),
        },
        "splits": {name: dict(st) for name, st in split_totals.items()},
        # tokens (with EOS, before cutting into blocks) per source, once and as weighted by `mixture:`
        "sources": sources,
        "tokens_per_document": all_tokens / all_docs if all_docs else 0.0,
        "chars_per_token": all_chars / (all_tokens - all_docs) if all_tokens > all_docs else 0.0,  # EOS excluded
        "vocab_used_share": len(used_ids) / vocab_size,
        "histograms": {"doc_chars": doc_chars.to_json(), "doc_tokens": doc_tokens.to_json()},
        "errors": errors,
        "files": [files[i] for i in sorted(files)],
    }


def document_files(plan: Plan) -> dict[str, list[dict]]:
    """Every docs/{split}/*.jsonl.zst with size and sha256 (from the split markers), for `verify`."""
    files: dict[str, list[dict]] = {"train": [], "validation": []}
    for task in range(plan.num_tasks):
        for name, entry in read_marker(plan, "split", task)["document_files"].items():
            files[name].append(entry)
    return files


def build_manifest(plan: Plan, report: dict, pack: list[dict], tokenizer: dict, samples: list[dict]) -> dict:
    """`tokenizer`: the tokenizer task's marker (vocab_size, special_ids, fingerprint)."""
    splits = {}
    for name in ("train", "validation"):
        shards = [s for marker in pack for s in marker["shards"] if marker["split"] == name]
        stats = report["splits"][name]
        splits[name] = {
            "shards": shards,
            "blocks": sum(s["blocks"] for s in shards),
            "tokens": sum(s["tokens"] for s in shards),
            "documents": stats["documents"],
            "partial_tokens_dropped": stats["partial_tokens_dropped"],
        }
    totals = report["totals"]
    return {
        "block_size": plan.config.pack.block_size,
        "dtype": token_dtype(tokenizer["vocab_size"]).name,
        "vocab_size": tokenizer["vocab_size"],
        "special_ids": tokenizer["special_ids"],
        # an appended version's own manifest points at version 1's tokenizer (../../tokenizer)
        "tokenizer": {
            "path": os.path.relpath(plan.tokenizer_dir, plan.output),
            "fingerprint": tokenizer["fingerprint"],
        },
        "splits": splits,
        "documents": document_files(plan),
        "samples": samples,  # OUT/dropped/*.jsonl.zst, for `verify`
        "sources": report["sources"],
        "totals": {
            "documents": totals["train_documents"] + totals["validation_documents"],
            "tokens": totals["tokens_in_blocks"],
            "blocks": totals["blocks"],
            "real_token_fraction": 1.0,  # no padding: every stored token is a real token or EOS
            "tokens_per_document": report["tokens_per_document"],
            "chars_per_token": report["chars_per_token"],
            "partial_tokens_dropped": totals["partial_tokens_dropped"],
        },
        "input_fingerprint": plan.fingerprint,
        "config": to_dict(plan.config),
    }


def run_task(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    tokenizer = read_marker(plan, "tokenizer", 0)
    pack = [read_marker(plan, "pack", task) for task in range(pack_stage.count_tasks(plan))]  # read once, used twice
    report = build_report(plan, tokenizer["vocab_size"], pack)
    report["dropped_samples"], sample_files = write_dropped_samples(plan)
    own = build_manifest(plan, report, pack, tokenizer, sample_files)
    if plan.version == 1:  # OUT/manifest.json lists every published appended version too
        appended = version_summaries(plan)
        if appended:
            report["appended_versions"] = appended
        own = combine_versions(plan, own, report)
    write_json_atomically(plan.output / "report.json", report)
    manifest = write_manifest(plan.output, own)
    progress(1)
    return {"fingerprint": manifest.fingerprint}


STAGE = Stage(name="finalize", run_task=run_task, count_tasks=lambda plan: 1, unit="task")
