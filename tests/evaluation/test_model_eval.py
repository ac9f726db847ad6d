"""`python -m pipeline evaluate` on a tiny trained model, against an independent explicit-loop computation."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.evaluation.model_eval import EvaluationRequest, evaluate, pack_text
from pipeline.formats.packed_shards import PackedBlocks
from tests.helpers.tiny_lm import make_data_dir, make_model_dir, tiny_corpus, train_tokenizer_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval")
    docs = tiny_corpus(600, seed=1)
    tokenizer_dir = train_tokenizer_dir(base / "tokenizer", docs=docs)
    model_dir = make_model_dir(base / "model", tokenizer_dir, docs[:500])
    data_dir = make_data_dir(base / "data", tokenizer_dir, docs[:500], docs[500:])
    return {"model": model_dir, "data": data_dir, "docs": docs, "base": base}


def explicit_scores(model_dir: Path, blocks: np.ndarray) -> tuple[float, float, int]:
    """Perplexity and accuracy the slow, obvious way: one block at a time, position by position."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    nll, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for block in blocks:
            logits = model(input_ids=torch.tensor(block[None], dtype=torch.long)).logits[0]
            for position in range(len(block) - 1):
                log_probs = torch.log_softmax(logits[position].double(), dim=-1)
                target = int(block[position + 1])
                nll -= float(log_probs[target])
                correct += int(int(log_probs.argmax()) == target)
                count += 1
    return math.exp(nll / count), correct / count, count


def explicit_unigram(reference: list[int], evaluated: list[int], vocab: int = 600) -> float:
    counts = Counter(reference)
    total = len(reference)
    nll = -sum(math.log((counts[t] + 1) / (total + vocab)) for t in evaluated)
    return math.exp(nll / len(evaluated))


def test_packed_validation_matches_explicit_loop(world):
    result = evaluate(
        EvaluationRequest(model_dir=world["model"], data_dir=world["data"], micro_batch_size=3, progress=False)
    )
    blocks = np.stack(list(PackedBlocks(sorted((world["data"] / "validation").glob("*.arrow")))))
    perplexity, accuracy, count = explicit_scores(world["model"], blocks)
    assert result["tokens"] == count == blocks.shape[0] * (blocks.shape[1] - 1)
    assert result["perplexity"] == pytest.approx(perplexity, rel=1e-5)
    assert result["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    train = np.stack(list(PackedBlocks(sorted((world["data"] / "train").glob("*.arrow")))))
    expected_unigram = explicit_unigram(train.reshape(-1).tolist(), blocks[:, 1:].reshape(-1).tolist())
    assert result["unigram"]["perplexity"] == pytest.approx(expected_unigram, rel=1e-9)
    assert result["unigram"]["source"].startswith("train split")
    # the trained model has learned something a unigram model cannot
    assert result["perplexity"] < 0.7 * result["unigram"]["perplexity"]


def test_max_blocks_limits_the_work(world):
    result = evaluate(EvaluationRequest(model_dir=world["model"], data_dir=world["data"], max_blocks=2, progress=False))
    assert result["blocks"] == 2 and result["tokens"] == 2 * 31


def test_csv_packed_on_the_fly_matches_explicit_loop(world, tmp_path):
    from transformers import AutoTokenizer

    csv_path = tmp_path / "held_out.csv"
    import csv

    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "content"])
        for i, doc in enumerate(world["docs"][500:560]):
            writer.writerow([i, doc])
    result = evaluate(EvaluationRequest(model_dir=world["model"], text_file=csv_path, block_size=48, progress=False))
    tokenizer = AutoTokenizer.from_pretrained(world["model"])
    stream = [t for doc in world["docs"][500:560] for t in tokenizer(doc, add_special_tokens=False)["input_ids"] + [2]]
    blocks = np.asarray(stream[: len(stream) // 48 * 48]).reshape(-1, 48)
    perplexity, accuracy, count = explicit_scores(world["model"], blocks)
    assert (result["documents"], result["tail_tokens_left_out"]) == (60, len(stream) % 48)
    assert result["tokens"] == count
    assert result["perplexity"] == pytest.approx(perplexity, rel=1e-5)
    assert result["accuracy"] == pytest.approx(accuracy, abs=1e-9)
    own = blocks[:, 1:].reshape(-1).tolist()
    assert result["unigram"]["perplexity"] == pytest.approx(explicit_unigram(own, own), rel=1e-9)


def test_text_file_blocks_default_to_model_positions(world, tmp_path):
    from transformers import AutoTokenizer

    text = tmp_path / "docs.txt"
    text.write_text("\n\n".join(world["docs"][:80]), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(world["model"])
    blocks, packing = pack_text(text, tokenizer, 64)
    assert blocks.shape[1] == 64 and packing["documents"] == 80
    result = evaluate(EvaluationRequest(model_dir=world["model"], text_file=text, progress=False))
    assert result["block_size"] == 64  # min(512, the tiny model's 64 positions)


def test_command_line_writes_json_and_refuses_bad_input(world, tmp_path):
    out = tmp_path / "eval.json"
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "evaluate",
        "--model",
        str(world["model"]),
        "--data",
        str(world["data"]),
        "--output",
        str(out),
        "--device",
        "cpu",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    written = json.loads(out.read_text())
    assert json.loads(done.stdout) == written
    assert written["device"] == "cpu" and written["dtype"] == "float32"
    assert "evaluate" in done.stderr  # the progress bar
    assert (
        f"perplexity {written['perplexity']:.2f}" in done.stderr
        and f"vs unigram {written['unigram']['perplexity']:.2f}" in done.stderr
    )
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("中国", encoding="utf-8")
    bad = subprocess.run(command[:6] + ["--text", str(tiny)], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "fewer than one block" in bad.stderr


def test_a_model_with_another_tokenizer_is_refused(world, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(world["model"], model)
    other = train_tokenizer_dir(tmp_path / "other_tokenizer", docs=tiny_corpus(600, seed=9))
    shutil.copy(other / "tokenizer.model", model / "tokenizer.model")
    with pytest.raises(ValueError, match="differs from"):
        evaluate(EvaluationRequest(model_dir=model, data_dir=world["data"], progress=False))
    # the same tokenizer retrained from the same text (other bookkeeping bytes) is accepted
    same = train_tokenizer_dir(tmp_path / "same_tokenizer", docs=world["docs"])
    shutil.copy(same / "tokenizer.model", model / "tokenizer.model")
    assert (
        evaluate(EvaluationRequest(model_dir=model, data_dir=world["data"], max_blocks=1, progress=False))["blocks"]
        == 1
    )


def test_csv_is_read_by_the_pipelines_reader_in_any_encoding(world, tmp_path):
    """GBK and zstd CSVs (which a plain utf-8 csv.DictReader cannot read) give the same blocks as the
    same documents in a text file; a missing column is a clear error naming the file's columns."""
    import csv
    import io

    import zstandard
    from transformers import AutoTokenizer

    docs = world["docs"][:40]
    tokenizer = AutoTokenizer.from_pretrained(world["model"])
    text = tmp_path / "docs.txt"
    text.write_text("\n\n".join(docs), encoding="utf-8")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "content"])
    writer.writerows([i, doc] for i, doc in enumerate(docs))
    gbk = tmp_path / "docs.csv"
    gbk.write_bytes(buffer.getvalue().encode("gb18030"))
    compressed = tmp_path / "docs.csv.zst"
    compressed.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue().encode("utf-8")))
    expected, _ = pack_text(text, tokenizer, 32)
    for path in (gbk, compressed):
        blocks, packing = pack_text(path, tokenizer, 32)
        assert packing["documents"] == len(docs)
        assert np.array_equal(blocks, expected), path
    with pytest.raises(ValueError, match="no column 'text'; columns are: id, content"):
        pack_text(gbk, tokenizer, 32, column="text")
