"""Fault-injection runner for `prepare` (issue 10): every case of tests/faults, N times each,
with random timing; prints a case × outcome table (the one in docs/faults.md).

    .venv/bin/python benchmarks/fault_prepare.py --repeat 20 [--seed S] [--cases kill-group-pack,disk-full]

Cases: kill -9 of the whole process group and of the parent only, a random moment (0–0.6 s)
after each stage started, then an immediate re-run; two `prepare` runs started together on one
output; a file size limit (RLIMIT_FSIZE) in the middle of a shard; a marker or a shard deleted
or truncated after the fact; `prepare --append` killed (group or parent) in every stage of the
new version, each kill followed at once by the next run, compared with an uninterrupted append
(its version-1 folder is prepared from all sources but the last). The SLURM case (requeued array task beside a stale copy) needs
the cluster fixture and runs in tests/faults/test_slurm_stale_task.py only.

Outcomes: `identical` (byte-identical to an uninterrupted run), `clear-error, then identical`
(one error line naming the file, nothing torn published, the re-run identical), `… (kill
missed the stage)` (the run got past the stage before the kill; the re-run is still checked),
`CORRUPT …` (anything else — the runner exits 1 if any case ends so).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.faults.prepare_harness import (  # noqa: E402
    STAGES,
    case_append_killed,
    case_damaged,
    case_disk_full,
    case_kill,
    case_two_at_once,
    make_append_setup,
    make_setup,
)

_append_setups: dict = {}


def _append_case(setup, work: Path, rng: random.Random, mode: str) -> str:
    """`prepare --append` killed in every stage; its version-1 folder and reference are made once."""
    if "setup" not in _append_setups:
        _append_setups["setup"] = make_append_setup(setup, setup.reference.parent / "append")
    outcome = case_append_killed(setup, _append_setups["setup"], work, mode, rng)
    return "identical (some kills missed the stage)" if outcome.startswith("identical (") else outcome


def all_cases() -> dict:
    cases = {}
    for mode in ("group", "parent"):
        for stage in STAGES:
            cases[f"kill-{mode}-{stage}"] = lambda s, w, r, mode=mode, stage=stage: case_kill(s, w, stage, mode, r)
    for mode in ("group", "parent"):
        cases[f"append-{mode}-every-stage"] = lambda s, w, r, mode=mode: _append_case(s, w, r, mode)
    cases["two-at-once"] = case_two_at_once
    cases["disk-full-mid-shard"] = case_disk_full
    for what in ("marker", "shard"):
        for how in ("deleted", "truncated"):
            cases[f"{what}-{how}"] = lambda s, w, r, what=what, how=how: case_damaged(s, w, what, how, r)
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    print(f"seed {seed}", flush=True)
    cases = all_cases()
    chosen = [c for c in args.cases.split(",") if c] or list(cases)
    root = Path(args.work or tempfile.mkdtemp(prefix="fault-prepare-"))
    start = time.monotonic()
    setup = make_setup(root / "setup")
    print(f"setup (corpus, tokenizer, reference run): {time.monotonic() - start:.0f} s", flush=True)
    table: dict[str, Counter] = {}
    seconds: dict[str, float] = {}
    for name in chosen:
        table[name] = Counter()
        began = time.monotonic()
        for attempt in range(args.repeat):
            case_seed = random.Random(f"{seed}-{name}-{attempt}").randrange(1 << 30)  # replayable
            work = root / "runs" / f"{name}-{attempt}"
            work.mkdir(parents=True)
            outcome = cases[name](setup, work, random.Random(case_seed))
            short = outcome if not outcome.startswith("CORRUPT") else "CORRUPT"
            table[name][short] += 1
            if outcome.startswith("CORRUPT"):
                print(f"  {name} #{attempt} (case seed {case_seed}): {outcome}", flush=True)
            shutil.rmtree(work, ignore_errors=True)
        seconds[name] = time.monotonic() - began
        print(f"{name:<24} {dict(table[name])}  {seconds[name]:.0f} s", flush=True)
    outcomes = sorted({o for counts in table.values() for o in counts}, key=lambda o: (o.startswith("CORRUPT"), o))
    print(f"\n| case | runs | {' | '.join(outcomes)} |")
    print(f"|---|---|{'---|' * len(outcomes)}")
    for name, counts in table.items():
        print(f"| {name} | {sum(counts.values())} | {' | '.join(str(counts.get(o, 0)) for o in outcomes)} |")
    corrupt = sum(counts.get("CORRUPT", 0) for counts in table.values())
    total = sum(sum(counts.values()) for counts in table.values())
    print(f"\n{total} runs, {corrupt} corrupt; seed {seed}; {time.monotonic() - start:.0f} s")
    if args.work is None:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if corrupt else 0


if __name__ == "__main__":
    sys.exit(main())
