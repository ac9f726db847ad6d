"""Data preparation side by side in one run: `prepare` vs raw encode vs the HF way vs datatrove.

    .venv/bin/python benchmarks/bench_prepare.py --size 50MB --workers 1,2            # quick
    .venv/bin/python benchmarks/bench_prepare.py --size 0.5GB --workers 2,1 --repeats 2
    .venv/bin/python benchmarks/bench_prepare.py --size 2GB --workers 2 --sides prepare   # memory at 4S

On one generated corpus (benchmarks/results/work/<size>/corpus, kept between runs) and one
tokenizer trained once up front (untimed, given to every side), it runs each side as a command of
its own — `prepare --tokenizer DIR`, and the peers in benchmarks/prepare_peers.py — with the same
input files, tokenizer and workers, interleaved (side by side within each repeat), and reports per
side the median wall time of the whole command, MB/s and tokens/s per worker, the peak RSS of
its largest process, 1 → N worker scaling, and which files and rows it failed to read (ground
truth: the generator's generation.json). `prepare` also reports its per-stage seconds.
Each command runs with OMP_NUM_THREADS=1, RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false,
so a worker is one core on every side. The load average is recorded around every run: the
development machine has 2 cores and is shared, so compare ratios measured in the same run.
A markdown table goes to stdout and a JSON result to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.tools.corpus_gen import generate_corpus, parse_size  # noqa: E402

PEERS = REPO / "benchmarks" / "prepare_peers.py"
SIDES = ("prepare", "encode", "hf", "datatrove")
ONE_CORE = {"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
# A fresh wrapper per command: its RUSAGE_CHILDREN ru_maxrss is the peak RSS of the largest
# process of that command alone (children and grandchildren, once they are waited for). Worker
# processes nobody waits for (datatrove's multiprocess forkserver) escape it, so the wrapper also
# samples every process of the tree with psutil every 50 ms and reports the larger of the two.
# The child's stderr goes to a file, not a pipe: a pipe read only after the child exits blocks a
# child that logs more than 64 KiB (datatrove warns once per document it skips) forever.
WRAPPER = """
import resource, subprocess, sys, tempfile, time, psutil
start = time.monotonic()
log = tempfile.TemporaryFile("w+")
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=log, text=True)
peak, root = 0, psutil.Process(child.pid)
while child.poll() is None:
    try:
        for proc in [root, *root.children(recursive=True)]:
            peak = max(peak, proc.memory_info().rss)
    except psutil.Error:
        pass
    time.sleep(0.05)
log.seek(0)
stderr = log.read()
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(child.returncode, wall, max(usage.ru_maxrss, peak // 1024), usage.ru_utime + usage.ru_stime)
sys.stderr.write(stderr[-3000:])
"""


def timed_command(command: list[str]) -> dict:
    """Run `command`; its wall time (process start to exit), peak RSS of its largest process, load."""
    load_before = os.getloadavg()[0]
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **ONE_CORE, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    code, wall, peak_kb, cpu = done.stdout.split()[-4:]
    if int(code) != 0:
        raise RuntimeError(f"{' '.join(command[:4])} … failed ({code}):\n{done.stderr}")
    return {
        "wall_s": float(wall),
        "peak_rss_mb": int(peak_kb) / 1024,
        "cpu_s": float(cpu),  # user + system of the waited-for tree: what a loaded machine does not inflate
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


# ---------------------------------------------------------------- the sides


def run_prepare(corpus: Path, output: Path, workers: int, extra: list[str]) -> dict:
    shutil.rmtree(output, ignore_errors=True)
    timings = output.parent / f"{output.name}.timings.json"
    command = [sys.executable, "-m", "pipeline", "prepare", "--input", f"{corpus}/**/*.csv*", "--output", str(output)]
    command += ["--workers", str(workers), "--quiet", "--timings", str(timings), *extra]
    result = timed_command(command)
    inner = json.loads(timings.read_text())
    report = json.loads((output / "report.json").read_text())
    totals = report["totals"]
    return {
        **result,
        "seconds": inner["total"],
        "stages": inner["stages"],
        "cpu_stages": inner.get("cpu_stages"),
        "tokens": totals["tokens"],
        "rows_read": totals["rows_read"],
        "documents_kept": totals["train_documents"] + totals["validation_documents"],
        "duplicates_dropped": totals["duplicates"],
        "blocks": totals["blocks"],
        "errors": [{"path": e["path"], "reason": e.get("reason"), "error": e.get("error")} for e in report["errors"]],
    }


def run_peer(side: str, workers: int, work: Path, **paths: Path) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result_path = work.parent / f"{work.name}.result.json"
    command = [sys.executable, str(PEERS), side, "--workers", str(workers), "--work", str(work)]
    command += ["--result", str(result_path)]
    for key, value in paths.items():
        command += [f"--{key}", str(value)]
    result = timed_command(command)
    result.update(json.loads(result_path.read_text()))
    shutil.rmtree(work, ignore_errors=True)  # caches and stage outputs: GBs at large sizes
    return result


# ---------------------------------------------------------------- what each side could read


def ground_truth(corpus: Path) -> dict:
    """Complete rows with a `content` column per file, and how many of them have an empty cell."""
    generation = json.loads((corpus / "generation.json").read_text())
    files = {}
    for record in generation["files"]:
        content = record.get("text_column") == "content"
        files[str(corpus / record["path"])] = {
            "rows": record["rows"] if content else 0,
            "empty": record.get("counts", {}).get("empty", 0) if content else 0,
            "damage": record["damage"],
        }
    return {"rows": generation["rows_with_content_column"], "bytes": generation["bytes_written"], "files": files}


def prepare_per_file(output: Path) -> dict:
    """Rows per file as prepare's report counts them (a malformed row, e.g. the cut last row of
    a truncated file, is counted, dropped and named there; not a row of the ground truth)."""
    report = json.loads((output / "report.json").read_text())
    return {
        f["path"]: {"rows": f["rows_read"] - f.get("rows_malformed", 0), "error": f.get("error")}
        for f in report["files"]
    }


def probe(side: str, corpus: Path, work: Path, truth: dict) -> dict:
    """Per file: rows the peer's own reader gets (untimed), against the generator's count."""
    cached = work / f"probe-{side}.json"
    if not cached.exists():
        listing = work / "all-files.txt"
        listing.write_text("\n".join(sorted(truth["files"])) + "\n")
        command = [sys.executable, str(PEERS), f"probe-{side}", "--corpus", str(corpus), "--files", str(listing)]
        subprocess.run([*command, "--result", str(cached)], cwd=REPO, check=True, env={**os.environ, **ONE_CORE})
    return json.loads(cached.read_text())


def read_losses(per_file: dict, truth: dict, skips_empty: bool = False) -> dict:
    """Files a reader failed on or read short or long, and the rows that cost. `skips_empty`:
    the reader drops empty cells while reading (datatrove) — the same rows our cleaner drops as
    empty, so they are not counted as lost."""
    problems = []
    for path, expected in truth["files"].items():
        want = expected["rows"] - (expected["empty"] if skips_empty else 0)
        got = per_file.get(path, {"rows": 0, "error": "not read"})
        if got["error"] or got["rows"] != want:
            problems.append(
                {
                    "file": str(Path(path).relative_to(Path(path).parents[1])),
                    "damage": expected["damage"],
                    "rows_expected": want,
                    "rows_read": got["rows"],
                    "error": got["error"]
                    or (f"silently {'short' if got['rows'] < want else 'long'} by {abs(want - got['rows']):,}"),
                }
            )
    lost = sum(max(0, p["rows_expected"] - p["rows_read"]) for p in problems)
    return {
        "problems": problems,
        "rows_lost": lost,
        "rows_extra": sum(max(0, p["rows_read"] - p["rows_expected"]) for p in problems),
    }


# ---------------------------------------------------------------- report


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summarize(runs: dict, input_mb: dict[str, float]) -> list[dict]:
    """One row per (side, workers); MB/s counts the bytes of the files that side was given."""
    rows = []
    for (side, workers), repeats in sorted(runs.items(), key=lambda kv: (kv[0][1], SIDES.index(kv[0][0]))):
        wall = median_of(repeats, "wall_s")
        megabytes = input_mb.get(side, input_mb["all"])
        tokens = repeats[0]["tokens"]
        rows.append(
            {
                "side": side,
                "workers": workers,
                "repeats": len(repeats),
                "wall_s": wall,
                "walls_s": [round(r["wall_s"], 2) for r in repeats],
                "inner_s": median_of(repeats, "seconds"),
                "input_mb": megabytes,
                "mb_s_per_worker": megabytes / wall / workers,
                "tokens": tokens,
                "tokens_s_per_worker": tokens / wall / workers,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in repeats),
                "cpu_s": median_of(repeats, "cpu_s"),
                "load": [round(r["load_before"], 1) for r in repeats],
            }
        )
    return rows


def markdown(rows: list[dict], prepare_wall: dict[int, float]) -> str:
    lines = [
        "| side | workers | wall s (median; runs) | work s | CPU s | MB/s per worker | tokens/s per worker | peak RSS MB | × prepare's wall | load 1-min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["wall_s"] / prepare_wall[r["workers"]] if r["workers"] in prepare_wall else float("nan")
        lines.append(
            f"| {r['side']} | {r['workers']} | {r['wall_s']:.2f} ({', '.join(map(str, r['walls_s']))}) | "
            f"{r['inner_s']:.2f} | {r['cpu_s']:.1f} | {r['mb_s_per_worker']:.2f} | {r['tokens_s_per_worker'] / 1e6:.3f} M | "
            f"{r['peak_rss_mb']:.0f} | {ratio:.2f} | {', '.join(map(str, r['load']))} |"
        )
    return "\n".join(lines)


def scaling_lines(rows: list[dict]) -> list[str]:
    by = {(r["side"], r["workers"]): r["wall_s"] for r in rows}
    out = []
    for side in SIDES:
        counts = sorted(w for s, w in by if s == side)
        if len(counts) > 1 and counts[0] == 1:
            out += [f"- {side}: 1 → {w} workers {by[(side, 1)] / by[(side, w)]:.2f}×" for w in counts[1:]]
    return out


def planner_check(prepare_runs: dict[int, list[dict]], input_bytes: int, work: Path, commit: str, size: str) -> dict:
    """The planner's per-core rate table from the 1-worker run (paste it into PREP_RATES in
    pipeline/tools/run_planner.py), and its projection for the other worker counts next to
    what they measured: the planner checked against a measurement it was not fitted to."""
    from pipeline.tools.run_planner import prep_projection, rates_from_timings

    if 1 not in prepare_runs:
        return {}
    # CPU seconds per stage where prepare reports them: on a shared machine wall time mostly
    # measures the other jobs (the CPU time of a stage is what one idle core would take)
    basis = "cpu_stages" if prepare_runs[1][0].get("cpu_stages") else "stages"
    runs = prepare_runs[1]
    stages = {name: statistics.median(r[basis][name] for r in runs) for name in runs[0][basis]}
    when = datetime.date.today().isoformat()
    clock = "CPU" if basis == "cpu_stages" else "wall"
    where = f"{when}, commit {commit}, {size}, 1 worker, {clock} seconds per stage, {os.cpu_count()}-core dev machine"
    rates = rates_from_timings(stages, input_bytes, where)
    print("\nPer-core rates for PREP_RATES (pipeline/tools/run_planner.py):")
    for name, rate in rates.stages.items():
        value = f"mb_per_s={rate.mb_per_s:.2f}" if rate.mb_per_s else f"fixed_s={rate.fixed_s:.2f}"
        print(f'        "{name}": StageRate("{rate.kind}", {value}),')
    print(f'    measured="{rates.measured}",')
    checks = {}
    for count, repeats in prepare_runs.items():
        plan = json.loads((work / f"prepare-{count}" / "plan.json").read_text())
        projected = prep_projection(input_bytes, count, plan["num_tasks"], plan["num_buckets"], rates=rates)["total_s"]
        measured = statistics.median(sum(r["stages"].values()) for r in repeats)  # wall: load-dependent
        checks[count] = {"projected_s": projected, "measured_s": measured}
        print(
            f"planner, {count} worker(s), {plan['num_tasks']} tasks: projected {projected:.1f} s, measured {measured:.1f} s"
        )
    return {
        "rates": {k: dataclasses.asdict(v) for k, v in rates.stages.items()},
        "measured": rates.measured,
        "checks": checks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="50MB", help="corpus size (50MB quick, 0.5GB and 2GB real)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts, e.g. 1,2")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, of {','.join(SIDES)}")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats per side (median)")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument(
        "--tokenizer", type=Path, help="a trained tokenizer dir to give every side (default: train one here, untimed)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default benchmarks/results/work/<size>")
    parser.add_argument("--result", type=Path, default=None, help="JSON result (default benchmarks/results/…)")
    args = parser.parse_args()
    size = parse_size(args.size)
    workers = [int(w) for w in args.workers.split(",")]
    sides = [s for s in args.sides.split(",") if s]
    if unknown := set(sides) - set(SIDES):
        raise SystemExit(f"--sides: unknown {sorted(unknown)}; choose from {','.join(SIDES)}")
    if "datatrove" in sides and importlib.util.find_spec("datatrove") is None:
        print("datatrove is not installed (EXTRAS=test,lint,opencc,bench bash launch/install.sh): side skipped")
        sides.remove("datatrove")
    results = REPO / "benchmarks" / "results"
    work = args.workdir or results / "work" / args.size
    work.mkdir(parents=True, exist_ok=True)
    overrides = [f"tokenizer.vocab_size={args.vocab_size}"]

    corpus = work / "corpus"
    if not (corpus / "generation.json").exists():
        started = time.monotonic()
        generate_corpus(corpus, size, seed=0)
        print(f"generated {size / 1e6:.0f} MB in {time.monotonic() - started:.0f} s", flush=True)
    truth = ground_truth(corpus)
    input_mb = truth["bytes"] / 1e6
    # the tokenizer, trained once and untimed; every side is given it ready-made
    seed_run = work / "with_tokenizer"
    if args.tokenizer:
        tokenizer = args.tokenizer.resolve()
    else:
        if not (seed_run / "manifest.json").exists():
            run_prepare(corpus, seed_run, max(workers), overrides)
        tokenizer = seed_run / "tokenizer"

    readable = {}
    for side in {"hf", "datatrove"} & set(sides):
        per_file = probe(side, corpus, work, truth)
        readable[side] = read_losses(per_file, truth, skips_empty=side == "datatrove")
        listing = work / f"files-{side}.txt"
        listing.write_text("\n".join(p for p, got in sorted(per_file.items()) if not got["error"]) + "\n")

    runs: dict[tuple[str, int], list[dict]] = {}
    for repeat in range(args.repeats):
        for count in workers:
            for side in sides:
                print(f"[repeat {repeat + 1}/{args.repeats}] {side}, {count} worker(s)…", flush=True)
                if side == "prepare":
                    out = work / f"prepare-{count}"
                    result = run_prepare(corpus, out, count, overrides + ["--tokenizer", str(tokenizer)])
                elif side == "encode":
                    # the documents prepare packs, exported once, untimed (split.write_documents
                    # writes exactly them: tests/data/test_prepare.py); the timed prepare does not
                    documents = work / "prepare-documents"
                    if not (documents / "docs").exists():
                        export = ["split.write_documents=true", "--tokenizer", str(tokenizer)]
                        run_prepare(corpus, documents, max(workers), overrides + export)
                    result = run_peer("encode", count, work / "peer", docs=documents / "docs", tokenizer=tokenizer)
                else:
                    listing = work / f"files-{side}.txt"
                    result = run_peer(side, count, work / "peer", corpus=corpus, files=listing, tokenizer=tokenizer)
                runs.setdefault((side, count), []).append(result)
                print(f"    {result['wall_s']:.2f} s wall, peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)

    for count in workers:
        if (work / f"prepare-{count}" / "report.json").exists():
            readable["prepare"] = read_losses(prepare_per_file(work / f"prepare-{count}"), truth)
    side_mb = {"all": input_mb}
    for side in readable.keys() & {"hf", "datatrove"}:
        listing = (work / f"files-{side}.txt").read_text().split()
        side_mb[side] = sum(Path(f).stat().st_size for f in listing) / 1e6
    rows = summarize(runs, side_mb)
    prepare_wall = {r["workers"]: r["wall_s"] for r in rows if r["side"] == "prepare"}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    print(
        f"\n## {args.size}: {input_mb:.1f} MB, {len(truth['files'])} files, {truth['rows']:,} rows with a content column"
    )
    print(f"commit {commit}, {os.cpu_count()} cores, load average now {os.getloadavg()}\n")
    print(markdown(rows, prepare_wall))
    if scaling := scaling_lines(rows):
        print("\nScaling (wall time ratio):\n" + "\n".join(scaling))
    prepare_runs = {w: runs[("prepare", w)] for w in workers if ("prepare", w) in runs}
    for count, repeats in prepare_runs.items():
        stages = {name: statistics.median(r["stages"][name] for r in repeats) for name in repeats[0]["stages"]}
        print(
            f"\nprepare, {count} worker(s), per stage (median s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
        )
        first = repeats[0]
        print(
            f"  rows read {first['rows_read']:,} of {truth['rows']:,}; errors: "
            + "; ".join(f"{Path(e['path']).name}: {e['reason']}" for e in first["errors"])
        )
    planner = planner_check(prepare_runs, truth["bytes"], work, commit, args.size)
    for side, losses in readable.items():
        extra = f" and read {losses['rows_extra']:,} row(s) the generator did not write" if losses["rows_extra"] else ""
        print(f"\n{side} could not read {losses['rows_lost']:,} of {truth['rows']:,} rows{extra}:")
        for p in losses["problems"]:
            print(f"  {p['file']} ({p['damage']}): {p['rows_read']:,} of {p['rows_expected']:,} rows — {p['error']}")

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = args.result or results / f"bench_prepare-{args.size}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "size": args.size,
        "input_mb": input_mb,
        "files": len(truth["files"]),
        "rows": truth["rows"],
        "commit": commit,
        "cores": os.cpu_count(),
        "finished_utc": stamp,
        "summary": rows,
        "read_losses": readable,
        "planner": planner,
        "runs": {f"{side}/{count}": repeats for (side, count), repeats in runs.items()},
    }
    path.write_text(json.dumps(payload, indent=1))
    print(f"\nresult: {path}")


if __name__ == "__main__":
    main()
