"""OUT/dropped/<reason>.jsonl.zst: the examples a user reads to judge the filters (finalize).

One file per cleaning reason that dropped anything (too_short.jsonl.zst, low_cjk_share…:
source, path, row, length and the text *before* cleaning), duplicates.jsonl.zst (pairs:
the copy removed and the one kept) and, with near dedup on, near_duplicates.jsonl.zst
(clusters: size and the first members, the first one kept). At most `samples.per_source`
examples per reason and source, chosen by the smallest sample keys (pipeline/data/samples.py)
from the candidates the clean, dedup and near_resolve tasks left in their markers — so the
files are the same bytes for any task count.
"""

from __future__ import annotations

from pipeline.data.executor import read_marker
from pipeline.data.prepare_plan import Plan
from pipeline.data.samples import smallest_per_group
from pipeline.formats.documents import DocumentWriter
from pipeline.formats.packed_shards import sha256_of_file

DIRECTORY = "dropped"


def _texts(plan: Plan) -> dict[tuple[int, int], str]:
    return {
        (task, int(ordinal)): text
        for task in range(plan.num_tasks)
        for ordinal, text in read_marker(plan, "split", task)["sample_texts"].items()
    }


def _position(plan: Plan, position: dict, texts: dict[tuple[int, int], str]) -> dict:
    return {
        "path": plan.inputs[position["file"]].path,
        "row": position["row"],
        "part": position["part"],
        "text": texts[(position["task"], position["ordinal"])],
    }


def collect(plan: Plan) -> dict[str, list[dict]]:
    """reason → its sample records, in (source, key) order."""
    limit = plan.config.samples.per_source
    rows = [s for task in range(plan.num_tasks) for s in read_marker(plan, "clean", task)["dropped_samples"]]
    out: dict[str, list[dict]] = {}
    for record in smallest_per_group(rows, lambda r: f"{r['reason']}\0{r['source']}", limit):
        out.setdefault(record["reason"], []).append(record)
    samples = read_marker(plan, "group", 0)["samples"]
    texts = _texts(plan)
    if samples["duplicates"]:
        out["duplicates"] = [
            {
                "reason": "duplicate",
                "source": s["source"],
                "removed": _position(plan, s["removed"], texts),
                "kept": _position(plan, s["kept"], texts),
            }
            for s in samples["duplicates"]
        ]
    if samples["near_duplicates"]:
        out["near_duplicates"] = [
            {
                "reason": "near_duplicate",
                "source": s["source"],
                "size": s["size"],
                "members": [_position(plan, m, texts) for m in s["members"]],
            }
            for s in samples["near_duplicates"]
        ]
    return out


def write_dropped_samples(plan: Plan) -> tuple[dict, list[dict]]:
    """Write the files; returns (report section, file entries with size and sha256 for `verify`)."""
    section, files = {}, []
    for reason, records in sorted(collect(plan).items()):
        path = plan.output / DIRECTORY / f"{reason}.jsonl.zst"
        with DocumentWriter(path) as writer:
            for record in records:
                writer.write_record(record)
        relative = str(path.relative_to(plan.output))
        section[reason] = {
            "path": relative,
            "samples": len(records),
            "sources": len({r["source"] for r in records}),
        }
        files.append({"path": relative, "bytes": path.stat().st_size, "sha256": sha256_of_file(path)})
    return section, files
