"""Data preparation for Chinese GPT pretraining: CSV shards → clean, deduplicated, split,
tokenized and packed Arrow blocks. See README.md for the data flow."""
