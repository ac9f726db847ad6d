"""Held-out perplexity and accuracy: one definition for the trainer and for exported models."""
