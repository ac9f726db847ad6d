"""Repeat every trainer fault case N times (default 20) at random moments; print case × outcome.

    python benchmarks/bench_trainer_faults.py [--repeat 20] [--cases kill9-group-random,...]
        [--zero zero2,zero3] [--seed S] [--work /tmp/faults]
        [--results benchmarks/results/trainer-faults.jsonl] [--markdown docs/trainer-faults-table.md]
    python benchmarks/bench_trainer_faults.py --table-only --results ... [--markdown ...]

Each repetition is a fresh run directory; the seed of each is printed so a failure can be
replayed (FAULT_SEED=<seed> pytest tests/faults -k <case>, or --seed here). The table counts, per
case and ZeRO stage: bitwise (finished equal to the uninterrupted run bit for bit, every sample
once per epoch), refused (a clear refusal, then finished bitwise), FAIL, and committed
checkpoints lost. Cost: ~1–2 min per repetition of a case on a 2-core machine, so ×20 of every
case is many hours: with --results every finished run is appended (with the commit it ran on) to
a JSON-lines file and the table is built from all runs recorded there, so the ×20 can be
accumulated over several sittings; --table-only rebuilds the table without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.faults import trainer_harness as harness  # noqa: E402

KINDS = ("bitwise", "refused", "FAIL")


def code_commit() -> str:
    """The commit the runs ran on (+ '-dirty' when the working tree differs), so old records stay attributable.
    The results folder does not count: the committed record file grows while the runner runs."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"],
        cwd=REPO,
        capture_output=True,
    )
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def record_of(outcome: harness.Outcome, repetition: int, commit: str, seconds: float) -> dict:
    kind = "FAIL" if not outcome.ok else outcome.result
    return {
        "case": outcome.case,
        "zero": outcome.zero,
        "seed": outcome.seed,
        "kind": kind,
        "lost": outcome.lost,
        "launches": outcome.launches,
        "detail": (outcome.result if kind == "FAIL" else outcome.detail)[:300],
        "repetition": repetition,
        "commit": commit,
        "seconds": round(seconds, 1),
        "load_average": round(os.getloadavg()[0], 1),
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def read_records(path: Path | None) -> list[dict]:
    if path is None or not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a runner killed mid-write leaves a torn last line
                print(f"[bench] {path}:{number}: torn record skipped", file=sys.stderr)
    return records


def table_text(records: list[dict]) -> str:
    rows: dict[tuple[str, str], dict] = defaultdict(lambda: {"runs": 0, "lost": 0, **dict.fromkeys(KINDS, 0)})
    for record in records:
        row = rows[(record["case"], record["zero"])]
        row["runs"] += 1
        row[record["kind"]] += 1
        row["lost"] += record["lost"]
    commits = sorted({record["commit"] for record in records})
    hours = sum(record["seconds"] for record in records) / 3600
    lines = [
        f"{len(records)} runs on commit(s) {', '.join(commits) or '-'}, {hours:.1f} h of runner time",
        "",
        "| case | ZeRO | runs | bitwise | refused (then bitwise) | FAIL | committed checkpoints lost |",
        "|---|---|---|---|---|---|---|",
    ]
    order = {case: i for i, case in enumerate(harness.CASES)}
    for (case, zero), row in sorted(rows.items(), key=lambda item: (order.get(item[0][0], 99), item[0][1])):
        lines.append(
            f"| {case} | {zero} | {row['runs']} | {row['bitwise']} | {row['refused']} | {row['FAIL']} | {row['lost']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cases", default=",".join(harness.CASES))
    parser.add_argument("--zero", default="zero2,zero3")
    parser.add_argument("--seed", type=int, help="master seed (default: random, printed)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-trainer-faults"))
    parser.add_argument("--results", type=Path, help="append each run here (JSON lines); the table covers all of it")
    parser.add_argument("--table-only", action="store_true", help="print the table of --results; run nothing")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    if args.table_only:
        if not args.results or not args.results.exists():
            parser.error("--table-only needs an existing --results file")
        return finish(read_records(args.results), args.markdown)

    unknown = set(args.cases.split(",")) - set(harness.CASES)
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(harness.CASES)}")
    master = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    print(f"[bench] master seed {master}", flush=True)
    rng = random.Random(master)
    commit = code_commit()
    shutil.rmtree(args.work, ignore_errors=True)
    data = harness.make_data(args.work / "data")
    zeros = args.zero.split(",")
    references = {zero: harness.reference_run(args.work / f"reference-{zero}", data, zero) for zero in zeros}
    session = []
    for repetition in range(args.repeat):
        for case in args.cases.split(","):
            for zero in zeros:
                seed = rng.randrange(1 << 30)
                work = args.work / f"{case}-{zero}-{repetition}"
                started = time.monotonic()
                outcome = harness.run_case(case, zero, seed, work, data, references[zero])
                record = record_of(outcome, repetition, commit, time.monotonic() - started)
                session.append(record)
                if args.results:
                    args.results.parent.mkdir(parents=True, exist_ok=True)
                    with args.results.open("a") as handle:  # one line per run: a kill loses at most that run
                        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                print(
                    f"[bench] {repetition + 1}/{args.repeat} {case} {zero} seed {seed}: {record['kind']} "
                    f"({outcome.launches} launches, lost {outcome.lost}, {record['seconds']:.0f} s) "
                    f"{record['detail'][:200]}",
                    flush=True,
                )
                if outcome.ok:
                    shutil.rmtree(work, ignore_errors=True)
    print(f"[bench] this sitting, master seed {master}:")
    print(table_text(session))
    return finish(read_records(args.results) if args.results else session, args.markdown)


def finish(records: list[dict], markdown: Path | None) -> int:
    text = table_text(records)
    print(text)
    failures = [record for record in records if record["kind"] == "FAIL" or record["lost"]]
    for record in failures:
        print(
            f"[bench] FAIL {record['case']} {record['zero']} seed {record['seed']} ({record['commit']}): "
            f"{record['detail']}"
        )
    if markdown:
        markdown.write_text(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
