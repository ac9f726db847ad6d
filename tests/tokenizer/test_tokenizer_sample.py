"""The tokenizer's training sample: sentence splitting, bottom-k sampling, caps, determinism."""

from __future__ import annotations

import dataclasses
import random

import pytest

from pipeline.core.typed_config import ConfigError, from_dict
from tokenizer.sample import sentence_key, split_sentences, write_training_sample
from tokenizer.tokenizer_config import TokenizerConfig


def make_docs(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 500)]
    docs = []
    for _ in range(count):
        sentences = []
        for _ in range(rng.randint(1, 8)):
            body = "".join(rng.choice(chars) for _ in range(rng.randint(2, 40)))
            sentences.append(body + rng.choice("。！？，") + rng.choice(["", "\n", "”"]))
        docs.append("".join(sentences))
    return docs


def test_split_sentences_at_chinese_stops_and_line_breaks():
    text = "第一句。第二句！“第三句？”第四句，还没完\n第五行\r\n\n   \n最后"
    assert list(split_sentences("真的吗？！」对。", 100)) == ["真的吗？！」", "对。"]
    assert list(split_sentences(text, 100)) == [
        "第一句。",
        "第二句！",
        "“第三句？”",
        "第四句，还没完",
        "第五行",
        "最后",
    ]


def test_split_sentences_cuts_long_runs_into_chunks_of_max_chars():
    text = "长" * 25 + "。短。"
    assert list(split_sentences(text, 10)) == ["长" * 10, "长" * 10, "长" * 5 + "。", "短。"]


def test_sample_is_identical_for_any_document_order(tmp_path):
    docs = make_docs(400)
    config = TokenizerConfig(max_sample_sentences=300, max_sample_chars=100_000, max_sentence_chars=30)
    interleaved = [doc for start in range(3) for doc in docs[start::3]]  # as three tasks' files would give them
    shuffled = random.Random(1).sample(docs, len(docs))
    samples = []
    for name, texts in (("a", docs), ("b", interleaved), ("c", list(reversed(docs))), ("d", iter(shuffled))):
        stats = write_training_sample(texts, tmp_path / f"{name}.txt", config)
        samples.append((tmp_path / f"{name}.txt").read_bytes())
        assert stats["sentences_sampled"] == 300
        assert stats["documents"] == 400
    assert samples[0] and all(sample == samples[0] for sample in samples)
    # a different seed draws a different sample
    write_training_sample(docs, tmp_path / "seed1.txt", dataclasses.replace(config, seed=1))
    assert (tmp_path / "seed1.txt").read_bytes() != samples[0]


@pytest.mark.parametrize("max_sentences, max_chars", [(50, 1_000_000), (10_000, 2_000), (120, 3_000)])
def test_sample_is_the_smallest_keys_that_fit_both_caps(tmp_path, max_sentences, max_chars):
    docs = make_docs(300, seed=2)
    docs += docs[:50]  # repeated sentences are sampled once
    config = TokenizerConfig(
        max_sample_sentences=max_sentences, max_sample_chars=max_chars, max_sentence_chars=30, seed=7
    )
    stats = write_training_sample(docs, tmp_path / "sample.txt", config)
    sample = (tmp_path / "sample.txt").read_text(encoding="utf-8").splitlines()

    distinct = sorted({s for text in docs for s in split_sentences(text, 30)}, key=lambda s: sentence_key(s, 7))
    expected, chars = [], 0
    for sentence in distinct:
        if len(expected) == max_sentences or chars + len(sentence) > max_chars:
            break
        expected.append(sentence)
        chars += len(sentence)
    assert sample == expected
    assert len(sample) <= max_sentences and sum(map(len, sample)) <= max_chars
    assert stats["sentences_sampled"] == len(sample) and stats["chars_sampled"] == chars
    assert stats["sentences_seen"] == sum(len(list(split_sentences(t, 30))) for t in docs)
    assert len(sample) < len(distinct)  # the caps did bind


def test_long_document_is_sampled_as_sentences(tmp_path):
    long_doc = "".join(f"这是第{i}个句子，内容很长很长。" for i in range(2000))  # ~30,000 characters
    assert len(long_doc) > 20_000
    config = TokenizerConfig(max_sentence_chars=200)
    write_training_sample([long_doc], tmp_path / "s.txt", config)
    sample = (tmp_path / "s.txt").read_text(encoding="utf-8").splitlines()
    assert len(sample) == 2000
    assert sorted(sample) == sorted(f"这是第{i}个句子，内容很长很长。" for i in range(2000))


def test_config_rejects_bad_values_with_key_names():
    with pytest.raises(ConfigError, match="vocab_size"):
        from_dict(TokenizerConfig, {"vocab_size": 100})
    with pytest.raises(ConfigError, match="character_coverage"):
        from_dict(TokenizerConfig, {"character_coverage": 1.5})
    with pytest.raises(ConfigError, match="max_sample_chars"):
        from_dict(TokenizerConfig, {"max_sample_chars": 10, "max_sentence_chars": 100})
    with pytest.raises(ConfigError, match="byte_fallback: must be true"):
        from_dict(TokenizerConfig, {"byte_fallback": False})
    with pytest.raises(ConfigError, match="model_type"):
        from_dict(TokenizerConfig, {"model_type": "wordpiece"})
    assert from_dict(TokenizerConfig, {"pretrained": "/some/dir"}).pretrained == "/some/dir"
    assert TokenizerConfig().max_sentence_bytes == 4 * TokenizerConfig().max_sentence_chars
