"""`mixture:` weights per source: the packed train stream is one weighted epoch.

Expected token counts are computed here from the split's document files, the tokenizer and
the weighting rule as documented (docs/data.md), never from the pack stage's counters."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.formats.manifest import load_manifest
from pipeline.formats.packed_shards import PackedBlocks
from tests.conftest import TEST_OVERRIDES, prepare_args, run_pipeline
from tests.helpers.prepared import split_documents_by_task
from tokenizer import SentencePieceTokenizer

WEIGHTS = {"news_2019": 2.0, "history_wiki": 0.5}


def copies(weight: float, path: str, row: int) -> int:
    """The documented rule: floor(w) copies, one more iff the row's blake2b draw < w − floor(w)."""
    draw = int.from_bytes(hashlib.blake2b(f"{path}:{row}".encode(), digest_size=8).digest(), "big") / 2.0**64
    return math.floor(weight) + (draw < weight - math.floor(weight))


@pytest.fixture(scope="module")
def weighted(corpus, prepared, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("weighted") / "out"
    mixture = [f"mixture.{name}={weight}" for name, weight in WEIGHTS.items()]
    run_pipeline(*prepare_args(corpus, output), *mixture, "--tokenizer", str(prepared / "tokenizer"))
    return output


def folder(corpus: Path, path: str) -> str:
    return str(Path(path).parent.relative_to(corpus))


def test_tokens_per_source_per_epoch_match_the_weights(corpus, prepared, weighted):
    manifest = load_manifest(weighted)
    tokenizer = SentencePieceTokenizer.load(manifest.tokenizer_dir)
    block = manifest.block_size
    once: dict[str, int] = {}
    in_blocks: dict[str, int] = {}
    kept_rows = {"history_wiki": [0, 0]}  # rows with a copy, rows
    by_task = split_documents_by_task(weighted, "train")
    for task, records in enumerate(by_task):
        ids = tokenizer.encode_batch([r["text"] for r in records])
        sources = [folder(corpus, r["source"]) for r in records]
        counts = [copies(WEIGHTS.get(s, 1.0), r["source"], r["row"]) for s, r in zip(sources, records)]
        for s, doc in zip(sources, ids):
            once[s] = once.get(s, 0) + len(doc) + 1
        rows = {(r["source"], r["row"]): c for s, r, c in zip(sources, records, counts) if s == "history_wiki"}
        kept_rows["history_wiki"][0] += sum(c > 0 for c in rows.values())
        kept_rows["history_wiki"][1] += len(rows)
        # the task's stream: pass k holds every document with more than k copies, in file order
        stream, owner = [], []
        for number in range(max(counts, default=0)):
            for s, doc, c in zip(sources, ids, counts):
                if c > number:
                    stream += [*doc, manifest.eos_id]
                    owner += [s] * (len(doc) + 1)
        shards = [p for p in manifest.shard_paths("train") if p.name[:5] == f"{task:05d}"]
        blocks = PackedBlocks(shards).gather(range(len(PackedBlocks(shards)))).reshape(-1) if shards else []
        assert len(stream) - len(blocks) < block  # only the final partial block is lost
        np.testing.assert_array_equal(blocks, np.array(stream[: len(blocks)]))
        for s in owner[: len(blocks)]:
            in_blocks[s] = in_blocks.get(s, 0) + 1
    tasks = len(by_task)
    unweighted = json.loads((prepared / "report.json").read_text())["sources"]
    for source, tokens in once.items():
        weight = WEIGHTS.get(source, 1.0)
        assert unweighted[source]["train_tokens"] == tokens  # the same documents as without weights
        if weight == int(weight):  # whole weights: exactly that many times, less at most a partial block per task
            assert weight * tokens - tasks * block < in_blocks.get(source, 0) <= weight * tokens, source
    kept, rows = kept_rows["history_wiki"]
    assert 0.4 < kept / rows < 0.6  # the 0.5 weight keeps about half of the rows, chosen by the row hash
    report = json.loads((weighted / "report.json").read_text())["sources"]
    assert {s: report[s]["train_tokens"] for s in once} == once
    assert report["news_2019"]["train_weighted_tokens"] == 2 * once["news_2019"]
    assert manifest.raw["sources"] == report
    # validation is never weighted: the same blocks as the unweighted run
    assert [s.sha256 for s in manifest.shards("validation")] == [
        s.sha256 for s in load_manifest(prepared).shards("validation")
    ]
    run_pipeline("report", "--output", str(weighted))
    assert "| news_2019 | " in (weighted / "report.md").read_text()


@pytest.mark.parametrize(
    "mixture,message",
    [
        ({"no_such_source": 2.0}, "mixture.no_such_source: matches no input file"),
        ({"news_*": 2.0, "news_2019": 0.5}, "both match"),
        ({"science_tech": 0.0}, "mixture.science_tech: weight must be in (0, 100]"),
    ],
)
def test_bad_mixture_rules_fail_before_any_work_naming_the_key(corpus, tmp_path, mixture, message):
    output = tmp_path / "out"
    overrides = [f"mixture.{k}={v}" for k, v in mixture.items()]
    result = run_pipeline(
        "init", "--input", f"{corpus}/**/*.csv*", "--output", str(output), *TEST_OVERRIDES, *overrides, check=False
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert not output.exists() or not any(output.iterdir())


@pytest.mark.slow
def test_training_on_weighted_data_resumes_bitwise(weighted, tmp_path):
    """The weighted stream is an ordinary packed train split: an interrupted and resumed run
    (SIGUSR1 at step 3) equals the uninterrupted one bit for bit, and every evaluation logs the
    held-out loss per source as well (`val_by_source`), equal across the resume."""
    from pipeline.train.hooks import ENV_SIGNAL_AT_STEP
    from tests.helpers.train_fixtures import (
        TINY_MODEL,
        audit_steps,
        read_jsonl,
        run_training,
        write_run_configs,
        write_yaml,
    )

    config = write_run_configs(tmp_path / "cfg", max_steps=6, eval_interval=3, eval_max_blocks=8)
    model = {**TINY_MODEL, "hf_config": {**TINY_MODEL["hf_config"], "n_positions": 128}}  # the test data's blocks
    write_yaml(tmp_path / "cfg" / "model.yaml", model)
    full = run_training(config, weighted, tmp_path / "full")
    assert full.returncode == 0, full.stdout[-4000:]
    cut = run_training(config, weighted, tmp_path / "cut", hooks={ENV_SIGNAL_AT_STEP: "3"})
    assert "exitcode  : 75" in cut.stdout, cut.stdout[-4000:]
    resumed = run_training(config, weighted, tmp_path / "cut")
    assert resumed.returncode == 0 and "resuming at step 3" in resumed.stdout, resumed.stdout[-4000:]
    reference, interrupted = audit_steps(tmp_path / "full"), audit_steps(tmp_path / "cut")
    assert sorted(interrupted) == sorted(reference) == list(range(1, 7))
    assert all(interrupted[step] == reference[step] for step in reference)
    losses = {
        run: [r["loss"] for r in read_jsonl(tmp_path / run / "metrics.jsonl") if r["kind"] == "train"]
        for run in ("full", "cut")
    }
    assert losses["cut"] == losses["full"]

    # The held-out loss per source: one entry per source among the scored blocks, tokens counted
    # here from the Arrow blocks themselves, and the same numbers after the resume.
    evals = {
        run: [
            {k: v for k, v in r.items() if k != "time"}
            for r in read_jsonl(tmp_path / run / "metrics.jsonl")
            if r["kind"] == "eval"
        ]
        for run in ("full", "cut")
    }
    assert [r["step"] for r in evals["full"]] == [3, 6] and evals["cut"] == evals["full"]
    manifest = load_manifest(weighted)
    blocks = PackedBlocks(manifest.shard_paths("validation"))
    scored = min(len(blocks), 8)
    sources = [entry.source for entry in manifest.shards("validation") for _ in range(entry.blocks)][:scored]
    expected: dict[str, int] = {}
    for index, source in enumerate(sources):
        expected[source] = expected.get(source, 0) + int((blocks.gather([index])[0, 1:] != 3).sum())  # 3: pad
    for record in evals["full"]:
        by_source = record["val_by_source"]
        assert {name: entry["val_tokens"] for name, entry in by_source.items()} == expected and len(expected) >= 2
        assert sum(entry["val_tokens"] for entry in by_source.values()) == record["val_tokens"]
        mean = sum(e["val_loss"] * e["val_tokens"] for e in by_source.values()) / record["val_tokens"]
        assert math.isclose(mean, record["val_loss"], rel_tol=1e-9)
