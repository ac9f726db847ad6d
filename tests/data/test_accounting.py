"""The report's accounting checked against counts that do not come from the pipeline: what the
corpus generator says it planted (generation.json), and a first-occurrence dedup recomputed here
in plain Python over the cleaned documents in global input order."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.prepared import cleaned_pieces, split_documents


def test_rows_read_per_file_equal_the_rows_the_generator_planted(prepared, corpus):
    generation = json.loads((corpus / "generation.json").read_text())
    report = json.loads((prepared / "report.json").read_text())
    read = {str(Path(entry["path"]).relative_to(corpus)): entry for entry in report["files"]}
    assert sorted(read) == sorted(f["path"] for f in generation["files"])
    for planted in generation["files"]:
        entry = read[planted["path"]]
        if planted["damage"] == "no_content" or planted["damage"] == "empty":
            assert entry["rows_read"] == 0, planted["path"]  # skipped whole, with a reason
            continue
        # every complete row, plus the cut row of the truncated file
        assert entry["rows_read"] == planted["rows"] + planted.get("truncated_rows", 0), planted["path"]
        assert entry["dropped"].get("empty_text", 0) == planted["counts"]["empty"], planted["path"]
    expected = generation["rows_with_content_column"] + sum(f.get("truncated_rows", 0) for f in generation["files"])
    assert report["totals"]["rows_read"] == expected


def test_dedup_keeps_the_first_occurrence_in_global_input_order(prepared):
    plan = json.loads((prepared / "plan.json").read_text())
    order = {f["path"]: index for index, f in enumerate(sorted(plan["inputs"], key=lambda f: f["path"]))}
    cleaned = cleaned_pieces(prepared)
    cleaned.sort(key=lambda r: (order[r["source"]], r["row"], r["part"]))
    first: dict[str, tuple] = {}
    for record in cleaned:
        first.setdefault(record["text"], (record["source"], record["row"], record["part"]))
    kept = {
        (r["source"], r["row"], r["part"])
        for split in ("train", "validation")
        for r in split_documents(prepared, split)
    }
    assert len(first) < len(cleaned)  # the corpus has duplicates
    assert kept == set(first.values())
