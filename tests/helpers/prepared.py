"""Reading what `prepare` leaves in OUTPUT/work/ (its intermediate files), for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data.prepare_plan import Plan
from pipeline.data.stages.clean import documents_path
from pipeline.formats.documents import read_piece_records

SIDE_BYTES = {"train": 0, "validation": 1}  # work/sides/*.npy, as docs/data.md defines them


def cleaned_pieces(output: Path) -> list[dict]:
    """Every piece the clean stage made (before dedup), in task order: text, file, row, part, and
    the input file's path as `source`, as the documents in docs/ carry it."""
    plan = Plan.load(output)
    return [
        {**piece, "source": plan.inputs[piece["file"]].path}
        for task in range(plan.num_tasks)
        for piece in read_piece_records(documents_path(plan, task))
    ]


def split_documents_by_task(output: Path, split: str) -> list[list[dict]]:
    """The documents the split stage put on side `split`, per split task, in input order: the
    cleaned pieces whose byte in work/sides/ names that side, as docs/ records would hold them."""
    plan = Plan.load(output)
    tasks = []
    for task in range(plan.num_tasks):
        sides = np.load(plan.work_dir / "sides" / f"{task:05d}.npy")
        pieces = list(read_piece_records(documents_path(plan, task)))
        assert len(sides) == len(pieces), f"task {task}: {len(sides)} sides for {len(pieces)} pieces"
        tasks.append(
            [
                {**piece, "source": plan.inputs[piece["file"]].path}
                for piece, side in zip(pieces, sides.tolist())
                if side == SIDE_BYTES[split]
            ]
        )
    return tasks


def split_documents(output: Path, split: str) -> list[dict]:
    """Every document on side `split`, in task order (see split_documents_by_task)."""
    return [doc for task in split_documents_by_task(output, split) for doc in task]
