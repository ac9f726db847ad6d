"""Shared building blocks with no project dependencies: atomic writes, typed configs, fingerprints, GPUs."""
