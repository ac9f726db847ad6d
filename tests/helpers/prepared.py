"""Reading what `prepare` leaves in OUTPUT/work/ (its intermediate files), for tests."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.prepare_plan import Plan
from pipeline.data.stages.clean import documents_path
from pipeline.formats.documents import read_piece_records


def cleaned_pieces(output: Path) -> list[dict]:
    """Every piece the clean stage made (before dedup), in task order: text, file, row, part, and
    the input file's path as `source`, as the documents in docs/ carry it."""
    plan = Plan.load(output)
    return [
        {**piece, "source": plan.inputs[piece["file"]].path}
        for task in range(plan.num_tasks)
        for piece in read_piece_records(documents_path(plan, task))
    ]
