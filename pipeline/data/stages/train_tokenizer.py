"""Stage `tokenizer` (one task, after the split): train sentencepiece on a bounded sample of
the train documents (read from work/clean through the split's sides), or take a given
pre-trained tokenizer directory, into OUT/tokenizer. An appended version (`prepare --append`) adopts version 1's tokenizer and writes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.data.executor import Stage, read_marker
from pipeline.data.prepare_plan import Plan
from pipeline.data.stages.clean import require_rows
from pipeline.data.stages.split import side_pieces
from tokenizer import install_pretrained_tokenizer, train_tokenizer, write_training_sample


def run_task(plan: Plan, task_id: int, progress: Callable[[int], None]) -> dict:
    require_rows(plan)
    if plan.version > 1:  # an appended version encodes with the tokenizer of version 1, unchanged
        progress(1)
        return {**read_marker(plan.base_plans()[0], "tokenizer", 0), "adopted_from": "version 1"}
    config = plan.config.tokenizer
    if config.pretrained:
        info: dict = {
            "pretrained": config.pretrained,
            **install_pretrained_tokenizer(Path(config.pretrained), plan.tokenizer_dir),
        }
    else:
        sample_path = plan.work_dir / "tokenizer" / "sample.txt"
        sample = write_training_sample(train_texts(plan), sample_path, config)
        info = {"sample": sample, **train_tokenizer(sample_path, plan.tokenizer_dir, config)}
    progress(1)
    return info


def train_texts(plan: Plan) -> Iterator[str]:
    """The train documents' texts (each once, unweighted), read from the cleaned pieces."""
    for task in range(plan.num_tasks):
        for (texts,) in side_pieces(plan, task, "train", columns=("text",)):
            yield from texts


STAGE = Stage(name="tokenizer", run_task=run_task, count_tasks=lambda plan: 1, unit="task")
