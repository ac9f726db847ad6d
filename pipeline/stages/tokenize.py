"""Stage `tokenizer` (one task, after the split): train sentencepiece on a bounded sample of
the train documents — or take a given pre-trained tokenizer directory — into OUT/tokenizer."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from tokenizer import train_tokenizer, tokenizer_fingerprint, validate_tokenizer_dir, write_training_sample

from ..executor import Stage
from ..plan import Plan
from .clean import require_rows
from .split import split_path


def run_task(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    require_rows(plan)
    config = plan.config.tokenizer
    target = plan.tokenizer_dir
    if target.exists():  # left by a run killed before its marker: redo from scratch
        shutil.rmtree(target)
    if config.pretrained:
        source = Path(config.pretrained)
        validate_tokenizer_dir(source)
        staging = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        staging.rename(target)
        info: dict = {"pretrained": str(source)}
    else:
        documents = [split_path(plan, "train", i) for i in range(plan.num_tasks)]
        sample_path = plan.work_dir / "tokenizer" / "sample.txt"
        sample = write_training_sample(documents, sample_path, config)
        info = {"sample": sample, **train_tokenizer(sample_path, target, config)}
    info["fingerprint"] = tokenizer_fingerprint(target)
    progress(1)
    return info


STAGE = Stage(name="tokenizer", run_task=run_task, count_tasks=lambda plan: 1, unit="task")
