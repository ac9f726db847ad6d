"""Data preparation: CSV shards → clean, deduplicated, split, tokenized and packed Arrow blocks."""
