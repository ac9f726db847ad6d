"""Repeat every trainer fault case N times (default 20) at random moments; print case × outcome.

    python benchmarks/bench_trainer_faults.py [--repeat 20] [--cases kill9-group-random,...]
        [--zero zero2,zero3] [--seed S] [--work /tmp/faults] [--markdown docs/fault-table.md]

Each repetition is a fresh run directory; the seed of each is printed so a failure can be
replayed (FAULT_SEED=<seed> pytest tests/faults -k <case>, or --seed here). The table counts, per
case and ZeRO stage: bitwise (finished equal to the uninterrupted run bit for bit, every sample
once per epoch), refused (a clear refusal, then finished bitwise), FAIL, and committed
checkpoints lost. Cost: ~1–2 min per repetition of a case on a 2-core machine.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.faults import trainer_harness as harness  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cases", default=",".join(harness.CASES))
    parser.add_argument("--zero", default="zero2,zero3")
    parser.add_argument("--seed", type=int, help="master seed (default: random, printed)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-trainer-faults"))
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    master = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    print(f"[bench] master seed {master}", flush=True)
    rng = random.Random(master)
    shutil.rmtree(args.work, ignore_errors=True)
    data = harness.make_data(args.work / "data")
    zeros = args.zero.split(",")
    references = {zero: harness.reference_run(args.work / f"reference-{zero}", data, zero) for zero in zeros}
    table: dict[tuple[str, str], dict] = defaultdict(
        lambda: {"runs": 0, "bitwise": 0, "refused": 0, "FAIL": 0, "lost": 0}
    )
    failures = []
    started = time.monotonic()
    for repetition in range(args.repeat):
        for case in args.cases.split(","):
            for zero in zeros:
                seed = rng.randrange(1 << 30)
                work = args.work / f"{case}-{zero}-{repetition}"
                outcome = harness.run_case(case, zero, seed, work, data, references[zero])
                row = table[(case, zero)]
                row["runs"] += 1
                row["lost"] += outcome.lost
                kind = "FAIL" if not outcome.ok else outcome.result
                row[kind] += 1
                print(
                    f"[bench] {repetition + 1}/{args.repeat} {case} {zero} seed {seed}: {kind} "
                    f"({outcome.launches} launches, lost {outcome.lost}) {outcome.detail[:200]}",
                    flush=True,
                )
                if not outcome.ok:
                    failures.append((case, zero, seed, outcome.result[:300]))
                else:
                    shutil.rmtree(work, ignore_errors=True)
    minutes = (time.monotonic() - started) / 60
    lines = [
        f"Trainer fault runner: {args.repeat} repetition(s) per case, master seed {master}, {minutes:.0f} min",
        "",
        "| case | ZeRO | runs | bitwise | refused (then bitwise) | FAIL | committed checkpoints lost |",
        "|---|---|---|---|---|---|---|",
    ]
    for (case, zero), row in table.items():
        lines.append(
            f"| {case} | {zero} | {row['runs']} | {row['bitwise']} | {row['refused']} | {row['FAIL']} | {row['lost']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    for failure in failures:
        print("[bench] FAIL", *failure)
    if args.markdown:
        args.markdown.write_text(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
