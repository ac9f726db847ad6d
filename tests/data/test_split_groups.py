"""The split keeps together what belongs together: every piece of one source row, rows that
share an identical piece, and (near dedup on) rows linked as near duplicates land on one side.

The expected groups come from how the inputs were built, not from the pipeline's own files."""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from pathlib import Path

from pipeline.core.typed_config import from_dict
from pipeline.data.executor import run_stage_locally
from pipeline.data.prepare_config import PrepareConfig
from pipeline.data.prepare_plan import create_plan
from pipeline.data.stages import STAGE_NAMES, STAGES
from tests.helpers.prepared import cleaned_pieces, split_documents


def run_until_split(corpus_glob: str, output: Path, settings: dict, num_tasks: int = 3):
    config = from_dict(PrepareConfig, settings)
    plan = create_plan([corpus_glob], output, config, num_tasks=num_tasks)
    for stage in STAGES[: STAGE_NAMES.index("split") + 1]:
        run_stage_locally(plan, stage, workers=1, show_progress=False)
    return plan


def sides_by_row(output: Path) -> dict[tuple[str, int], set[str]]:
    sides: dict[tuple[str, int], set[str]] = defaultdict(set)
    for split in ("train", "validation"):
        for record in split_documents(output, split):
            sides[(record["source"], record["row"])].add(split)
    return sides


def test_every_piece_of_a_row_lands_on_one_side(corpus, tmp_path):
    settings = {
        "clean": {"max_chars": 40},
        "dedup": {"num_buckets": 4},
        "split": {"validation_fraction": 0.2, "min_validation_documents": 40},
    }
    plan = run_until_split(f"{corpus}/**/*.csv*", tmp_path / "out", settings)
    pieces: dict[tuple[str, int], int] = defaultdict(int)
    for record in cleaned_pieces(plan.output):
        pieces[(record["source"], record["row"])] += 1
    split_rows = [key for key, count in pieces.items() if count > 1]
    assert len(split_rows) > 0.5 * len(pieces), f"only {len(split_rows)} of {len(pieces)} rows were cut into pieces"
    sides = sides_by_row(plan.output)
    leaked = [key for key in split_rows if len(sides.get(key, ())) > 1]
    assert sum("validation" in s for s in sides.values()) >= 40
    assert leaked == [], f"{len(leaked)} of {len(split_rows)} split rows have pieces in train and validation"


HAN = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可也你说年着发能下过子"
HAN += "天小学家多然后里自心前所经只新外动现当起都没同长本开还话方从理因面意些看先事如想其年里两见"


def sentence(rng: random.Random, length: int = 200) -> str:
    return "".join(rng.choice(HAN) for _ in range(length)) + "。"


def write_csv(path: Path, texts: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "content"])
        writer.writerows([i, text] for i, text in enumerate(texts))


def test_rows_linked_by_a_copied_or_near_identical_piece_share_a_side(tmp_path):
    """Row B repeats row A's first sentence — verbatim, or with one character changed (5-gram
    Jaccard ≈ 0.95) — and goes on with a sentence of its own. B's first piece is removed as a
    duplicate; its second piece must land on A's side, or the held-out set holds half of a
    training article."""
    rng = random.Random(7)
    originals, copies, pairs = [], [], []
    for index in range(240):
        first = sentence(rng)
        originals.append(first + sentence(rng))
        if index % 2:
            changed = rng.randrange(len(first) - 1)
            first = first[:changed] + ("是" if first[changed] != "是" else "的") + first[changed + 1 :]
        copies.append(first + sentence(rng))
        pairs.append(index)
    corpus = tmp_path / "corpus"
    write_csv(corpus / "a.csv", originals)
    write_csv(corpus / "b.csv", copies)
    settings = {
        "clean": {"max_chars": 250},
        "dedup": {"num_buckets": 3, "near": {"enabled": True}},
        "split": {"validation_fraction": 0.3, "min_validation_documents": 10},
    }
    plan = run_until_split(f"{corpus}/*.csv", tmp_path / "out", settings, num_tasks=2)
    sides = sides_by_row(plan.output)
    a_path, b_path = str(corpus / "a.csv"), str(corpus / "b.csv")
    assert all(len(sides[(b_path, i)]) == 1 for i in pairs), "every copy keeps its own second sentence"
    assert {s for i in pairs for s in sides[(a_path, i)]} == {"train", "validation"}
    apart = [i for i in pairs if sides[(a_path, i)] != sides[(b_path, i)]]
    assert apart == [], f"{len(apart)} of {len(pairs)} linked row pairs were split across train and validation"
