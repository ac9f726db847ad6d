"""Sentencepiece tokenizer training and its Hugging Face export (with id parity)."""
