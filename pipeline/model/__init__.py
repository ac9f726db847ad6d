"""The model: typed model config → transformers config, building, FLOPs per token, loading an export."""
