"""Pretraining with DeepSpeed: sampler, trainer, checkpoints, metrics, optimizer, signals, export."""
