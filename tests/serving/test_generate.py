"""Each decoding mode on a tiny trained model: shapes, seeded determinism, stopping at EOS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.model.loading import load_model
from pipeline.serving.generate import GenerationSettings, generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir):
    return tiny_model_dir


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model(model_dir, device="cpu", dtype="fp32")


def manual_greedy(model, ids: list[int], steps: int, eos: int) -> list[int]:
    new = []
    with torch.no_grad():
        for _ in range(steps):
            token = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            new.append(token)
            if token == eos:
                break
    return new


def test_greedy_is_the_argmax_chain(loaded):
    model, tokenizer = loaded
    settings = GenerationSettings(strategy="greedy", max_new_tokens=12)
    [out] = generate(model, tokenizer, "中国", settings)
    prompt = [2] + tokenizer("中国", add_special_tokens=False)["input_ids"]  # EOS = document start
    assert out.token_ids == manual_greedy(model, prompt, 12, eos=2)
    assert out.text == tokenizer.decode(out.token_ids, skip_special_tokens=True)


def test_sampling_is_repeatable_with_a_seed(loaded):
    model, tokenizer = loaded
    settings = GenerationSettings(
        strategy="sample", max_new_tokens=16, temperature=1.3, top_k=50, top_p=0.95, num_sequences=3, seed=11
    )
    first = generate(model, tokenizer, "的", settings)
    again = generate(model, tokenizer, "的", settings)
    other = generate(model, tokenizer, "的", dataclass_replace(settings, seed=12))
    assert len(first) == 3 and all(1 <= len(c.token_ids) <= 16 for c in first)
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    assert [c.token_ids for c in first] != [c.token_ids for c in other]


def test_top_k_one_equals_greedy(loaded):
    model, tokenizer = loaded
    greedy = generate(model, tokenizer, "人", GenerationSettings(strategy="greedy", max_new_tokens=10))
    top1 = generate(model, tokenizer, "人", GenerationSettings(strategy="sample", top_k=1, max_new_tokens=10, seed=3))
    assert top1[0].token_ids == greedy[0].token_ids


def test_beam_search_returns_distinct_ranked_sequences(loaded):
    model, tokenizer = loaded
    settings = GenerationSettings(strategy="beam", num_beams=4, num_sequences=3, max_new_tokens=8)
    beams = generate(model, tokenizer, "中", settings)
    assert len(beams) == 3 and len({tuple(b.token_ids) for b in beams}) == 3
    assert generate(model, tokenizer, "中", settings)[0].token_ids == beams[0].token_ids  # deterministic


def test_repetition_penalty_changes_the_greedy_chain(loaded):
    model, tokenizer = loaded
    plain = generate(model, tokenizer, "中国", GenerationSettings(strategy="greedy", max_new_tokens=30))[0]
    penalised = generate(
        model, tokenizer, "中国", GenerationSettings(strategy="greedy", max_new_tokens=30, repetition_penalty=3.0)
    )[0]
    assert len(set(penalised.token_ids)) >= len(set(plain.token_ids))
    assert penalised.token_ids != plain.token_ids


def eos_loving_copy(model_dir: Path):
    """The tiny model rewired so that after any input EOS (id 2) is by far the likeliest next token."""
    model, tokenizer = load_model(model_dir, device="cpu", dtype="fp32")
    with torch.no_grad():
        direction = torch.zeros(model.config.n_embd)
        direction[0] = 3.0
        model.transformer.wte.weight[2] = direction  # tied: also the output row of EOS
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(direction)
    return model, tokenizer


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_every_mode_stops_at_eos(model_dir, strategy):
    model, tokenizer = eos_loving_copy(model_dir)
    settings = GenerationSettings(
        strategy=strategy, max_new_tokens=20, seed=0, num_sequences=2 if strategy != "greedy" else 1
    )
    continuations = generate(model, tokenizer, "中国", settings)
    assert continuations[0].token_ids == [2] and continuations[0].text == ""
    for continuation in continuations:  # a lower-ranked beam may take one other token first, then EOS
        assert continuation.stopped_at_eos and continuation.token_ids[-1] == 2 and len(continuation.token_ids) <= 2


def test_settings_are_validated():
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(temperature=0).check()
    with pytest.raises(ValueError, match="num_beams"):
        GenerationSettings(strategy="beam", num_beams=2, num_sequences=3).check()


def test_long_requests_are_kept_inside_the_model_positions(loaded):
    model, tokenizer = loaded  # 64 positions
    [out] = generate(model, tokenizer, "中国" * 100, GenerationSettings(strategy="greedy", max_new_tokens=500))
    assert 1 <= len(out.token_ids) <= 63


def test_command_line_streams_and_loops(model_dir, loaded):
    model, tokenizer = loaded
    expected = generate(model, tokenizer, "中国", GenerationSettings(strategy="greedy", max_new_tokens=12))[0].text
    base = [
        sys.executable,
        "-m",
        "pipeline",
        "generate",
        "--model",
        str(model_dir),
        "--device",
        "cpu",
        "--strategy",
        "greedy",
        "--max-new-tokens",
        "12",
    ]
    done = subprocess.run(base + ["--prompt", "中国"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("中国" + expected).strip()
    loop = subprocess.run(base + ["--interactive"], input="中国\n中国\n\n", capture_output=True, text=True, cwd=ROOT)
    assert loop.returncode == 0, loop.stderr
    assert loop.stdout.count("中国" + expected.strip()) == 2 and loop.stdout.count("prompt> ") == 3
    beams = subprocess.run(
        base[:-4] + ["--strategy", "beam", "--num-sequences", "2", "--prompt", "中"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert beams.returncode == 0 and beams.stdout.startswith("[1] 中") and "\n[2] 中" in beams.stdout


def dataclass_replace(settings, **changes):
    import dataclasses

    return dataclasses.replace(settings, **changes)


def test_streaming_delivers_tokens_one_at_a_time(loaded):
    from transformers import TextIteratorStreamer

    model, tokenizer = loaded
    settings = GenerationSettings(strategy="sample", max_new_tokens=20, seed=9)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    pieces: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: pieces.extend(streamer))
    reader.start()
    [out] = generate(model, tokenizer, "中国", settings, streamer=streamer)
    reader.join(timeout=60)
    assert "".join(pieces) == out.text  # the streamed text is the answer
    assert len([p for p in pieces if p]) > 1  # and it arrived in several pieces, not at the end
    with pytest.raises(ValueError, match="streaming"):
        generate(model, tokenizer, "中国", GenerationSettings(strategy="beam"), streamer=streamer)
