"""Pretraining with DeepSpeed: data loading, model, loop, checkpoints, evaluation, export."""
