"""Train sentencepiece on the sample and write a complete tokenizer directory atomically.

The directory (OUT/tokenizer/) holds tokenizer.model (sentencepiece, used by packing),
tokenizer.json + tokenizer_config.json + special_tokens_map.json (transformers'
AutoTokenizer, same ids) and training.json (config, sample counts, fingerprint). It is built
under a temporary name, validated, then renamed into place: a killed run leaves no
half-written tokenizer under the final name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import sentencepiece as spm

from pipeline.core.atomic import fsync_directory, journal_temporary
from pipeline.core.typed_config import to_dict
from tokenizer.hf import read_model_proto, write_hf_files
from tokenizer.load import MODEL_FILE, TokenizerDirError, tokenizer_info, validate_tokenizer_dir
from tokenizer.tokenizer_config import SPECIAL_IDS, SPECIAL_TOKENS, TokenizerConfig
from tokenizer.validation_cache import validate_once

# Characters that always get a piece of their own, whatever the sample:
# - "▁" (sentencepiece's escaped space): without it a sample with no spaces gives a model that
#   byte-encodes " " as the UTF-8 of "▁" and decodes it back as "▁", not as a space;
# - the characters that spell special and byte pieces ("<s>", "<0x41>"): transformers' Unigram
#   matches every vocabulary entry in text, sentencepiece only normal pieces; with these
#   characters in the vocabulary both read the literal text "<s>" as characters
#   (tokenizer/hf.py scores the special pieces out of reach).
REQUIRED_CHARS = "".join(sorted(set("▁" + "".join(SPECIAL_TOKENS.values()) + "<0x>0123456789ABCDEF")))


class TokenizerTrainingError(ValueError):
    """Sentencepiece could not train on this sample with this config; the message says why."""


def sample_size(sample_path: Path) -> tuple[int, int]:
    """(sentences, characters) of a sample file, streaming."""
    sentences = chars = 0
    with open(sample_path, encoding="utf-8") as handle:
        for line in handle:
            sentences += 1
            chars += len(line.rstrip("\n"))
    return sentences, chars


def available_cpus() -> int:
    """CPUs this process may run on: a SLURM task's allocation, not the whole node."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def sentencepiece_options(config: TokenizerConfig) -> dict:
    return dict(
        model_type=config.model_type,
        vocab_size=config.vocab_size,
        character_coverage=config.character_coverage,
        byte_fallback=config.byte_fallback,
        split_digits=config.split_digits,
        # Text arrives cleaned and normalized by the pipeline. sentencepiece's default nmt_nfkc
        # would rewrite it again (full-width "，" → ","), so decode(encode(x)) != x and
        # transformers could not reproduce the ids. Identity keeps text as it is; no dummy
        # prefix and no whitespace squeezing make every space, tab and newline round-trip.
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        unk_id=SPECIAL_IDS["unk"],
        bos_id=SPECIAL_IDS["bos"],
        eos_id=SPECIAL_IDS["eos"],
        pad_id=SPECIAL_IDS["pad"],
        unk_piece=SPECIAL_TOKENS["unk"],
        bos_piece=SPECIAL_TOKENS["bos"],
        eos_piece=SPECIAL_TOKENS["eos"],
        pad_piece=SPECIAL_TOKENS["pad"],
        required_chars=REQUIRED_CHARS,
        max_sentence_length=config.max_sentence_bytes,  # ≥ any sampled sentence: none skipped
        input_sentence_size=0,  # the sample is already bounded: use all of it
        num_threads=config.num_threads or available_cpus(),
        minloglevel=1,
    )


def _explain(exc: RuntimeError, sample_path: Path, config: TokenizerConfig) -> TokenizerTrainingError:
    sentences, chars = sample_size(sample_path)
    where = f"{sample_path} ({sentences} sentences, {chars} characters)"
    message = str(exc)
    too_high = re.search(r"Vocabulary size too high \((\d+)\).*<= (\d+)", message)
    if too_high:
        return TokenizerTrainingError(
            f"vocab_size={config.vocab_size} is too large for the training sample {where}: "
            f"sentencepiece can build at most {too_high.group(2)} pieces from it. Set "
            f"vocab_size <= {too_high.group(2)} or train on more text."
        )
    too_low = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if too_low:
        return TokenizerTrainingError(
            f"vocab_size={config.vocab_size} is too small for the training sample {where}: the "
            f"characters needed for character_coverage={config.character_coverage} plus the "
            f"special and byte pieces take {too_low.group(2)} ids. Set vocab_size well above "
            f"{too_low.group(2)} or lower character_coverage."
        )
    return TokenizerTrainingError(f"sentencepiece failed on {where}: {message}")


def _canonicalize_model(model_file: Path, sample_path: Path) -> None:
    """sentencepiece records the temporary paths it was given; keep only the sample's name so
    the same inputs give a byte-identical model wherever they were trained."""
    proto = read_model_proto(model_file)
    del proto.trainer_spec.input[:]
    proto.trainer_spec.input.append(sample_path.name)
    proto.trainer_spec.model_prefix = "tokenizer"
    model_file.write_bytes(proto.SerializeToString(deterministic=True))


def train_tokenizer(sample_path: Path, out_dir: Path, config: TokenizerConfig) -> dict:
    """Train on `sample_path` (one sentence per line) and write the tokenizer into `out_dir`.

    Returns tokenizer_info: vocab_size, special_ids, fingerprint, model_type."""
    config.check()
    sample_path, out_dir = Path(sample_path), Path(out_dir)
    sentences, chars = sample_size(sample_path)
    if sentences == 0:
        raise TokenizerTrainingError(f"{sample_path}: empty training sample (no train text to learn from)")
    tmp = _fresh_temporary_dir(out_dir)
    try:
        spm.set_random_generator_seed(config.seed)
        try:
            spm.SentencePieceTrainer.train(
                input=str(sample_path), model_prefix=str(tmp / "tokenizer"), **sentencepiece_options(config)
            )
        except RuntimeError as exc:
            raise _explain(exc, sample_path, config) from None
        (tmp / "tokenizer.vocab").unlink(missing_ok=True)  # human-readable copy of the pieces; unused
        _canonicalize_model(tmp / MODEL_FILE, sample_path)
        write_hf_files(tmp)
        validate_tokenizer_dir(tmp, extra_texts=tuple(_first_lines(sample_path, 200)))
        info = tokenizer_info(tmp)
        training = {
            "config": to_dict(config),
            "sample": {"file": sample_path.name, "sentences": sentences, "chars": chars},
            "sentencepiece_version": spm.__version__,
            **info,
        }
        (tmp / "training.json").write_text(json.dumps(training, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def install_pretrained_tokenizer(source: Path, out_dir: Path) -> dict:
    """Validate a given tokenizer directory (once per content: validation_cache.py) and copy it to
    `out_dir` (atomically)."""
    source, out_dir = Path(source), Path(out_dir)
    validate_once(source)
    tmp = _fresh_temporary_dir(out_dir)
    try:
        shutil.rmtree(tmp)
        shutil.copytree(source, tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tokenizer_info(out_dir)


def _first_lines(path: Path, count: int) -> list[str]:
    lines = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            lines.append(line.rstrip("\n"))
            if len(lines) == count:
                break
    return lines


def _fresh_temporary_dir(out_dir: Path) -> Path:
    """An empty `.NAME.tmp-PID` beside out_dir; leftovers of killed runs are removed first."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.old-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    journal_temporary(tmp)  # inside a task: its next start removes this if we are killed
    tmp.mkdir()
    return tmp


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Rename tmp to out_dir; an existing out_dir is moved aside first and then deleted."""
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    fsync_directory(out_dir.parent)
    shutil.rmtree(old, ignore_errors=True)


__all__ = ["TokenizerTrainingError", "TokenizerDirError", "train_tokenizer", "install_pretrained_tokenizer"]
