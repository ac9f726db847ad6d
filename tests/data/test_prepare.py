"""End-to-end data preparation on a generated messy corpus: accounting, dedup, split, packing,
crash safety and determinism. Real subprocesses, real Arrow files, a real sentencepiece model."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.typed_config import from_dict
from pipeline.data.executor import run_stage_locally
from pipeline.data.prepare_config import PrepareConfig
from pipeline.data.prepare_plan import create_plan
from pipeline.data.stages import STAGE_NAMES, STAGES
from pipeline.formats.documents import read_records
from pipeline.formats.manifest import load_manifest, verify_files
from pipeline.formats.packed_shards import PackedBlocks
from tests.conftest import REPO, TEST_OVERRIDES, prepare_args, run_pipeline
from tests.helpers.prepared import split_documents, split_documents_by_task
from tokenizer import SentencePieceTokenizer


def tree_digest(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path → bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def docs(output: Path, split: str) -> list[dict]:
    return split_documents(output, split)


def test_report_accounts_for_every_row(prepared, corpus):
    report = json.loads((prepared / "report.json").read_text())
    generation = json.loads((corpus / "generation.json").read_text())
    assert report["inputs"]["files"] == len(list(corpus.rglob("*.csv*")))
    for entry in report["files"]:
        assert entry["rows_read"] == entry["rows_kept"] + sum(entry["dropped"].values()), entry["path"]
        assert (
            entry["documents"] == entry["duplicates"] + entry["near_duplicates"] + entry["train"] + entry["validation"]
        ), entry["path"]
    totals = report["totals"]
    assert totals["rows_read"] == sum(f["rows_read"] for f in report["files"]) > 0
    assert (
        totals["documents"]
        == totals["duplicates"] + totals["near_duplicates"] + totals["train_documents"] + totals["validation_documents"]
    )
    assert totals["duplicates"] > 0 and totals["dropped"]  # the generator plants both
    reasons = {e["reason"] for e in report["errors"]}
    assert {"empty_file", "missing_column"} <= reasons
    files = {str(Path(f["path"]).relative_to(corpus)): f for f in report["files"]}
    damaged = {kind: files[path] for kind, path in generation["damaged_shards"].items()}
    assert damaged["gbk"]["encoding"] in ("gb18030", "gbk")
    assert damaged["bom"]["encoding"] == "utf-8-sig"
    assert damaged["zst"]["compressed"] is True
    assert damaged["truncated"]["dropped"].get("malformed", 0) >= 1
    assert damaged["truncated"]["rows_kept"] > 0  # rows before the fault survive
    assert damaged["multiline"]["rows_kept"] > 0 and damaged["crlf"]["rows_kept"] > 0
    missing = damaged["no_content"]
    assert missing["rows_read"] == 0 and "content" in missing["error"]


def test_no_document_in_both_splits_and_no_duplicates(prepared):
    train = [r["text"] for r in docs(prepared, "train")]
    validation = [r["text"] for r in docs(prepared, "validation")]
    assert validation and train
    assert not set(train) & set(validation)
    assert len(set(train)) == len(train) and len(set(validation)) == len(validation)
    manifest = load_manifest(prepared)
    assert manifest.raw["splits"]["validation"]["documents"] == len(validation) >= 40


def test_the_tokenizer_is_trained_on_exactly_the_train_documents(prepared):
    """Its sample reads the train side's pieces from work/clean (no docs/ export needed)."""
    stats = json.loads((prepared / "work" / "markers" / "tokenizer" / "00000.json").read_text())["stats"]
    train = split_documents(prepared, "train")
    assert stats["sample"]["documents"] == len(train) == load_manifest(prepared).raw["splits"]["train"]["documents"]
    assert stats["sample"]["chars_seen"] <= sum(len(doc["text"]) for doc in train)  # line breaks are not sampled


def test_blocks_decode_back_to_the_cleaned_documents(corpus, prepared):
    manifest = load_manifest(prepared)
    tokenizer = SentencePieceTokenizer.load(manifest.tokenizer_dir)
    eos = manifest.eos_id
    folders = sorted({str(p.parent.relative_to(corpus)) for p in corpus.rglob("*.csv*")})
    for split in ("train", "validation"):
        by_task: dict[str, list[Path]] = {}
        for path in manifest.shard_paths(split):
            by_task.setdefault(path.name.split("-")[0], []).append(path)
        doc_tasks = split_documents_by_task(prepared, split)
        if split == "train":  # pack task i packs the train documents of split task i
            groups = [(by_task.get(f"{i:05d}", []), [r["text"] for r in docs]) for i, docs in enumerate(doc_tasks)]
        else:  # validation task s packs the validation documents of folder s, in order
            records = [r for docs in doc_tasks for r in docs]
            groups = [
                (
                    by_task.get(f"{s:05d}", []),
                    [r["text"] for r in records if Path(r["source"]).parent == corpus / folder],
                )
                for s, folder in enumerate(folders)
            ]
            sources = [folders[int(p.name[:5])] for p in manifest.shard_paths("validation") for _ in PackedBlocks([p])]
            assert manifest.block_sources("validation") == sources
        for shard_paths, texts in groups:
            stream = (
                np.concatenate([PackedBlocks(shard_paths).gather(range(len(PackedBlocks(shard_paths))))]).reshape(-1)
                if shard_paths
                else np.zeros(0, dtype=np.int64)
            )
            expected = (
                np.concatenate([np.array(ids + [eos]) for ids in tokenizer.encode_batch(texts)])
                if texts
                else np.zeros(0)
            )
            # the blocks are the task's token stream minus only its final partial block
            assert len(expected) - len(stream) < manifest.block_size
            np.testing.assert_array_equal(stream, expected[: len(stream)])
            # …and they decode back to the documents, in order, EOS between them
            segments = np.split(stream, np.flatnonzero(stream == eos) + 1)
            complete = [s[:-1] for s in segments if len(s) and s[-1] == eos]
            assert [tokenizer.decode(s.tolist()) for s in complete] == texts[: len(complete)]


def test_shards_open_with_datasets_and_mmap(prepared):
    import datasets

    manifest = load_manifest(prepared)
    path = manifest.shard_paths("train")[0]
    dataset = datasets.Dataset.from_file(str(path))
    blocks = PackedBlocks([path])
    assert len(dataset) == len(blocks) == manifest.shards("train")[0].blocks
    assert dataset[len(dataset) - 1]["input_ids"] == blocks[len(blocks) - 1].tolist()
    loaded = datasets.load_dataset(
        "arrow", data_files=[str(p) for p in manifest.shard_paths("validation")], split="train"
    )
    assert len(loaded) == manifest.num_blocks("validation")
    assert blocks[0].dtype == np.uint16 and manifest.dtype == "uint16"


def kept_keys(output: Path) -> dict[str, str]:
    return {
        f"{r['source']}:{r['row']}:{r['part']}": split for split in ("train", "validation") for r in docs(output, split)
    }


def test_dedup_and_split_do_not_depend_on_task_or_bucket_counts(corpus, tmp_path):
    config = from_dict(PrepareConfig, {"dedup": {"num_buckets": 4}, "split": {"min_validation_documents": 40}})
    results = []
    for num_tasks, buckets in ((1, 4), (2, 4), (5, 7)):
        config.dedup.num_buckets = buckets
        plan = create_plan([f"{corpus}/**/*.csv*"], tmp_path / f"t{num_tasks}", config, num_tasks=num_tasks)
        for stage in STAGES[: STAGE_NAMES.index("split") + 1]:  # clean, dedup, (near dedup: 0 tasks), split
            run_stage_locally(plan, stage, workers=2, show_progress=False)
        results.append(kept_keys(plan.output))
    assert results[0] and results[0] == results[1] == results[2]


def wait_for(predicate, process, timeout=120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.005)
    return False


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_when",
    [
        "work/markers/clean/00000.json",  # mid-clean (other clean tasks still running)
        "work/markers/split/00000.json",  # after dedup, during split
        "train",  # as soon as packing has written its first shard
    ],
)
def test_kill_9_then_rerun_gives_byte_identical_output(corpus, prepared, tmp_path, kill_when):
    output = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *prepare_args(corpus, output)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if kill_when == "train":
        hit = wait_for(lambda: any((output / "train").glob("*.arrow")), process)
    else:
        hit = wait_for(lambda: (output / kill_when).exists(), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert hit, f"prepare finished before reaching {kill_when}"
    assert not (output / "manifest.json").exists()
    run_pipeline(*prepare_args(corpus, output))
    resumed, reference = tree_digest(output), tree_digest(prepared)
    assert resumed.keys() == reference.keys()
    assert [k for k in resumed if resumed[k] != reference[k]] == []


def test_changed_config_or_inputs_are_refused(corpus, prepared, tmp_path):
    result = run_pipeline(*prepare_args(corpus, prepared), "clean.min_chars=3", check=False)
    assert result.returncode == 2
    assert "different inputs or config" in result.stderr and "clean.min_chars" in result.stderr
    copy = tmp_path / "corpus"
    shutil.copytree(corpus, copy)
    output = tmp_path / "out"
    init = ["init", "--input", f"{copy}/**/*.csv*", "--output", str(output), *TEST_OVERRIDES]
    run_pipeline(*init)
    run_pipeline(*init)  # the same plan again is fine
    victim = sorted(copy.rglob("*.csv"))[0]
    with open(victim, "ab") as handle:
        handle.write(b"\n")
    result = run_pipeline(*init, check=False)
    assert result.returncode == 2 and "input file(s) changed" in result.stderr
    run_pipeline(*init, "--force")


def test_status_and_single_tasks(prepared):
    result = run_pipeline("status", "--output", str(prepared))
    assert "complete" in result.stdout and "pending" not in result.stdout
    result = run_pipeline("task", "pack", "--task-id", "0", "--output", str(prepared))
    assert "already done" in result.stdout
    assert run_pipeline("tasks", "dedup", "--output", str(prepared)).stdout.strip() == "4"


def test_a_given_tokenizer_replaces_training(corpus, prepared, tmp_path):
    """… and 2 encode threads per pack task give the same shards as 1 (the `prepared` run)."""
    output = tmp_path / "out"
    run_pipeline(*prepare_args(corpus, output), "--tokenizer", str(prepared / "tokenizer"), "--threads", "2")
    given, trained = load_manifest(output), load_manifest(prepared)
    assert given.tokenizer_fingerprint == trained.tokenizer_fingerprint
    for split in ("train", "validation"):
        assert [s.sha256 for s in given.shards(split)] == [s.sha256 for s in trained.shards(split)]
    assert given.fingerprint == trained.fingerprint


def test_documents_are_written_only_on_request_and_then_hold_each_side(corpus, prepared, tmp_path):
    """split.write_documents: docs/{split}/{task}.jsonl.zst hold exactly the documents of that
    side (the ones the default run packed), listed in the manifest and re-hashed by verify."""
    assert not (prepared / "docs").exists()  # off by default: nothing downstream reads them
    assert load_manifest(prepared).raw["documents"] == {"train": [], "validation": []}
    output = tmp_path / "out"
    run_pipeline(
        *prepare_args(corpus, output), "split.write_documents=true", "--tokenizer", str(prepared / "tokenizer")
    )
    manifest, default = load_manifest(output), load_manifest(prepared)
    tasks = json.loads((output / "plan.json").read_text())["num_tasks"]
    for split in ("train", "validation"):
        files = sorted((output / "docs" / split).glob("*.jsonl.zst"))
        assert [f.name for f in files] == [f"{task:05d}.jsonl.zst" for task in range(tasks)]
        assert [e["path"] for e in manifest.raw["documents"][split]] == [f"docs/{split}/{f.name}" for f in files]
        exported = [record for f in files for record in read_records(f)]
        assert exported == [
            {key: doc[key] for key in ("text", "source", "row", "part", "file")}
            for doc in split_documents(prepared, split)
        ]
        assert [s.sha256 for s in manifest.shards(split)] == [s.sha256 for s in default.shards(split)]
    assert not verify_files(manifest)
    victim = output / "docs" / "validation" / "00000.jsonl.zst"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    assert any(str(victim) in problem for problem in verify_files(load_manifest(output)))


def test_nothing_readable_fails_clearly(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "empty.csv").write_bytes(b"")
    (corpus / "other.csv").write_text("id,title\n1,x\n", encoding="utf-8")
    result = run_pipeline(
        "prepare", "--input", f"{corpus}/*.csv", "--output", str(tmp_path / "out"), "--quiet", check=False
    )
    assert result.returncode != 0
    assert "no input row could be read" in result.stderr
    assert "empty.csv" in result.stderr and "other.csv" in result.stderr
    result = run_pipeline(
        "prepare", "--input", f"{tmp_path}/nothing/*.csv", "--output", str(tmp_path / "out2"), check=False
    )
    assert result.returncode == 2 and "no .csv or .csv.zst file matches" in result.stderr


def test_near_dedup_when_enabled_keeps_the_accounting_exact(corpus, prepared, tmp_path):
    output = tmp_path / "out"
    run_pipeline(*prepare_args(corpus, output), "dedup.near.enabled=true")
    near, exact = json.loads((output / "report.json").read_text()), json.loads((prepared / "report.json").read_text())
    totals = near["totals"]
    assert totals["near_duplicates"] > 0 and totals["duplicates"] == exact["totals"]["duplicates"]
    assert (
        totals["documents"]
        == totals["duplicates"] + totals["near_duplicates"] + totals["train_documents"] + totals["validation_documents"]
    )
    assert "near_map" in run_pipeline("status", "--output", str(output)).stdout
