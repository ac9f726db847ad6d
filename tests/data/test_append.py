"""`prepare --append`: new shards join a prepared corpus without redoing it.

Preparing A and then appending B gives the documents (text, source row, side of the split) of
one `prepare` over A+B, with duplicates removed across A and B; the earlier version's files
are untouched; the same append again is a no-op; a training run continues across the append
with every block once per epoch. Expected values come from the one-run preparation and from
the inputs as written here, never from the append's own counters."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from pipeline.formats.manifest import load_manifest
from tests.conftest import run_pipeline
from tests.helpers.prepared import cleaned_pieces, split_documents

# min_validation_documents 0: the threshold is validation_fraction's alone (docs/data.md: an
# append reuses version 1's threshold, so a raised one would differ from a one-run preparation);
# max_chars cuts rows into pieces, so rows of B that share a piece with A must take A's side
OVERRIDES = [
    "tokenizer.vocab_size=2000",
    "dedup.num_buckets=4",
    "split.min_validation_documents=0",
    "split.validation_fraction=0.1",
    "pack.block_size=128",
    "clean.max_chars=60",
]
LATE = ("science_tech", "zz_late")  # sources whose files arrive later; they sort after A's


def prepare(corpus: Path, output: Path, *extra: str, check: bool = True):
    return run_pipeline(
        "prepare", "--input", f"{corpus}/**/*.csv*", "--output", str(output), "--workers", "2", "--quiet", *extra,
        check=check,
    )  # fmt: skip


def write_late_source(corpus: Path) -> dict[str, list[str]]:
    """zz_late/part-00000.csv: copies of A rows (whole texts), A row texts with a new sentence
    appended (they share A's pieces), one text twice, and new texts."""
    a_texts = []
    for path in sorted((corpus / "history_wiki").glob("part-0000[01].csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            a_texts += [row["content"] for row in csv.DictReader(handle)][:40]
    copies = a_texts[:8]
    extended = [
        text.rstrip() + "\n后来的研究者又补充了一条新的记录，编号" + str(i) + "。"
        for i, text in enumerate(a_texts[8:30])
    ]
    fresh = [f"第{i}条新闻：今天城市里的科学家发布了关于能源与环境的第{i}份报告。" * 2 for i in range(30)]
    rows = copies + extended + fresh + fresh[:3]  # the last three repeat inside B
    folder = corpus / "zz_late"
    folder.mkdir()
    with (folder / "part-00000.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "content"])
        writer.writerows([i, text] for i, text in enumerate(rows))
    return {"copies": copies, "extended": extended, "fresh": fresh}


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict:
    from pipeline.tools.corpus_gen import generate_corpus

    base = tmp_path_factory.mktemp("append")
    corpus = base / "corpus"
    generate_corpus(corpus, 600_000, seed=1)
    planted = write_late_source(corpus)
    held = base / "held"
    held.mkdir()
    for name in LATE:  # A: the corpus before the late files arrived
        shutil.move(corpus / name, held / name)
    prepare(corpus, base / "grown", *OVERRIDES)
    shutil.copytree(base / "grown", base / "version1")  # what a run trained on before the append
    before = {p.relative_to(base / "grown"): p.read_bytes() for p in (base / "grown").rglob("*") if p.is_file()}
    for name in LATE:  # they arrive (a move keeps their size and mtime)
        shutil.move(held / name, corpus / name)
    appended = prepare(corpus, base / "grown", "--append")
    one_run = base / "one_run"
    prepare(corpus, one_run, *OVERRIDES, "--tokenizer", str(base / "grown" / "tokenizer"))
    return {
        "base": base,
        "corpus": corpus,
        "grown": base / "grown",
        "one_run": one_run,
        "version1": base / "version1",
        "before": before,
        "appended": appended,
        "planted": planted,
    }


def documents(output: Path, split: str) -> Counter:
    found = Counter()
    for version in [output, *sorted(output.glob("appends/*"))]:
        for record in split_documents(version, split):
            found[(record["source"], record["row"], record["text"])] += 1
    return found


def test_append_gives_the_documents_of_one_run_over_all_files(versions):
    grown, one_run = versions["grown"], versions["one_run"]
    assert "published version 2" in versions["appended"].stdout, versions["appended"].stdout
    for split in ("train", "validation"):
        ours, reference = documents(grown, split), documents(one_run, split)
        assert ours == reference, f"{split}: {len(ours - reference)} extra, {len(reference - ours)} missing"
        assert reference  # both sides hold documents
    # dedup across the versions: no text twice anywhere; the planted copies of A's rows are gone
    everything = documents(grown, "train") + documents(grown, "validation")
    assert max(Counter(text for _, _, text in everything).values()) == 1
    late_rows = {row for source, row, _ in everything if "/zz_late/" in source}
    assert late_rows.isdisjoint(range(8)), "a copy of an A row survived the append"
    assert late_rows >= set(range(30, 60)) and late_rows.isdisjoint(range(60, 63))  # fresh texts; B's own repeats


def pieces_by_row(output: Path) -> dict[tuple[str, int], set[str]]:
    """Every piece the cleaner made of each row (before dedup), from OUTPUT/work/clean."""
    rows: dict[tuple[str, int], set[str]] = {}
    for record in cleaned_pieces(output):
        rows.setdefault((record["source"], record["row"]), set()).add(record["text"])
    return rows


def test_rows_sharing_a_piece_with_the_earlier_version_take_its_side(versions):
    """A row of B that shares a piece with a row of A (zz_late rows 8..29 extend an A row by a
    sentence) loses that piece as a duplicate, and its other pieces sit on that A row's side."""
    grown = versions["grown"]
    a_pieces, b_pieces = pieces_by_row(grown), pieces_by_row(grown / "appends" / "0002")
    a_rows_of_piece: dict[str, set] = {}  # a planted duplicate inside A: several A rows hold the piece
    for row, texts in a_pieces.items():
        for text in texts:
            a_rows_of_piece.setdefault(text, set()).add(row)
    sides: dict[tuple[str, int], set[str]] = {}
    for split in ("train", "validation"):
        for source, row, _ in documents(grown, split):
            sides.setdefault((source, row), set()).add(split)
    checked = Counter()
    for row, texts in b_pieces.items():
        shared = set().union(*(a_rows_of_piece.get(t, set()) for t in texts))
        if not shared or row not in sides:
            continue
        a_sides = set().union(*(sides.get(a_row, set()) for a_row in shared))
        assert sides[row] <= a_sides, f"{row}: on {sides[row]}, the A rows it shares a piece with on {a_sides}"
        checked[tuple(sorted(sides[row]))] += 1
    assert sum(checked.values()) >= 10 and checked[("validation",)] >= 1, checked


def test_the_earlier_version_is_untouched_and_the_same_append_is_a_no_op(versions):
    grown, before = versions["grown"], versions["before"]
    for relative, data in before.items():
        if relative.name in ("manifest.json", "report.json") or relative.parts[0] == "work":
            continue  # version 1's finalize lists the new version; its work files are only read
        assert (grown / relative).read_bytes() == data, f"{relative} changed"
    # killed between a finalize marker and the removal of its journal (the journal lists the
    # temporaries of the task, renamed by then, and maybe a torn one): the no-op run tidies both
    leftovers = []
    for folder in (grown, grown / "appends" / "0002"):
        torn = folder / "work" / "torn.tmp"
        torn.write_text("half a file")
        journal = folder / "work" / "locks" / "finalize" / "00000.temps"
        journal.write_text(f"{folder / 'manifest.json.tmp'}\n{torn}\n")
        leftovers += [torn, journal]
    again = prepare(versions["corpus"], grown, "--append")
    assert "nothing to do" in again.stdout and "publishing" not in again.stdout
    assert [path for path in leftovers if path.exists()] == []
    # killed while publishing (version 1's finalize marker gone, the manifest still version 1's):
    # the next append publishes the finished version first
    published = (grown / "manifest.json").read_bytes()
    (grown / "work" / "markers" / "finalize" / "00000.json").unlink()
    (grown / "manifest.json").write_bytes(before[Path("manifest.json")])
    resumed = prepare(versions["corpus"], grown, "--append")
    assert "version 2 is prepared but not yet in manifest.json: publishing it" in resumed.stdout, resumed.stdout
    assert (grown / "manifest.json").read_bytes() == published
    manifest = load_manifest(grown)
    old = json.loads(before[Path("manifest.json")])
    assert [v["version"] for v in manifest.raw["versions"]] == [1, 2]
    assert manifest.raw["versions"][0]["fingerprint"] == old["fingerprint"]
    # version 1's shards come first, unchanged, so its block numbers stay valid
    paths = [s.path for s in manifest.shards("train")]
    assert paths[: len(old["splits"]["train"]["shards"])] == [s["path"] for s in old["splits"]["train"]["shards"]]
    assert all(p.startswith("appends/0002/") for p in paths[len(old["splits"]["train"]["shards"]) :])
    assert run_pipeline("verify", "--output", str(grown)).returncode == 0
    # report.md: version 1's table, then one row per appended version (6 files arrived late)
    run_pipeline("report", "--output", str(grown))
    late_files = len(list(versions["corpus"].glob("science_tech/*.csv*"))) + 1
    assert late_files == 6
    assert f"| 2 | `appends/0002` | {late_files} |" in (grown / "report.md").read_text(encoding="utf-8")


def test_mixture_weights_carry_over_to_new_files(versions, tmp_path):
    """Version 1 weighs history_wiki 2×; the appended files (other sources) need no rule of their
    own and must not trip over version 1's: new sources weigh 1, as in a one-run preparation."""
    corpus, output = versions["corpus"], tmp_path / "weighted"
    tokenizer = str(versions["grown"] / "tokenizer")
    first = ["prepare", "--input", f"{corpus}/[!sz]*/**/*.csv*", "--output", str(output), "--quiet"]
    run_pipeline(*first, *OVERRIDES, "mixture.history_wiki=2.0", "--tokenizer", tokenizer)
    appended = prepare(corpus, output, "--append")
    assert "published version 2" in appended.stdout
    sources = load_manifest(output).raw["sources"]
    assert sources["history_wiki"]["weight"] == 2.0 and sources["zz_late"]["weight"] == 1.0
    assert sources["zz_late"]["train_weighted_tokens"] == sources["zz_late"]["train_tokens"] > 0


def test_append_refuses_a_changed_file_and_config_overrides(versions, tmp_path):
    corpus = versions["corpus"]
    refused = prepare(corpus, versions["grown"], "--append", "clean.min_chars=3", check=False)
    assert refused.returncode != 0 and "--append takes the config" in refused.stderr
    # a copy of the prepared corpus whose first file was rewritten since
    copy = tmp_path / "copy"
    shutil.copytree(versions["grown"], copy)
    plan = json.loads((copy / "plan.json").read_text())
    first = Path(plan["inputs"][0]["path"])
    original = first.read_bytes()
    try:
        first.write_bytes(original + b"\n")
        changed = prepare(corpus, copy, "--append", check=False)
        assert changed.returncode != 0 and f"{first}: changed since version 1" in changed.stderr
        assert "Traceback" not in changed.stderr
    finally:
        first.write_bytes(original)
        stat = plan["inputs"][0]
        os.utime(first, ns=(stat["mtime_ns"], stat["mtime_ns"]))


def test_training_continues_across_the_append_exactly_once_per_epoch(versions, tmp_path):
    """Train on version 1, stop at step 2 (mid-epoch 0), resume on the grown corpus: epoch 0
    finishes over version 1's blocks, epoch 1 is a permutation of all blocks; a second stop after
    the growth resumes bitwise (the epoch sizes travel in the checkpoint)."""
    from pipeline.train.audit import check_exactly_once
    from pipeline.train.hooks import ENV_SIGNAL_AT_STEP
    from tests.helpers.train_fixtures import (
        TINY_MODEL,
        audit_steps,
        read_jsonl,
        run_training,
        write_run_configs,
        write_yaml,
    )

    steps = 40  # one rank: the cheapest launch; the stream does not depend on the world size
    config = write_run_configs(
        tmp_path / "cfg", micro_batch_size=16, max_steps=steps, eval_interval=steps, eval_max_blocks=8
    )
    write_yaml(
        tmp_path / "cfg" / "model.yaml", {**TINY_MODEL, "hf_config": {**TINY_MODEL["hf_config"], "n_positions": 128}}
    )
    old_blocks = load_manifest(versions["version1"]).num_blocks("train")
    new_blocks = load_manifest(versions["grown"]).num_blocks("train")
    global_batch = 16 * 2
    assert 2 * global_batch < old_blocks and (old_blocks + new_blocks) < steps * global_batch  # the plan of this test

    first = run_training(config, versions["version1"], tmp_path / "run", hooks={ENV_SIGNAL_AT_STEP: "2"}, nproc=1)
    assert "exitcode  : 75" in first.stdout, first.stdout[-3000:]
    shutil.copytree(tmp_path / "run", tmp_path / "run_twice")
    straight = run_training(config, versions["grown"], tmp_path / "run", nproc=1)
    assert straight.returncode == 0, straight.stdout[-4000:]
    assert "the corpus grew" in straight.stdout and "every epoch from 1 is a permutation" in straight.stdout
    audit = audit_steps(tmp_path / "run", world=1)
    assert sorted(audit) == list(range(1, steps + 1))
    # the documented rule, computed here: 2 steps × 32 samples end inside epoch 0, so epoch 0 keeps
    # version 1's blocks and every epoch from 1 holds all of them
    assert check_exactly_once(audit, new_blocks, schedule=[(0, old_blocks), (1, new_blocks)]) == 2
    epoch0 = [i for step in sorted(audit) for i in audit[step]["stream"]][:old_blocks]
    assert max(epoch0) < old_blocks

    stopped = run_training(config, versions["grown"], tmp_path / "run_twice", hooks={ENV_SIGNAL_AT_STEP: "24"}, nproc=1)
    assert "exitcode  : 75" in stopped.stdout, stopped.stdout[-3000:]
    finished = run_training(config, versions["grown"], tmp_path / "run_twice", nproc=1)
    assert finished.returncode == 0 and "resuming at step 24" in finished.stdout, finished.stdout[-4000:]
    again = audit_steps(tmp_path / "run_twice", world=1)
    assert all(again[step] == audit[step] for step in audit)
    losses = {
        run: [r["loss"] for r in read_jsonl(tmp_path / run / "metrics.jsonl") if r["kind"] == "train"]
        for run in ("run", "run_twice")
    }
    assert losses["run_twice"] == losses["run"] and len(losses["run"]) == steps
