"""The trainer under faults at random moments (tests/faults/trainer_harness.py has the cases).

Each case once per CI run, with a fresh random seed printed in its failure message; replay
with FAULT_SEED=<seed>. benchmarks/bench_trainer_faults.py repeats every case ×20 into a table.
"""

from __future__ import annotations

import os
import random

import pytest

from tests.faults import trainer_harness as harness

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return harness.make_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def references(tmp_path_factory, data):
    cache = {}

    def get(zero: str) -> dict:
        if zero not in cache:
            cache[zero] = harness.reference_run(tmp_path_factory.mktemp(f"reference-{zero}"), data, zero)
        return cache[zero]

    return get


def seed_for(case: str) -> int:
    return int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(1 << 30))


@pytest.mark.parametrize(
    "case,zero",
    [
        ("kill9-group-random", "zero2"),
        ("kill9-in-save", "zero3"),
        ("signal-random", "zero3"),
        ("signal-startup", "zero2"),
        ("latest-damaged", "zero2"),
        ("two-trainers", "zero2"),
        ("disk-full", "zero2"),
    ],
)
def test_fault(case, zero, tmp_path, data, references):
    seed = seed_for(case)
    print(f"[faults] {case} {zero} seed {seed} (replay: FAULT_SEED={seed} pytest tests/faults -k {case})")
    outcome = harness.run_case(case, zero, seed, tmp_path, data, references(zero))
    assert outcome.ok, f"{case} {zero} seed {seed}: {outcome.result} (lost committed: {outcome.lost}) {outcome.detail}"
