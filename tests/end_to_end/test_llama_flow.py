"""The Llama-style family (RoPE, RMSNorm, SwiGLU: configs/model/llama-tiny.yaml) through the whole
README flow, as a user runs it: train on 2 ranks with real DeepSpeed → a scheduler's SIGUSR1 to
rank 0 at a random step → the same command resumes → export → evaluate → generate.

The SIGUSR1 is a real signal, sent by rank 0 to itself right after the chosen step (the test hook
ZH_PRETRAIN_TEST_SIGNAL_AT_STEP): a signal from outside, timed by watching metrics.jsonl, can land
after the last of the 16 steps on a fast machine, and the run then rightly finishes. Signals from
outside at random moments are the trainer fault runner's job (tests/faults/).

The resumed run must equal an uninterrupted one bit for bit (per-step losses), and the evaluation
of the export must give the trainer's own held-out perplexity."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.evaluation.model_eval import EvaluationRequest, evaluate
from pipeline.train.hooks import ENV_SIGNAL_AT_STEP
from tests.helpers.tiny_lm import make_data_dir, tiny_corpus, train_tokenizer_dir
from tests.helpers.train_fixtures import REPO, read_jsonl, train_command, train_env

pytestmark = pytest.mark.slow
STEPS = 16
OVERRIDES = [
    "model_config=configs/model/llama-tiny.yaml",
    "model.hf_config.max_position_embeddings=64",
    f"max_steps={STEPS}",
    "micro_batch_size=4",
    "eval_interval=8",
    "log_interval=1",
    "checkpoint_interval_steps=100",
    "tensorboard=false",
    "export_at_end=true",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("llama")
    docs = tiny_corpus(700, seed=5)
    tokenizer = train_tokenizer_dir(root / "tok", docs=docs)
    return make_data_dir(root / "data", tokenizer, docs[:600], docs[600:], block_size=64)


def losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]


def train(data: Path, run: Path, signal_after_step: int | None = None) -> subprocess.CompletedProcess:
    command = train_command(REPO / "configs/train/tiny-cpu.yaml", data, run, *OVERRIDES)
    hooks = {} if signal_after_step is None else {ENV_SIGNAL_AT_STEP: str(signal_after_step)}
    return subprocess.run(command, env=train_env(**hooks), cwd=REPO, capture_output=True, text=True, timeout=600)


def test_llama_train_preempt_resume_export_evaluate_generate(data, tmp_path):
    full = train(data, tmp_path / "full")
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    assert json.loads((tmp_path / "full/hf/config.json").read_text())["model_type"] == "llama"

    stop_after = random.Random().randint(2, STEPS - 4)
    cut = tmp_path / "cut"
    code = train(data, cut, signal_after_step=stop_after).returncode
    assert code != 0, f"the run was not interrupted (signal after step {stop_after})"  # torchrun: a rank exited 75
    assert json.loads((cut / "status.json").read_text())["exit_code"] == 75, f"signal after step {stop_after}"
    resumed = train(data, cut)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming at step" in resumed.stdout + resumed.stderr
    assert losses(cut) == losses(tmp_path / "full"), f"signal after step {stop_after}"
    first, last = losses(cut)[0][1], losses(cut)[-1][1]
    assert first > last  # it learns

    evals = [r for r in read_jsonl(cut / "metrics.jsonl") if r["kind"] == "eval"]
    assert evals[-1]["val_ppl"] < evals[0]["val_ppl"]  # held-out perplexity falls (8 → 16 steps)
    last_eval = evals[-1]
    result = evaluate(
        EvaluationRequest(model_dir=cut / "hf", data_dir=data, device="cpu", dtype="fp32", progress=False)
    )
    assert result["perplexity"] == pytest.approx(last_eval["val_ppl"], rel=1e-9)

    generated = subprocess.run(
        [sys.executable, "-m", "pipeline", "generate", "--model", str(cut / "hf"), "--prompt", "中国"]
        + ["--strategy", "greedy", "--max-new-tokens", "8", "--device", "cpu"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=train_env(),
    )
    assert generated.returncode == 0 and generated.stdout.startswith("中国"), generated.stderr
