"""Faults injected into real `prepare` runs, at random moments (the seed is printed and in every
failure message; replay with FAULT_SEED=…). Each case ends byte-identical to an uninterrupted
run, or with one clear error line naming the file and nothing torn published.
benchmarks/fault_prepare.py repeats every case many times and prints the table in docs/faults.md."""

from __future__ import annotations

import random

import pytest

from tests.faults.prepare_harness import (
    AppendSetup,
    Setup,
    case_append_killed,
    case_damaged,
    case_disk_full,
    case_kill_every_stage,
    case_two_at_once,
    make_append_setup,
    new_seed,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(fault_setup) -> Setup:
    return fault_setup


@pytest.fixture
def seeded() -> tuple[int, random.Random]:
    seed = new_seed()
    print(f"FAULT_SEED={seed}")
    return seed, random.Random(seed)


@pytest.mark.parametrize("mode", ["group", "parent"])
def test_kill_9_in_every_stage_then_rerun_at_once(setup, tmp_path, seeded, mode):
    # parent: only the parent is killed; its pool workers must die with it (no orphans)
    seed, rng = seeded
    outcome = case_kill_every_stage(setup, tmp_path, mode, rng)
    assert outcome.startswith("identical"), f"FAULT_SEED={seed}: {outcome}"


def test_two_prepares_started_together_on_one_output(setup, tmp_path, seeded):
    seed, rng = seeded
    outcome = case_two_at_once(setup, tmp_path, rng)
    assert outcome == "identical", f"FAULT_SEED={seed}: {outcome}"


def test_file_size_limit_in_the_middle_of_a_shard(setup, tmp_path, seeded):
    seed, rng = seeded
    outcome = case_disk_full(setup, tmp_path, rng)
    assert outcome == "clear-error, then identical", f"FAULT_SEED={seed}: {outcome}"


@pytest.mark.parametrize("what", ["marker", "shard"])
@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_a_damaged_marker_or_shard_is_redone(setup, tmp_path, seeded, what, how):
    seed, rng = seeded
    outcome = case_damaged(setup, tmp_path, what, how, rng)
    assert outcome == "identical", f"FAULT_SEED={seed}: {outcome}"


@pytest.fixture(scope="module")
def append_setup(fault_setup, tmp_path_factory) -> AppendSetup:
    return make_append_setup(fault_setup, tmp_path_factory.mktemp("append"))


def test_append_killed_in_every_stage_then_rerun(setup, append_setup, tmp_path, seeded):
    """`prepare --append` under kill -9 (the whole group or the parent alone, chosen by the seed)."""
    seed, rng = seeded
    mode = rng.choice(["group", "parent"])
    outcome = case_append_killed(setup, append_setup, tmp_path, mode, rng)
    assert outcome.startswith("identical"), f"FAULT_SEED={seed} ({mode}): {outcome}"
