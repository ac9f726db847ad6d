"""`prepare` at two commits, side by side in one run: the ratio a change to the data stages buys.

    .venv/bin/python benchmarks/compare_commits.py --base e35da7e                 # vs the working tree
    .venv/bin/python benchmarks/compare_commits.py --base e35da7e --head HEAD --repeats 5 --workers 1

The base commit is checked out into a temporary git worktree; both sides run with this
checkout's virtual environment (`python -m pipeline` from each tree imports that tree's code),
on bench_prepare's generated corpus and its trained tokenizer (benchmarks/results/work/<size>,
made by `bench_prepare.py --size <size>` first), with the same workers, interleaved within each
repeat. Reported per side: the median wall time and the median CPU seconds of each stage (CPU is
what a loaded machine does not inflate), and head ÷ base. The outputs of the two sides are
compared file by file outside work/ (a speed change must not change a byte).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from commit_trees import REPO, commit_trees, outputs  # benchmarks/, beside this script

STAGES = ("clean", "dedup", "group", "split", "tokenizer", "pack", "finalize")


def run_prepare(tree: Path, work: Path, output: Path, workers: int) -> dict:
    shutil.rmtree(output, ignore_errors=True)
    timings = output.with_suffix(".timings.json")
    command = [
        sys.executable, "-m", "pipeline", "prepare", "--input", f"{work}/corpus/**/*.csv*",
        "--output", str(output), "--workers", str(workers), "--quiet",
        "--tokenizer", str(work / "with_tokenizer" / "tokenizer"), "--timings", str(timings),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(timings.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--head", default=None, help="a commit (default: this working tree as it is)")
    parser.add_argument("--size", default="50MB", help="bench_prepare's corpus (benchmarks/results/work/<size>)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = REPO / "benchmarks" / "results" / "work" / args.size
    if not (work / "with_tokenizer" / "tokenizer").is_dir():
        sys.exit(f"{work}: no corpus and tokenizer yet — run benchmarks/bench_prepare.py --size {args.size} first")
    with commit_trees(args.base, args.head, "compare-commits-") as (scratch, trees):
        runs: dict[str, list[dict]] = {"base": [], "head": []}
        for repeat in range(args.repeats):
            for side in ("base", "head"):
                runs[side].append(run_prepare(trees[side], work, scratch / f"out-{side}", args.workers))
                print(f"repeat {repeat + 1} {side}: {runs[side][-1]['total']:.2f} s", flush=True)
        same = outputs(scratch / "out-base") == outputs(scratch / "out-head")
        rows = [("total (wall s)", *(statistics.median(r["total"] for r in runs[s]) for s in ("base", "head")))]
        for stage in STAGES:
            base, head = (statistics.median(r["cpu_stages"].get(stage, 0.0) for r in runs[s]) for s in ("base", "head"))
            rows.append((f"{stage} (CPU s)", base, head))
        rows.append(("stages (CPU s)", sum(r[1] for r in rows[1:]), sum(r[2] for r in rows[1:])))
        print(f"\n{args.size}, {args.workers} workers, median of {args.repeats}; base {args.base}, "
              f"head {args.head or 'working tree'}; outputs outside work/ identical: {same}\n")  # fmt: skip
        print("| | base | head | head ÷ base |\n|---|---|---|---|")
        for name, base, head in rows:
            print(f"| {name} | {base:.2f} | {head:.2f} | {head / base if base else float('nan'):.2f} |")
        if not same:
            sys.exit("the two commits' outputs differ")


if __name__ == "__main__":
    main()
