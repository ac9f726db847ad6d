"""Hugging Face export: a tokenizer.json that encodes exactly like the sentencepiece model.

Why build tokenizer.json by hand from the model's pieces instead of letting transformers
convert `tokenizer.model` at load time: measured with transformers 5.24, a directory holding
only `tokenizer.model` loads with a different normalizer than sentencepiece's and its ids
differ on about a third of Chinese lines, and `LlamaTokenizerFast(vocab_file=...)` silently
loads only the special tokens. A complete tokenizer.json with `tokenizer_class`
`PreTrainedTokenizerFast` is loaded as-is, with nothing rebuilt behind our back.

The mapping (our models use identity normalization, no dummy prefix, no whitespace removal):
- normalizer: " " → "▁" (sentencepiece's escape_whitespaces), nothing else;
- model: BPE with merges ranked by the merged piece's score (sentencepiece merges the
  highest-scoring pair first), or Unigram with the piece scores; byte fallback as trained;
- decoder: "▁" → " ", byte pieces → bytes, fused into the text;
- special tokens are never matched in text (`split_special_tokens`), as in sentencepiece, where
  the text "</s>" is three ordinary pieces and only the packer appends the real EOS id.
"""

from __future__ import annotations

import json
from pathlib import Path

from sentencepiece import sentencepiece_model_pb2
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

from tokenizer.tokenizer_config import SPECIAL_IDS, SPECIAL_TOKENS

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6  # ModelProto.SentencePiece.Type
BPE_MODEL, UNIGRAM_MODEL = 2, 1  # TrainerSpec.ModelType
# Unigram only: tokenizers matches every vocabulary entry in the text, sentencepiece only
# normal pieces. This score keeps the literal text "<s>" or "<0x41>" from being read as the
# control or byte piece whenever its characters are in the vocabulary (training makes sure
# they are: train.REQUIRED_CHARS). It does not change any other choice: every
# segmentation of a text crosses the same unknown characters, so the lower unknown-character
# score that follows from it shifts all of them alike.
_UNMATCHABLE_SCORE = -1e9


def read_model_proto(model_file: Path) -> sentencepiece_model_pb2.ModelProto:
    return read_model_proto_bytes(Path(model_file).read_bytes())


def read_model_proto_bytes(data: bytes) -> sentencepiece_model_pb2.ModelProto:
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(data)
    return proto


def check_supported(proto: sentencepiece_model_pb2.ModelProto, where: str) -> None:
    """The export reproduces only identity-normalized models without dummy prefix."""
    spec = proto.normalizer_spec
    problems = []
    if spec.precompiled_charsmap or spec.name not in ("identity", ""):
        problems.append(f"normalization_rule_name={spec.name!r} (need 'identity')")
    if spec.add_dummy_prefix:
        problems.append("add_dummy_prefix=true (need false)")
    if spec.remove_extra_whitespaces:
        problems.append("remove_extra_whitespaces=true (need false)")
    if not spec.escape_whitespaces:
        problems.append("escape_whitespaces=false (need true)")
    if proto.trainer_spec.treat_whitespace_as_suffix:
        problems.append("treat_whitespace_as_suffix=true (need false)")
    if proto.trainer_spec.model_type not in (BPE_MODEL, UNIGRAM_MODEL):
        problems.append(f"model_type={proto.trainer_spec.model_type} (need BPE or unigram)")
    if any(piece.type in (USER_DEFINED, UNUSED) for piece in proto.pieces):
        problems.append("user-defined or unused pieces")
    if problems:
        raise ValueError(f"{where}: sentencepiece model not supported: {'; '.join(problems)}")


def build_fast_tokenizer(proto: sentencepiece_model_pb2.ModelProto) -> Tokenizer:
    check_supported(proto, "tokenizer.model")
    byte_fallback = proto.trainer_spec.byte_fallback
    unk_piece = proto.pieces[proto.trainer_spec.unk_id].piece
    if proto.trainer_spec.model_type == BPE_MODEL:
        vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
        model = models.BPE(
            vocab=vocab,
            merges=_bpe_merges(proto),
            unk_token=unk_piece,
            fuse_unk=True,
            byte_fallback=byte_fallback,
        )
    else:
        scored = [(piece.piece, piece.score if piece.type == NORMAL else _UNMATCHABLE_SCORE) for piece in proto.pieces]
        model = models.Unigram(scored, unk_id=proto.trainer_spec.unk_id, byte_fallback=byte_fallback)
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    steps = [decoders.Replace("▁", " ")]
    if byte_fallback:
        steps.append(decoders.ByteFallback())
    steps.append(decoders.Fuse())
    tokenizer.decoder = decoders.Sequence(steps)
    specials = [piece.piece for piece in proto.pieces if piece.type in (CONTROL, UNKNOWN)]
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    return tokenizer


def _bpe_merges(proto) -> list[tuple[str, str]]:
    """Every split of a normal piece into two normal pieces, best-scoring merged piece first."""
    normal = {piece.piece: (piece.score, index) for index, piece in enumerate(proto.pieces) if piece.type == NORMAL}
    ranked = []
    for token, (score, index) in normal.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in normal and right in normal:
                ranked.append((-score, index, cut, left, right))
    return [(left, right) for *_, left, right in sorted(ranked)]


def tokenizer_config_json() -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special_tokens_map(),
        "add_bos_token": False,  # the packer appends </s> between documents; nothing else is added
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,  # decode returns the text exactly
        "split_special_tokens": True,  # "</s>" in text is text, as in sentencepiece
        "model_max_length": 1_000_000_000,
    }


def special_tokens_map() -> dict:
    return {f"{name}_token": SPECIAL_TOKENS[name] for name in ("bos", "eos", "unk", "pad")}


def write_hf_files(directory: Path) -> None:
    """Write tokenizer.json, tokenizer_config.json, special_tokens_map.json beside tokenizer.model."""
    directory = Path(directory)
    proto = read_model_proto(directory / "tokenizer.model")
    for name, token in SPECIAL_TOKENS.items():
        index = SPECIAL_IDS[name]
        if index >= len(proto.pieces) or proto.pieces[index].piece != token:
            raise ValueError(f"{directory / 'tokenizer.model'}: id {index} must be {token}")
    build_fast_tokenizer(proto).save(str(directory / "tokenizer.json"))
    for name, data in (
        ("tokenizer_config.json", tokenizer_config_json()),
        ("special_tokens_map.json", special_tokens_map()),
    ):
        (directory / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_hf_tokenizer(directory: Path):
    """transformers' AutoTokenizer on `directory`, offline."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
