"""Near-duplicate removal: MinHash/LSH maths, and the three stages run on real clean files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.typed_config import ConfigError, from_dict
from pipeline.data.executor import read_marker, run_stage_locally
from pipeline.data.minhash import (
    MinHasher,
    candidate_probability,
    estimated_similarity,
    first_of_component,
    lsh_threshold,
)
from pipeline.data.prepare_config import PrepareConfig
from pipeline.data.prepare_plan import InputFile, Plan, assign_files_to_tasks
from pipeline.data.stages.clean import documents_path
from pipeline.data.stages.near_dedup import STAGES, drops_path, edges_path, near_duplicate_ordinals
from pipeline.formats.documents import PieceWriter, read_piece_records

CJK = [chr(c) for c in range(0x4E00, 0x4E00 + 2000)]


def random_text(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(CJK) for _ in range(length))


def change_characters(rng: random.Random, text: str, count: int) -> str:
    chars = list(text)
    for index in rng.sample(range(len(chars)), count):
        chars[index] = "变" if chars[index] != "变" else "化"
    return "".join(chars)


def ngram_jaccard(a: str, b: str, n: int = 5) -> float:
    x = {a[i : i + n] for i in range(len(a) - n + 1)}
    y = {b[i : i + n] for i in range(len(b) - n + 1)}
    return len(x & y) / len(x | y)


# --- the maths --------------------------------------------------------------------------------


def test_signature_agreement_estimates_ngram_jaccard():
    rng = random.Random(3)
    base = random_text(rng, 600)
    variants = [change_characters(rng, base, k) for k in (2, 10, 30, 60)] + [base[:300] + random_text(rng, 300)]
    hasher = MinHasher(ngram=5, num_permutations=256, bands=32, seed=0)
    signatures = hasher.signatures([base, *variants])
    for row, variant in enumerate(variants, start=1):
        exact = ngram_jaccard(base, variant)
        estimate = float(estimated_similarity(signatures[0], signatures[row]))
        # standard error at 256 permutations is ≤ 0.032; allow 4 of them
        assert abs(estimate - exact) < 0.13, (row, exact, estimate)
    unrelated = hasher.signatures([random_text(rng, 600)])[0]
    assert float(estimated_similarity(signatures[0], unrelated)) < 0.05


def test_signatures_are_seeded_and_independent_of_batching():
    rng = random.Random(4)
    texts = [random_text(rng, rng.randint(0, 40)) for _ in range(30)] + ["", "短", "四个字符", random_text(rng, 20000)]
    hasher = MinHasher(ngram=5, num_permutations=64, bands=8, seed=7)
    together = hasher.signatures(texts)
    assert together.dtype == np.uint32 and together.shape == (len(texts), 64)
    one_by_one = np.stack([hasher.signatures([t])[0] for t in texts])
    np.testing.assert_array_equal(together, one_by_one)
    np.testing.assert_array_equal(together, MinHasher(5, 64, 8, seed=7).signatures(texts))
    assert (MinHasher(5, 64, 8, seed=8).signatures(texts) != together).mean() > 0.9
    # texts shorter than n: one padded n-gram, still distinct from each other
    assert not np.array_equal(together[-3], together[-2])
    bands = hasher.band_hashes(together)
    assert bands.shape == (len(texts), 8) and bands.dtype == np.uint64


def test_threshold_formula():
    assert lsh_threshold(16, 8) == pytest.approx(0.7071, abs=1e-4)
    assert candidate_probability(0.9, 16, 8) > 0.99
    assert candidate_probability(0.3, 16, 8) < 0.002


def reference_components(num_nodes: int, edges: list[tuple[int, int]]) -> list[int]:
    parent = list(range(num_nodes))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [find(x) for x in range(num_nodes)]


@pytest.mark.parametrize("seed", range(5))
def test_first_of_component_matches_a_plain_union_find(seed):
    rng = random.Random(seed)
    num_nodes = 300
    edges = [(rng.randrange(num_nodes), rng.randrange(num_nodes)) for _ in range(rng.choice([50, 200, 400]))]
    edges += [(i, i + 1) for i in range(100, 160)][::-1]  # a long chain, given back to front
    labels = first_of_component(num_nodes, [a for a, _ in edges], [b for _, b in edges])
    assert labels.tolist() == reference_components(num_nodes, edges)


# --- the stages on clean files ----------------------------------------------------------------


def build_corpus() -> tuple[list[list[tuple[int, int, str, str]]], set[str], set[str]]:
    """Per input file: (row, part, label, text) in order. Returns files, the labels that must
    be removed and the labels that must stay."""
    rng = random.Random(11)
    a, b, c, d = (random_text(rng, 400) for _ in range(4))
    a_edited = change_characters(rng, a, 3)
    a_extended = a + "这是后来追加的一句话，内容与原文无关。"
    d_shares_prefix = d[:100] + random_text(rng, 300)  # 5-gram Jaccard ≈ 0.15 with d
    filler = iter(random_text(rng, rng.randint(50, 400)) for _ in range(60))
    files = [
        [(0, 0, "f0", next(filler)), (1, 0, "a_edited", a_edited), (2, 0, "b", b), (3, 0, "d", d)],
        [(0, 0, "f1", next(filler)), (4, 0, "a", a), (5, 0, "f2", next(filler))],
        [(0, 0, "a_extended", a_extended), (1, 0, "b_exact", b), (2, 0, "d_prefix", d_shares_prefix)],
        [(0, 0, "c", c), (0, 1, "c_edited_part", change_characters(rng, c, 2)), (1, 0, "f3", next(filler))],
        [(row, 0, f"g{row}", next(filler)) for row in range(12)],
    ]
    removed = {"a", "a_extended", "b_exact", "c_edited_part"}
    kept = {label for rows in files for _, _, label, _ in rows} - removed
    return files, removed, kept


def make_plan(output: Path, files, num_tasks: int, num_buckets: int, enabled: bool = True, **near) -> Plan:
    config = from_dict(PrepareConfig, {"dedup": {"num_buckets": num_buckets, "near": {"enabled": enabled, **near}}})
    sizes = [sum(len(text.encode()) for *_, text in rows) for rows in files]
    plan = Plan(
        output=output,
        inputs=[InputFile(path=f"file{i}.csv", size=size, mtime_ns=0) for i, size in enumerate(sizes)],
        ignored=[],
        config=config,
        num_tasks=num_tasks,
        num_buckets=num_buckets,
        task_files=assign_files_to_tasks(sizes, num_tasks),
        fingerprint="test",
    )
    # what the clean stage leaves behind: each task's documents in (file, row, part) order
    for task, file_indices in enumerate(plan.task_files):
        with PieceWriter(documents_path(plan, task)) as writer:
            for file_index in file_indices:
                for row, part, _label, text in files[file_index]:
                    writer.write(text, file_index, row, part)
    return plan


def removed_labels(plan: Plan, files) -> list[str]:
    """Labels (from `files`) of the documents near_duplicate_ordinals removes, in global order."""
    label_of = {(file, row, part): label for file, rows in enumerate(files) for row, part, label, _ in rows}
    labels = []
    for task in range(plan.num_tasks):
        ordinals = set(near_duplicate_ordinals(plan, task).tolist())
        pieces = read_piece_records(documents_path(plan, task))
        labels += [label_of[p["file"], p["row"], p["part"]] for i, p in enumerate(pieces) if i in ordinals]
    return labels


def run_near_dedup(plan: Plan, workers: int = 1) -> None:
    for stage in STAGES:
        run_stage_locally(plan, stage, workers=workers, show_progress=False)


def test_near_duplicates_are_removed_and_the_first_kept(tmp_path):
    files, removed, kept = build_corpus()
    plan = make_plan(tmp_path / "out", files, num_tasks=2, num_buckets=3)
    run_near_dedup(plan)
    labels = removed_labels(plan, files)
    assert set(labels) == removed and len(labels) == len(removed)
    assert not kept & set(labels)
    stats = read_marker(plan, "near_resolve", 0)
    # {a_edited, a, a_extended}, {b, b_exact}, {c, c_edited_part}
    assert stats["components"] == 3 and stats["near_duplicates"] == 4 and stats["documents_in_components"] == 7
    drops = np.load(drops_path(plan))
    assert list(drops.dtype.names) == ["task", "ordinal"]
    assert drops.tolist() == sorted(drops.tolist())


def test_without_verification_every_candidate_is_linked(tmp_path):
    """min_similarity 0 links LSH candidates unchecked: same result here (no false positives
    among these texts), but the reduce then needs no signatures."""
    files, removed, _ = build_corpus()
    plan = make_plan(tmp_path / "out", files, num_tasks=2, num_buckets=2, min_similarity=0.0)
    run_near_dedup(plan)
    assert set(removed_labels(plan, files)) == removed


def test_verification_rejects_candidates_below_min_similarity(tmp_path):
    """A loose LSH (64 bands of 2 rows, threshold ≈ 0.125) makes the shared-prefix pair a
    candidate; unverified it is merged, verified at 0.7 it is not."""
    files, removed, _ = build_corpus()
    loose = make_plan(tmp_path / "loose", files, 1, 1, bands=64, min_similarity=0.0)
    run_near_dedup(loose)
    assert "d_prefix" in removed_labels(loose, files)
    checked = make_plan(tmp_path / "checked", files, 1, 1, bands=64, min_similarity=0.7)
    run_near_dedup(checked)
    assert set(removed_labels(checked, files)) == removed


@pytest.mark.parametrize("num_tasks,num_buckets", [(1, 1), (2, 4), (5, 3), (5, 16)])
def test_result_does_not_depend_on_task_or_bucket_count(tmp_path, num_tasks, num_buckets):
    files, removed, _ = build_corpus()
    baseline = make_plan(tmp_path / "baseline", files, num_tasks=1, num_buckets=1)
    run_near_dedup(baseline)
    plan = make_plan(tmp_path / "out", files, num_tasks=num_tasks, num_buckets=num_buckets)
    run_near_dedup(plan, workers=2)
    assert removed_labels(plan, files) == removed_labels(baseline, files)
    assert set(removed_labels(plan, files)) == removed
    for key in ("components", "near_duplicates", "documents_in_components"):
        assert read_marker(plan, "near_resolve", 0)[key] == read_marker(baseline, "near_resolve", 0)[key]


def test_outputs_are_byte_identical_across_runs_and_reruns_skip_done_tasks(tmp_path):
    files, _, _ = build_corpus()
    first = make_plan(tmp_path / "first", files, num_tasks=3, num_buckets=4)
    second = make_plan(tmp_path / "second", files, num_tasks=3, num_buckets=4)
    run_near_dedup(first)
    run_near_dedup(second, workers=2)
    for bucket in range(4):
        assert edges_path(first, bucket).read_bytes() == edges_path(second, bucket).read_bytes()
    assert drops_path(first).read_bytes() == drops_path(second).read_bytes()
    # a crashed resolve (output gone, no marker) is redone identically; finished tasks are skipped
    before = drops_path(first).read_bytes()
    drops_path(first).unlink()
    (first.work_dir / "markers" / "near_resolve" / "00000.json").unlink()
    run_near_dedup(first)
    assert drops_path(first).read_bytes() == before


def test_disabled_by_default_costs_nothing(tmp_path):
    assert PrepareConfig().dedup.near.enabled is False
    files, _, _ = build_corpus()
    plan = make_plan(tmp_path / "out", files, num_tasks=3, num_buckets=4, enabled=False)
    assert [stage.count_tasks(plan) for stage in STAGES] == [0, 0, 0]
    run_near_dedup(plan)
    assert not (plan.work_dir / "near_dedup").exists()
    assert all(len(near_duplicate_ordinals(plan, task)) == 0 for task in range(3))
    assert [stage.name for stage in STAGES] == ["near_map", "near_reduce", "near_resolve"]


@pytest.mark.parametrize(
    "near,message",
    [({"bands": 7}, "multiple of bands"), ({"ngram": 0}, "ngram"), ({"min_similarity": 1.5}, "min_similarity")],
)
def test_bad_settings_are_refused_with_their_key(near, message):
    with pytest.raises(ConfigError, match=message) as error:
        from_dict(PrepareConfig, {"dedup": {"near": near}})
    assert "dedup.near" in str(error.value)


def test_on_the_generated_corpus_near_dedup_is_a_superset_of_exact_dedup_for_any_task_count(corpus, tmp_path):
    """Real clean output: every exact duplicate is also a near-duplicate (same signature), the
    generator's emoji-suffixed copies are found on top, for 1, 2 and 5 tasks alike."""
    from pipeline.data.prepare_plan import create_plan
    from pipeline.data.stages import clean, dedup
    from pipeline.data.stages.split import duplicate_ordinals

    results = []
    for num_tasks, buckets in ((1, 4), (2, 3), (5, 7)):
        config = from_dict(PrepareConfig, {"dedup": {"num_buckets": buckets, "near": {"enabled": True}}})
        plan = create_plan([f"{corpus}/**/*.csv*"], tmp_path / f"t{num_tasks}", config, num_tasks=num_tasks)
        for stage in (clean.STAGE, dedup.STAGE, *STAGES):
            run_stage_locally(plan, stage, workers=2, show_progress=False)
        exact, near = set(), set()
        for task in range(num_tasks):
            records = list(read_piece_records(documents_path(plan, task)))
            keys = [(r["file"], r["row"], r["part"]) for r in records]
            exact.update(keys[i] for i in duplicate_ordinals(plan, task).tolist())
            near.update(keys[i] for i in near_duplicate_ordinals(plan, task).tolist())
        assert exact and exact < near
        results.append((exact, near))
    assert results[0] == results[1] == results[2]
