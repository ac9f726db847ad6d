"""Tokenizer training and export: real sentencepiece models trained on generated varied text.

Checks: transformers' AutoTokenizer (offline) gives exactly sentencepiece's ids; decode(encode(x))
== x; no <unk> ever; fixed special ids; newline handling; deterministic re-training; clear
errors for impossible vocab sizes and for unusable pretrained directories.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sentencepiece as spm

from tokenizer import (
    SentencePieceTokenizer,
    TokenizerConfig,
    TokenizerDirError,
    TokenizerTrainingError,
    install_pretrained_tokenizer,
    tokenizer_fingerprint,
    train_tokenizer,
    validate_tokenizer_dir,
)
from tokenizer.hf import BPE_MODEL, load_hf_tokenizer

COMMON = [chr(c) for c in range(0x4E00, 0x4E00 + 1500)]
RARE_CJK = [chr(c) for c in range(0x4E00 + 1500, 0x9FFF, 7)]  # mostly unseen in training
TRADITIONAL = list("體學國們這個說時對會過發長電開關還與經讓進來東車書門問題萬無實點區聽應產從變")
EXT_B = [chr(c) for c in range(0x20000, 0x2A6DF, 97)]  # 4-byte UTF-8
EMOJI = ["😀", "🎉", "👍🏽", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🇨🇳", "❤️", "🧑\u200d💻", "🫠"]
PUNCT = list("，。！？、；：“”‘’（）《》【】…—～·「」")
LATIN = [
    "hello",
    "world",
    "GPT",
    "Transformer",
    "data",
    "the",
    "of",
    "Python",
    "deep",
    "learning",
    "<s>",
    "x",
    "Zürich",
    "naïve",
]
WHITESPACE = [" ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\r\n", "\u3000", "\u00a0"]
ODD = ["3.14", "2024年", "ｱ", "½", "ﬁ", "e\u0301", "①", "Ⅻ", "\u200b", "<0x41>", "</s>", "<pad>", "<unk>"]


def varied_line(rng: random.Random, rare: bool = True) -> str:
    parts = []
    for _ in range(rng.randint(1, 25)):
        r = rng.random()
        if r < 0.55:
            top = min(len(COMMON), int(rng.paretovariate(1.0) * 30))
            parts.append("".join(rng.choice(COMMON[:top]) for _ in range(rng.randint(1, 6))))
        elif r < 0.65:
            parts.append(rng.choice(PUNCT))
        elif r < 0.70:
            parts.append(rng.choice(TRADITIONAL))
        elif r < 0.73:
            parts.append(rng.choice(EXT_B + RARE_CJK) if rare else rng.choice(COMMON))
        elif r < 0.76:
            parts.append(rng.choice(EMOJI))
        elif r < 0.84:
            parts.append(rng.choice(["", " "]) + rng.choice(LATIN) + rng.choice(["", " "]))
        elif r < 0.90:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
        elif r < 0.96:
            parts.append(rng.choice(WHITESPACE))
        else:
            parts.append(rng.choice(ODD))
    return "".join(parts)


def test_lines(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [varied_line(rng) for _ in range(count)]


test_lines.__test__ = False  # a helper, not a test


def write_sample(path: Path, lines: int = 3000, seed: int = 0) -> Path:
    """A training sample as write_training_sample makes it: one sentence per line."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(lines):
            for sentence in varied_line(rng, rare=False).splitlines():
                if sentence.strip():
                    handle.write(sentence + "\n")
    return path


SMALL = dict(vocab_size=2500, num_threads=1)


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def trained(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    sample = write_sample(root / "sample.txt")
    config = TokenizerConfig(model_type=request.param, **SMALL)
    info = train_tokenizer(sample, root / "tokenizer", config)
    return root / "tokenizer", info, config


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_directory_is_complete_with_fixed_special_ids(trained):
    directory, info, config = trained
    names = sorted(p.name for p in directory.iterdir())
    assert names == [
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
        "training.json",
    ]
    assert info["vocab_size"] == config.vocab_size
    assert info["special_ids"] == {"unk": 0, "bos": 1, "eos": 2, "pad": 3}
    assert info["model_type"] == config.model_type
    sp = SentencePieceTokenizer.load(directory)
    assert (sp.unk_id, sp.bos_id, sp.eos_id, sp.pad_id, sp.vocab_size) == (0, 1, 2, 3, config.vocab_size)
    hf = load_hf_tokenizer(directory)
    assert type(hf).__name__ in ("PreTrainedTokenizerFast", "TokenizersBackend")
    assert (hf.unk_token_id, hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (0, 1, 2, 3)
    assert [hf.convert_ids_to_tokens(i) for i in range(4)] == ["<unk>", "<s>", "</s>", "<pad>"]
    assert len(hf) == config.vocab_size
    training = json.loads((directory / "training.json").read_text(encoding="utf-8"))
    assert training["fingerprint"] == info["fingerprint"] == tokenizer_fingerprint(directory)
    assert not list(directory.parent.glob(".tokenizer.*"))  # no temporaries left behind


def test_transformers_gives_sentencepiece_ids_and_both_round_trip(trained):
    directory, _, _ = trained
    sp = SentencePieceTokenizer.load(directory)
    hf = load_hf_tokenizer(directory)
    lines = test_lines(3000, seed=123)
    kinds = "".join(lines)
    assert all(any(ch in kinds for ch in group) for group in (EXT_B, TRADITIONAL, PUNCT, ["\n", "\t", "  "]))
    assert "👨\u200d👩\u200d👧\u200d👦" in kinds
    sp_ids = sp.encode_batch(lines)
    hf_ids = hf(lines)["input_ids"]
    mismatches = [(a, b) for a, b in zip(sp_ids, hf_ids) if a != b]
    if sp.model_type == BPE_MODEL:
        assert mismatches == []  # BPE: exactly the same ids, always
    else:
        # Unigram: only where two segmentations score the same (see equally_good), and rarely.
        assert all(sp.equally_good(a, b) for a, b in mismatches)
        assert len(mismatches) <= len(lines) // 100
    assert hf.batch_decode(hf_ids) == lines
    assert [sp.decode(ids) for ids in sp_ids] == lines
    assert hf.batch_decode(sp_ids) == lines
    assert all(sp.unk_id not in ids for ids in sp_ids)  # byte fallback: never <unk>
    used = {i for ids in sp_ids for i in ids}
    assert {sp.bos_id, sp.eos_id, sp.pad_id}.isdisjoint(used)  # nothing added, nothing matched in text


def test_unseen_characters_become_utf8_byte_pieces(trained):
    directory, _, _ = trained
    sp = SentencePieceTokenizer.load(directory)
    hf = load_hf_tokenizer(directory)
    for text in ["\n", "a\nb", "𪚥", "\U0002b740\U0002b741", "🫠🫠", "\x00", "\x7f"]:
        ids = sp.encode(text)
        assert 0 not in ids and sp.decode(ids) == text and hf(text)["input_ids"] == ids
    newline = sp.encode("\n")
    assert [sp.id_to_piece(i) for i in newline] == ["<0x0A>"]  # never in the sample: always a byte
    assert [sp.id_to_piece(i) for i in sp.encode("𪚥")] == ["<0xF0>", "<0xAA>", "<0x9A>", "<0xA5>"]


def test_digits_are_split_and_whitespace_kept(trained):
    directory, _, _ = trained
    sp = SentencePieceTokenizer.load(directory)
    pieces = [sp.id_to_piece(i) for i in sp.encode("价格20241231元")]
    assert [p for p in pieces if p.isdigit()] == list("20241231")
    for text in ["a  b", "  开头", "结尾   ", "\t制表\t", "全角　空格"]:
        assert sp.decode(sp.encode(text)) == text


def test_encode_batch_matches_single_encodes_without_bos_or_eos(trained):
    directory, _, _ = trained
    lines = test_lines(200, seed=5)
    sp = SentencePieceTokenizer.load(directory)
    two_threads = SentencePieceTokenizer.load(directory, num_threads=2)
    expected = [sp.encode(line) for line in lines]
    assert sp.encode_batch(lines) == expected == two_threads.encode_batch(lines)
    assert sp.encode_batch([]) == [] and sp.encode("") == []


def test_retraining_is_byte_identical_and_fingerprint_stable(trained, tmp_path):
    directory, info, config = trained
    (tmp_path / "elsewhere").mkdir()
    sample = write_sample(tmp_path / "elsewhere" / "sample.txt")
    again = train_tokenizer(sample, tmp_path / "again", config)
    assert again == info
    for name in (
        "tokenizer.model",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "training.json",
    ):
        assert (tmp_path / "again" / name).read_bytes() == (directory / name).read_bytes(), name
    # re-running into an existing directory replaces it whole
    assert train_tokenizer(sample, tmp_path / "again", config) == info


def test_bpe_model_is_the_same_for_any_thread_count(tmp_path):
    sample = write_sample(tmp_path / "sample.txt", lines=1000)
    one = train_tokenizer(sample, tmp_path / "one", TokenizerConfig(vocab_size=2000, num_threads=1))
    two = train_tokenizer(sample, tmp_path / "two", TokenizerConfig(vocab_size=2000, num_threads=2))
    assert one["fingerprint"] == two["fingerprint"]
    assert (tmp_path / "one" / "tokenizer.json").read_bytes() == (tmp_path / "two" / "tokenizer.json").read_bytes()
    other = train_tokenizer(sample, tmp_path / "other", TokenizerConfig(vocab_size=2100, num_threads=1))
    assert other["fingerprint"] != one["fingerprint"]


def test_spaces_round_trip_even_if_the_sample_has_none(tmp_path):
    sample = tmp_path / "sample.txt"
    rng = random.Random(3)
    sample.write_text(
        "".join("".join(rng.choice(COMMON[:300]) for _ in range(30)) + "。\n" for _ in range(1000)), encoding="utf-8"
    )
    train_tokenizer(sample, tmp_path / "tok", TokenizerConfig(vocab_size=1000, num_threads=1))
    sp = SentencePieceTokenizer.load(tmp_path / "tok")
    hf = load_hf_tokenizer(tmp_path / "tok")
    for text in ["a b", "丁  七", " ", "x "]:
        assert sp.decode(sp.encode(text)) == text == hf.decode(hf(text)["input_ids"])
    assert [sp.id_to_piece(i) for i in sp.encode(" ")] == ["▁"]


def test_long_sentences_are_not_skipped(tmp_path):
    # One 3,000-character sentence (9,000 UTF-8 bytes, over sentencepiece's default 4,192-byte
    # max_sentence_length) holds the only occurrences of these characters.
    rare = "魑魅魍魉饕餮"
    sample = write_sample(tmp_path / "sample.txt", lines=1000)
    with open(sample, "a", encoding="utf-8") as handle:
        handle.write("".join(rare[i % len(rare)] for i in range(3000)) + "\n")
    train_tokenizer(sample, tmp_path / "tok", TokenizerConfig(vocab_size=2000, num_threads=1, max_sentence_chars=3000))
    sp = SentencePieceTokenizer.load(tmp_path / "tok")
    pieces = [sp.id_to_piece(i) for i in sp.encode(rare)]
    assert not any(p.startswith("<0x") for p in pieces), pieces


def test_impossible_vocab_sizes_give_clear_errors(tmp_path):
    sample = write_sample(tmp_path / "sample.txt", lines=300)
    with pytest.raises(TokenizerTrainingError, match=r"vocab_size=60000 is too large .*sample\.txt .*at most \d+"):
        train_tokenizer(
            sample, tmp_path / "tok", TokenizerConfig(model_type="unigram", vocab_size=60000, num_threads=1)
        )
    with pytest.raises(TokenizerTrainingError, match=r"vocab_size=400 is too small .*take \d+ ids"):
        train_tokenizer(sample, tmp_path / "tok", TokenizerConfig(vocab_size=400, num_threads=1))
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(TokenizerTrainingError, match="empty.txt: empty training sample"):
        train_tokenizer(tmp_path / "empty.txt", tmp_path / "tok", TokenizerConfig(vocab_size=400))
    assert not (tmp_path / "tok").exists()
    assert not list(tmp_path.glob(".tok.*"))


def test_pretrained_directory_is_validated_and_installed(trained, tmp_path):
    directory, info, _ = trained
    installed = install_pretrained_tokenizer(directory, tmp_path / "out" / "tokenizer")
    assert installed == info
    validate_tokenizer_dir(tmp_path / "out" / "tokenizer")


INSTALL_AND_REPORT = """
import sys
from tokenizer import install_pretrained_tokenizer
install_pretrained_tokenizer(sys.argv[1], sys.argv[2])
print("transformers imported" if "transformers" in sys.modules else "transformers not imported")
"""


def test_a_given_tokenizer_is_validated_once_per_content(trained, tmp_path):
    """The check (transformers against sentencepiece) runs for a directory's first install and
    for any changed byte; a repeat install of the same files skips it (no transformers import)."""
    directory, _, _ = trained
    env = {**os.environ, "ZH_PRETRAIN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}

    def install(source: Path, name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", INSTALL_AND_REPORT, str(source), str(tmp_path / name)],
            capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip

    first, second = install(directory, "a"), install(directory, "b")
    assert first.stdout.strip() == "transformers imported", first.stderr[-2000:]
    assert second.stdout.strip() == "transformers not imported", second.stderr[-2000:]
    # a changed byte in a file the check reads: checked again; a broken file fails every time
    changed = _broken_copy(directory, tmp_path / "changed")
    config = json.loads((changed / "tokenizer_config.json").read_text(encoding="utf-8"))
    (changed / "tokenizer_config.json").write_text(json.dumps({**config, "note": "edited"}), encoding="utf-8")
    assert install(changed, "e").stdout.strip() == "transformers imported"
    (changed / "tokenizer_config.json").write_text("{", encoding="utf-8")
    refused = install(changed, "c")
    assert refused.returncode != 0 and "tokenizer_config.json: not valid JSON" in refused.stderr, refused.stderr[-2000:]
    assert install(changed, "d").returncode != 0  # a failure is never remembered
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def _broken_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_unusable_pretrained_directories_are_named(trained, tmp_path):
    directory, _, _ = trained
    with pytest.raises(TokenizerDirError, match="nowhere: tokenizer directory not found"):
        validate_tokenizer_dir(tmp_path / "nowhere")

    missing = _broken_copy(directory, tmp_path / "missing")
    (missing / "tokenizer.json").unlink()
    with pytest.raises(TokenizerDirError, match=r"missing/tokenizer\.json: missing"):
        validate_tokenizer_dir(missing)

    corrupt = _broken_copy(directory, tmp_path / "corrupt")
    (corrupt / "tokenizer.model").write_bytes(b"\xff\x00not a model")
    with pytest.raises(TokenizerDirError, match=r"corrupt/tokenizer\.model: not a sentencepiece model"):
        validate_tokenizer_dir(corrupt)

    bad_json = _broken_copy(directory, tmp_path / "badjson")
    (bad_json / "tokenizer_config.json").write_text("{", encoding="utf-8")
    with pytest.raises(TokenizerDirError, match=r"badjson/tokenizer_config\.json: not valid JSON"):
        validate_tokenizer_dir(bad_json)

    # tokenizer.json of another model: the ids disagree with tokenizer.model
    mixed = _broken_copy(directory, tmp_path / "mixed")
    other = tmp_path / "other"
    train_tokenizer(
        write_sample(tmp_path / "other.txt", lines=500, seed=9), other, TokenizerConfig(vocab_size=1500, num_threads=1)
    )
    shutil.copy(other / "tokenizer.json", mixed / "tokenizer.json")
    with pytest.raises(TokenizerDirError, match=r"mixed"):
        validate_tokenizer_dir(mixed)


def _plain_sentencepiece_dir(tmp_path: Path, name: str, trained_dir: Path, **options) -> Path:
    """A directory with a model trained by sentencepiece directly (other settings) and our HF files."""
    target = _broken_copy(trained_dir, tmp_path / name)
    sample = write_sample(tmp_path / f"{name}.txt", lines=300)
    spm.SentencePieceTrainer.train(
        input=str(sample),
        model_prefix=str(tmp_path / name / "tokenizer"),
        vocab_size=1500,
        num_threads=1,
        byte_fallback=True,
        minloglevel=2,
        **options,
    )
    return target


def test_foreign_models_are_rejected_with_the_reason(trained, tmp_path):
    directory, _, _ = trained
    nfkc = _plain_sentencepiece_dir(tmp_path, "nfkc", directory, unk_id=0, bos_id=1, eos_id=2, pad_id=3)
    with pytest.raises(
        TokenizerDirError, match=r"nfkc/tokenizer\.model: .*not supported: normalization_rule_name='nmt_nfkc'"
    ):
        validate_tokenizer_dir(nfkc)
    ids = _plain_sentencepiece_dir(
        tmp_path,
        "ids",
        directory,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
    )  # sentencepiece's default ids: pad=-1
    with pytest.raises(TokenizerDirError, match=r"ids/tokenizer\.model: pad id is -1, this project needs <pad>=3"):
        validate_tokenizer_dir(ids)


def test_only_true_ties_count_as_equally_good(trained):
    directory, _, config = trained
    sp = SentencePieceTokenizer.load(directory)
    words = [p for p in map(sp.id_to_piece, range(sp.vocab_size)) if len(p) >= 2 and set(p) <= set(COMMON)]
    text = "".join(words[:20])
    best = sp.encode(text)
    assert len(best) < len(text)  # some multi-character pieces
    characters = [i for ch in text for i in sp.encode(ch)]
    assert not sp.equally_good(best, characters)  # a worse segmentation is not accepted
    assert not sp.equally_good(best, sp.encode(text + "。"))  # nor another text
    reordered = list(reversed(best))
    assert sp.equally_good(best, reordered) is False  # decodes to another text


def test_parity_survives_save_pretrained(trained, tmp_path):
    """Model exports re-save the tokenizer with transformers; the ids must not change."""
    directory, _, _ = trained
    load_hf_tokenizer(directory).save_pretrained(str(tmp_path / "resaved"))
    resaved = load_hf_tokenizer(tmp_path / "resaved")
    sp = SentencePieceTokenizer.load(directory)
    lines = test_lines(300, seed=11) + ["literal </s> stays text"]
    assert all(sp.equally_good(a, b) for a, b in zip(sp.encode_batch(lines), resaved(lines)["input_ids"]))
    assert resaved.batch_decode(sp.encode_batch(lines)) == lines
    assert resaved.eos_token_id == 2 and resaved.pad_token_id == 3
