"""Shared fixtures: a generated messy corpus and its prepared output, made once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Small but complete: every damaged-shard kind, duplicates, a vocabulary a 2k-token BPE can cover.
TEST_CORPUS_BYTES = 1_500_000
TEST_OVERRIDES = [
    "tokenizer.vocab_size=2000",
    "dedup.num_buckets=4",
    "split.min_validation_documents=40",
    "pack.block_size=128",
]


def run_pipeline(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """`python -m pipeline ARGS` in a real subprocess, from the repository root."""
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True, **kwargs
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"pipeline {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def prepare_args(corpus: Path, output: Path, *extra: str, workers: int = 2) -> list[str]:
    return [
        "prepare",
        "--input",
        f"{corpus}/**/*.csv*",
        "--output",
        str(output),
        "--workers",
        str(workers),
        "--quiet",
        *TEST_OVERRIDES,
        *extra,
    ]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    from pipeline.tools.corpus_gen import generate_corpus

    path = tmp_path_factory.mktemp("corpus") / "corpus"
    generate_corpus(path, TEST_CORPUS_BYTES, seed=1)
    return path


@pytest.fixture(scope="session")
def prepared(corpus, tmp_path_factory) -> Path:
    """The corpus prepared with the test overrides (2 workers, default task count)."""
    output = tmp_path_factory.mktemp("prepared") / "out"
    run_pipeline(*prepare_args(corpus, output))
    return output


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A briefly trained tiny GPT-2 saved like an export (weights + tokenizer), shared by the
    generation and chat tests."""
    from tests.helpers.tiny_lm import make_model_dir, tiny_corpus, train_tokenizer_dir

    base = tmp_path_factory.mktemp("tiny_model")
    docs = tiny_corpus(400, seed=4)
    return make_model_dir(base / "model", train_tokenizer_dir(base / "tokenizer", docs=docs), docs)
