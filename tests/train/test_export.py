"""Export round trip: real 2-rank DeepSpeed training (gloo, CPU) → checkpoint → HF directory
whose logits equal the engine's, loadable by from_pretrained and the text-generation pipeline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.train.export import ExportError, export_hf
from tests.helpers.tiny_lm import train_tokenizer_dir
from tests.helpers.train_fixtures import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return train_tokenizer_dir(tmp_path_factory.mktemp("tok") / "tokenizer")


def train_with_deepspeed(run_dir: Path, tokenizer_dir: Path, stage: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),  # not a fixed one: a concurrent suite on this machine may hold it
        str(ROOT / "tests/helpers/ds_export_run.py"),
        str(run_dir),
        str(tokenizer_dir),
        str(stage),
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("stage", [0, 2, 3])
def test_export_matches_engine_and_loads_everywhere(tmp_path, tokenizer_dir, stage):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    run_dir = tmp_path / "run"
    train_with_deepspeed(run_dir, tokenizer_dir, stage)
    out = export_hf(run_dir)
    assert out == run_dir / "hf"
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.model").is_file()

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # still tied
    engine = torch.load(run_dir / "engine_logits.pt")
    with torch.no_grad():
        logits = model(input_ids=engine["input_ids"]).logits
    torch.testing.assert_close(logits, engine["logits"], rtol=0, atol=1e-5)
    # the weights moved away from the initialisation, so the comparison is not trivially true
    fresh = AutoModelForCausalLM.from_config(model.config).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(input_ids=engine["input_ids"]).logits, logits, atol=1e-3)

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id) == (2, 3, 1)
    assert model.generation_config.eos_token_id == 2 and model.generation_config.pad_token_id == 3
    generator = pipeline("text-generation", model=str(out), device="cpu")
    text = generator("中国人", max_new_tokens=8, do_sample=False)[0]["generated_text"]
    assert text.startswith("中国人") and len(text) > len("中国人")


@pytest.mark.slow
def test_reexport_replaces_atomically_and_tags_resolve(tmp_path, tokenizer_dir):
    run_dir = tmp_path / "run"
    train_with_deepspeed(run_dir, tokenizer_dir, 1)
    first = export_hf(run_dir, tag="step3", out_dir=tmp_path / "exported")
    before = (first / "model.safetensors").read_bytes()
    (first / "stray.txt").write_text("from an older export")
    second = export_hf(run_dir, out_dir=tmp_path / "exported")  # the same tag via `latest`
    assert (second / "model.safetensors").read_bytes() == before  # deterministic
    assert not (second / "stray.txt").exists()  # replaced as a whole, not merged
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries left
    with pytest.raises(ExportError, match="step999"):
        export_hf(run_dir, tag="step999")
    # the form: the checkpoint directory itself, through the launcher
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "export",
            str(run_dir / "checkpoints" / "step3"),
            "--out",
            str(tmp_path / "by_path"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "by_path" / "model.safetensors").read_bytes() == before


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ExportError, match="latest"):
        export_hf(tmp_path)


def test_launcher_exports(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipeline", "export", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "no complete checkpoint" in result.stderr
