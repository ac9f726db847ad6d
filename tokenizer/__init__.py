"""Sentencepiece tokenizer training and its Hugging Face export (with id parity).

Typical use (the pipeline's tokenizer stage, then packing):

    stats = write_training_sample(train_texts, sample_path, config)
    info = train_tokenizer(sample_path, OUT / "tokenizer", config)   # or install_pretrained_tokenizer
    tok = SentencePieceTokenizer.load(OUT / "tokenizer")
    ids = tok.encode_batch(texts)                                    # no BOS/EOS added
"""

from tokenizer.load import (
    SentencePieceTokenizer,
    TokenizerDirError,
    tokenizer_fingerprint,
    tokenizer_info,
    validate_tokenizer_dir,
)
from tokenizer.sample import write_training_sample
from tokenizer.tokenizer_config import SPECIAL_IDS, SPECIAL_TOKENS, TokenizerConfig
from tokenizer.train import TokenizerTrainingError, install_pretrained_tokenizer, train_tokenizer

__all__ = [
    "SPECIAL_IDS",
    "SPECIAL_TOKENS",
    "SentencePieceTokenizer",
    "TokenizerConfig",
    "TokenizerDirError",
    "TokenizerTrainingError",
    "install_pretrained_tokenizer",
    "tokenizer_fingerprint",
    "tokenizer_info",
    "train_tokenizer",
    "validate_tokenizer_dir",
    "write_training_sample",
]
