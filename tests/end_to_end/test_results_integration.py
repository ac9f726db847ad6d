"""The trainer's own run, used as a user would: train (2 ranks, real DeepSpeed) → export at the
end → evaluate the export → report → generate. The evaluation of the exported model must give
the trainer's held-out perplexity exactly: same blocks, same evaluator, consolidated weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.evaluation.model_eval import EvaluationRequest, evaluate
from pipeline.tools.report_plots import render_training_report
from tests.helpers.tiny_lm import make_data_dir, tiny_corpus, train_tokenizer_dir
from tests.helpers.train_fixtures import run_training, train_env

ROOT = Path(__file__).resolve().parents[2]
EVAL_MAX_BLOCKS = 12  # fewer than the validation split holds (as zh-3b1.yaml's 8,192 of ~30k)


@pytest.mark.slow
def test_trainer_export_evaluate_report_generate(tmp_path):
    docs = tiny_corpus(700, seed=5)
    data = make_data_dir(
        tmp_path / "data", train_tokenizer_dir(tmp_path / "tok", docs=docs), docs[:600], docs[600:], block_size=64
    )
    run_dir = tmp_path / "run"
    done = run_training(
        ROOT / "configs/train/tiny-cpu.yaml",
        data,
        run_dir,
        "max_steps=20",
        "eval_interval=10",
        f"eval_max_blocks={EVAL_MAX_BLOCKS}",
        "log_interval=5",
        "export_at_end=true",
        "tensorboard=false",
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:]

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last_eval = [r for r in records if r["kind"] == "eval"][-1]
    assert last_eval["step"] == 20
    # more validation blocks than eval_max_blocks: evaluate must pick the trainer's selection itself
    validation_blocks = json.loads((run_dir / "run.json").read_text())["validation"]["of"]
    assert validation_blocks > EVAL_MAX_BLOCKS
    result = evaluate(
        EvaluationRequest(model_dir=run_dir / "hf", data_dir=data, device="cpu", dtype="fp32", progress=False)
    )
    assert result["blocks"] == EVAL_MAX_BLOCKS and "the training run's eval selection" in result["selection"]
    assert result["tokens"] == last_eval["val_tokens"]
    assert result["perplexity"] == pytest.approx(last_eval["val_ppl"], rel=1e-9)
    assert result["accuracy"] == pytest.approx(last_eval["val_acc"], abs=1e-12)
    assert result["perplexity"] < result["unigram"]["perplexity"]
    everything = evaluate(
        EvaluationRequest(
            model_dir=run_dir / "hf", data_dir=data, device="cpu", dtype="fp32", progress=False, all_blocks=True
        )
    )
    assert everything["blocks"] == validation_blocks and everything["selection"].startswith("all ")

    report = render_training_report(run_dir)
    assert report["series"]["val_ppl"]["y"][-1] == last_eval["val_ppl"]
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "generate",
            "--model",
            str(run_dir / "hf"),
            "--prompt",
            "中国",
            "--strategy",
            "greedy",
            "--max-new-tokens",
            "8",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=train_env(),
    )
    assert generated.returncode == 0 and generated.stdout.startswith("中国"), generated.stderr
