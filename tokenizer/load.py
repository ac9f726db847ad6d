"""Using a tokenizer directory: the fast sentencepiece encoder for packing, its fingerprint,
and the checks that a directory (trained here or given as `pretrained`) is usable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

from tokenizer.hf import BPE_MODEL, check_supported, load_hf_tokenizer, read_model_proto, read_model_proto_bytes
from tokenizer.tokenizer_config import SPECIAL_IDS, SPECIAL_TOKENS

MODEL_FILE = "tokenizer.model"
HF_FILES = ("tokenizer.json", "tokenizer_config.json")

# Text that every valid directory must encode identically with sentencepiece and transformers
# and decode back unchanged: Simplified/Traditional/rare CJK, full-width punctuation, emoji
# (ZWJ sequence, flag, skin tone), Latin, digits, runs of spaces, tabs, newlines, and the
# literal text of special and byte pieces.
PROBE_TEXTS = (
    "今天天气很好，我们去公园散步吧！你觉得呢？",
    "這是繁體中文的句子：「學習」與「體驗」。",
    "罕见字𠀀𠀁𪚥𬺓，还有表情😀👍🏽👨‍👩‍👧‍👦🇨🇳。",
    "GPT-2 was released in 2019; 价格是12345.67元（约1,234美元）。",
    "two  spaces,   three, tab\there\nnew line\n\n  indented\r\nwindows",
    " leading and trailing  ",
    "literal <s> and </s> and <pad> <unk> <0x41> in text",
    "１２３ＡＢＣ、；：“引号”‘单引号’《书名》【括号】…—～",
    "",
)


class TokenizerDirError(ValueError):
    """A tokenizer directory is missing, incomplete or inconsistent; the message names it."""


class SentencePieceTokenizer:
    """Sentencepiece encoder for packing: no BOS/EOS added (the packer appends EOS)."""

    def __init__(self, processor: spm.SentencePieceProcessor, num_threads: int = 1):
        self._sp = processor
        self.num_threads = num_threads
        self.vocab_size = processor.get_piece_size()
        self.unk_id = processor.unk_id()
        self.bos_id = processor.bos_id()
        self.eos_id = processor.eos_id()
        self.pad_id = processor.pad_id()
        self.model_type = read_model_proto_bytes(processor.serialized_model_proto()).trainer_spec.model_type

    @classmethod
    def load(cls, directory: Path, num_threads: int = 1) -> SentencePieceTokenizer:
        """num_threads: threads per encode_batch call (packing runs one process per worker)."""
        path = Path(directory) / MODEL_FILE
        if not path.is_file():
            raise TokenizerDirError(f"{path}: not found (a tokenizer directory holds {MODEL_FILE})")
        processor = spm.SentencePieceProcessor()
        try:
            processor.Load(model_file=str(path))
        except (OSError, RuntimeError) as exc:
            raise TokenizerDirError(f"{path}: not a sentencepiece model: {exc}") from None
        return cls(processor, num_threads)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._sp.encode(texts, out_type=int, num_threads=self.num_threads)

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text, out_type=int)

    def decode(self, ids: list[int]) -> str:
        return self._sp.decode(ids)

    def id_to_piece(self, index: int) -> str:
        return self._sp.id_to_piece(index)

    def score(self, ids: list[int]) -> float:
        """Sum of the pieces' scores: the quantity a unigram model maximizes."""
        return sum(self._sp.get_score(index) for index in ids)

    def equally_good(self, ids: list[int], other: list[int]) -> bool:
        """Whether `other` is another best segmentation of the same text as `ids`.

        Unigram only: two segmentations with the same pieces in a different order ("哈哈|哈" and
        "哈|哈哈") score the same, and sentencepiece (float32) and transformers (float64) break
        such exact ties by their rounding, so the ids may differ while both are optimal. Near
        ties within float32 rounding (n·ε·Σ|score|) count as equally good too."""
        if ids == other:
            return True
        if self.model_type == BPE_MODEL or self.decode(ids) != self.decode(other):
            return False
        if sorted(ids) == sorted(other):
            return True
        magnitude = sum(abs(self._sp.get_score(index)) for index in ids + other)
        tolerance = (len(ids) + len(other)) * 6e-8 * magnitude + 1e-6
        return abs(self.score(ids) - self.score(other)) <= tolerance


def _canonical_model(proto: sentencepiece_model_pb2.ModelProto) -> bytes:
    """The parts of a model that decide ids: pieces, normalization, and the encoding options —
    not training bookkeeping (input path, thread count) that differs between identical models."""
    kept = sentencepiece_model_pb2.ModelProto()
    kept.pieces.extend(proto.pieces)
    kept.normalizer_spec.CopyFrom(proto.normalizer_spec)
    kept.denormalizer_spec.CopyFrom(proto.denormalizer_spec)
    spec = proto.trainer_spec
    for field in (
        "model_type",
        "byte_fallback",
        "treat_whitespace_as_suffix",
        "unk_id",
        "bos_id",
        "eos_id",
        "pad_id",
        "unk_surface",
    ):
        setattr(kept.trainer_spec, field, getattr(spec, field))
    return kept.SerializeToString(deterministic=True)


def tokenizer_fingerprint(directory: Path) -> str:
    """sha256 of what determines the token ids (the sentencepiece model's pieces and options).

    tokenizer.json is derived from the same model and checked to agree with it, so it adds
    nothing; leaving it out keeps the fingerprint independent of the tokenizers version."""
    path = Path(directory) / MODEL_FILE
    try:
        proto = read_model_proto(path)
    except FileNotFoundError:
        raise TokenizerDirError(f"{path}: not found") from None
    except Exception as exc:  # protobuf's DecodeError
        raise TokenizerDirError(f"{path}: not a sentencepiece model: {exc}") from None
    return hashlib.sha256(_canonical_model(proto)).hexdigest()


def tokenizer_info(directory: Path) -> dict:
    """vocab size, special ids and fingerprint: what the manifest records."""
    proto = read_model_proto(Path(directory) / MODEL_FILE)
    return {
        "model_type": "bpe" if proto.trainer_spec.model_type == BPE_MODEL else "unigram",
        "vocab_size": len(proto.pieces),
        "special_ids": dict(SPECIAL_IDS),
        "special_tokens": dict(SPECIAL_TOKENS),
        "fingerprint": tokenizer_fingerprint(directory),
    }


def validate_tokenizer_dir(directory: Path, extra_texts: tuple[str, ...] = ()) -> None:
    """Raise TokenizerDirError naming the directory or file if it cannot serve this project:
    files present and parseable, fixed special ids, a supported model, and transformers'
    AutoTokenizer giving exactly sentencepiece's ids and decoding back to the text."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TokenizerDirError(f"{directory}: tokenizer directory not found")
    for name in (MODEL_FILE, *HF_FILES):
        if not (directory / name).is_file():
            raise TokenizerDirError(
                f"{directory / name}: missing (a tokenizer directory needs {MODEL_FILE}, {', '.join(HF_FILES)})"
            )
    for name in HF_FILES:
        try:
            json.loads((directory / name).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TokenizerDirError(f"{directory / name}: not valid JSON: {exc}") from None
    tokenizer_fingerprint(directory)  # parses the model, with a clear error
    proto = read_model_proto(directory / MODEL_FILE)
    try:
        check_supported(proto, str(directory / MODEL_FILE))
    except ValueError as exc:
        raise TokenizerDirError(str(exc)) from None
    sp = SentencePieceTokenizer.load(directory)
    for name, index in SPECIAL_IDS.items():
        actual = getattr(sp, f"{name}_id")
        if actual != index or sp.id_to_piece(index) != SPECIAL_TOKENS[name]:
            raise TokenizerDirError(
                f"{directory / MODEL_FILE}: {name} id is {actual}, this project needs "
                f"{SPECIAL_TOKENS[name]}={index} (unk=0, bos=1, eos=2, pad=3)"
            )
    try:
        hf = load_hf_tokenizer(directory)
    except Exception as exc:  # transformers raises many kinds; all mean "unusable"
        raise TokenizerDirError(f"{directory}: transformers cannot load it: {type(exc).__name__}: {exc}") from None
    for name, index in SPECIAL_IDS.items():
        if getattr(hf, f"{name}_token_id") != index:
            raise TokenizerDirError(f"{directory / 'tokenizer_config.json'}: {name}_token is not id {index}")
    if len(hf) != sp.vocab_size:
        raise TokenizerDirError(f"{directory / 'tokenizer.json'}: {len(hf)} tokens, {MODEL_FILE} has {sp.vocab_size}")
    for text in (*PROBE_TEXTS, *extra_texts):
        expected = sp.encode(text)
        actual = hf(text, add_special_tokens=True)["input_ids"]
        if not sp.equally_good(expected, actual):
            raise TokenizerDirError(
                f"{directory / 'tokenizer.json'}: disagrees with {MODEL_FILE} on {text!r}: {actual} != {expected}"
            )
        for name, decoded in (("sentencepiece", sp.decode(expected)), ("transformers", hf.decode(expected))):
            if decoded != text and "▁" not in text:
                raise TokenizerDirError(f"{directory}: {name} does not decode {text!r} back (got {decoded!r})")
