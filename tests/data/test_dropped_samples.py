"""OUT/dropped/: bounded examples of what preparation dropped, the same for any task count.

Expected rows come from outside the code under test: the generator's record of what it
planted, rows this test plants itself, and the raw CSV cells read back with the csv reader."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

from pipeline.core.typed_config import from_dict
from pipeline.data.executor import run_stage_locally
from pipeline.data.prepare_config import PrepareConfig
from pipeline.data.prepare_plan import create_plan, remove_outputs
from pipeline.data.stages import STAGE_NAMES, STAGES
from pipeline.data.stages.dropped import write_dropped_samples
from pipeline.formats.csv_corpus import FileReport, read_csv_file
from pipeline.formats.documents import read_records
from pipeline.formats.manifest import load_manifest, verify_files
from tests.conftest import prepare_args, run_pipeline

PER_SOURCE = 8  # SamplesConfig's default
PLANTED_SHORT = "  <b>短句</b>  "  # too short once cleaned; the sample must show it raw


def samples(output: Path) -> dict[str, list[dict]]:
    return {p.name.split(".")[0]: list(read_records(p)) for p in sorted((output / "dropped").glob("*.jsonl.zst"))}


def test_samples_are_bounded_and_show_the_raw_rows(corpus, prepared):
    report = json.loads((prepared / "report.json").read_text())
    generation = json.loads((corpus / "generation.json").read_text())
    found = samples(prepared)
    # the test's own source names: the folder under the corpus root
    dropped_by_source: dict[tuple[str, str], int] = Counter()
    for entry in report["files"]:
        source = str(Path(entry["path"]).parent.relative_to(corpus))
        for reason, count in entry["dropped"].items():
            dropped_by_source[(reason, source)] += count
    shown = Counter(
        (r["reason"], r["source"]) for reason, rows in found.items() if reason != "duplicates" for r in rows
    )
    expected = {
        key: min(PER_SOURCE, n) for key, n in dropped_by_source.items() if key[0] not in ("malformed", "empty_text")
    }
    assert shown == expected
    # every source where the generator planted English rows shows some under low_cjk_share
    english = {str(Path(f["path"]).parent) for f in generation["files"] if f.get("counts", {}).get("english")}
    assert english and english <= {r["source"] for r in found["low_cjk_share"]}
    # the texts are the rows before cleaning, cut to max_chars
    raw: dict[str, dict[int, str]] = {}
    for rows in found.values():
        for record in rows:
            if "text" not in record:
                continue
            if record["path"] not in raw:
                raw[record["path"]] = {
                    d.row: d.text
                    for d in read_csv_file(
                        record["path"], from_dict(PrepareConfig, {}).read, FileReport(path=record["path"])
                    )
                }
            original = raw[record["path"]][record["row"]]
            assert record["chars"] == len(original)
            assert record["text"] == (original if len(original) <= 400 else original[:400] + "…")
    # duplicate pairs: the removed copy's cleaned text is the kept one's
    duplicates_by_source: dict[str, int] = Counter()
    for entry in report["files"]:
        duplicates_by_source[str(Path(entry["path"]).parent.relative_to(corpus))] += entry["duplicates"]
    shown = Counter(pair["source"] for pair in found["duplicates"])
    assert shown == {s: min(PER_SOURCE, n) for s, n in duplicates_by_source.items() if n}
    for pair in found["duplicates"]:
        assert pair["removed"]["text"] == pair["kept"]["text"]
        assert (pair["kept"]["path"], pair["kept"]["row"]) < (pair["removed"]["path"], pair["removed"]["row"])


def plant(corpus: Path, copy: Path) -> tuple[str, str]:
    """A copy of the corpus plus `planted/part-00000.csv`: a too-short row (row 0) and an exact
    copy of a row of the first file (row 1). Returns (planted path, copied text)."""
    shutil.copytree(corpus, copy)
    first = sorted(copy.rglob("*.csv"))[0]
    with open(first, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))

    def plain_chinese(text: str) -> bool:
        return len(text) > 60 and sum("\u4e00" <= c <= "\u9fff" for c in text) > 0.6 * len(text)

    long_text = next(r["content"] for r in rows if plain_chinese(r["content"]) and "<" not in r["content"])
    (copy / "planted").mkdir()
    path = copy / "planted" / "part-00000.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "content"])
        writer.writerows([[1, PLANTED_SHORT], [2, long_text]])
    return str(path), long_text


def run_and_sample(pattern: str, output: Path, num_tasks: int, buckets: int) -> Path:
    config = from_dict(
        PrepareConfig,
        {"dedup": {"num_buckets": buckets, "near": {"enabled": True}}, "split": {"min_validation_documents": 40}},
    )
    plan = create_plan([pattern], output, config, num_tasks=num_tasks)
    for stage in STAGES[: STAGE_NAMES.index("split") + 1]:
        run_stage_locally(plan, stage, workers=2, show_progress=False)
    write_dropped_samples(plan)
    return output


def test_samples_identical_for_1_and_7_tasks_and_planted_rows_show_up(corpus, tmp_path):
    planted, copied = plant(corpus, tmp_path / "corpus")
    pattern = f"{tmp_path / 'corpus'}/**/*.csv*"
    one = run_and_sample(pattern, tmp_path / "one", num_tasks=1, buckets=4)
    # 7 tasks over 17 files: every folder's rows are spread over several tasks
    seven = run_and_sample(pattern, tmp_path / "seven", num_tasks=7, buckets=7)
    files = sorted(p.name for p in (one / "dropped").iterdir())
    assert files == sorted(p.name for p in (seven / "dropped").iterdir())
    assert {"too_short.jsonl.zst", "duplicates.jsonl.zst", "near_duplicates.jsonl.zst"} <= set(files)
    for name in files:
        assert (one / "dropped" / name).read_bytes() == (seven / "dropped" / name).read_bytes(), name
    found = samples(one)
    for reason, rows in found.items():  # bounded per (reason, source)
        assert max(Counter(r["source"] for r in rows).values()) <= PER_SOURCE, reason
    short = [r for r in found["too_short"] if r["source"] == "planted"]
    assert [(r["path"], r["row"], r["text"]) for r in short] == [(planted, 0, PLANTED_SHORT)]
    pairs = [r for r in found["duplicates"] if r["source"] == "planted"]
    assert [(p["removed"]["path"], p["removed"]["row"]) for p in pairs] == [(planted, 1)]
    assert pairs[0]["kept"]["text"] == pairs[0]["removed"]["text"] == copied
    assert pairs[0]["kept"]["path"] != planted
    clusters = found["near_duplicates"]
    by_source = Counter(c["source"] for c in clusters)
    assert clusters and max(by_source.values()) <= PER_SOURCE
    for cluster in clusters:  # members of one cluster, in global input order, the first one kept
        members = [(m["path"], m["row"], m["part"]) for m in cluster["members"]]
        assert 2 <= len(members) <= min(4, cluster["size"]) and members == sorted(set(members))


def test_report_verify_and_force_cover_the_samples(corpus, prepared, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(prepared, output)
    result = run_pipeline("report", "--output", str(output))
    markdown = (output / "report.md").read_text()
    assert "What was dropped" in markdown and "### low_cjk_share" in markdown and "### duplicates" in markdown
    example = next(r for r in samples(output)["too_short"])
    assert f"`{example['path']}` row {example['row']}" in markdown
    assert not verify_files(load_manifest(output))
    victim = next((output / "dropped").iterdir())
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")  # same size, other bytes
    assert any(str(victim) in p and "sha256" in p for p in verify_files(load_manifest(output)))
    victim.unlink()  # the finalize marker records its size: the same prepare redoes it, byte-identical
    run_pipeline(*prepare_args(corpus, output))
    assert victim.read_bytes() == (prepared / "dropped" / victim.name).read_bytes()
    assert "dropped" in remove_outputs(output) and not (output / "dropped").exists()  # what --force deletes
    assert "wrote" in result.stdout
