"""Arguments shared by the commands that load an exported model: `evaluate`, `generate`, `chat`."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.model.loading import DTYPES


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="Hugging Face model directory (e.g. RUN/hf)")
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="auto", choices=["auto", *DTYPES], help="default: bf16 on GPUs that have it")
