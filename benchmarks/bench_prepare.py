"""Data-preparation benchmark (issue 3). Not a test: run it by hand, numbers go in the README.

    .venv/bin/python benchmarks/bench_prepare.py --size 50MB --workers 2

On a generated corpus of the given size it measures, side by side in one run:
  1. `prepare` per stage: MB/s and tokens/s per worker (tokenizer training excluded: it is
     trained once up front and given with --tokenizer, as on the HF side);
  2. prepare throughput ÷ raw tokenizer encode throughput on the same cleaned text with the
     same workers (goal ≥ 0.8: everything but tokenization costs < 20 % on top);
  3. wall time of the common approach — datasets.load_dataset("csv") + .map(tokenize) +
     group_texts into 512-token blocks (HF run_clm.py) — with the same tokenizer and workers,
     and how many files it could not load at all (goal: prepare ≥ 3× faster);
  4. peak RSS per worker process at size S and 2S (goal ≤ 1 GB and flat).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import chain
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.formats.documents import read_records  # noqa: E402
from pipeline.tools.corpus_gen import generate_corpus, parse_size  # noqa: E402


def run_prepare(corpus: Path, output: Path, workers: int, extra: list[str]) -> dict:
    """Run `prepare` as a child process; returns its timings and the peak RSS of any process."""
    timings = output.with_suffix(".timings.json")
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "prepare",
        "--input",
        f"{corpus}/**/*.csv*",
        "--output",
        str(output),
        "--workers",
        str(workers),
        "--quiet",
        "--timings",
        str(timings),
        *extra,
    ]
    # a fresh wrapper process per run, so its RUSAGE_CHILDREN peak belongs to this run alone
    wrapper = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    peak_kb = int(
        subprocess.run(
            [sys.executable, "-c", wrapper, *command], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout.split()[-1]
    )
    result = json.loads(timings.read_text())
    result["peak_rss_mb"] = peak_kb / 1024
    return result


def _encode_file(args) -> int:
    from tokenizer import SentencePieceTokenizer

    path, tokenizer_dir = args
    tokenizer = SentencePieceTokenizer.load(Path(tokenizer_dir))
    texts = [r["text"] for r in read_records(path)]
    tokens = 0
    for start in range(0, len(texts), 512):
        tokens += sum(len(ids) + 1 for ids in tokenizer.encode_batch(texts[start : start + 512]))
    return tokens


def raw_encode(output: Path, workers: int) -> tuple[float, int]:
    """Encode exactly the cleaned documents that prepare packed, same workers, nothing else."""
    files = sorted(
        chain((output / "docs" / "train").glob("*.jsonl.zst"), (output / "docs" / "validation").glob("*.jsonl.zst"))
    )
    start = time.monotonic()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        tokens = sum(pool.map(_encode_file, [(f, output / "tokenizer") for f in files]))
    return time.monotonic() - start, tokens


def hf_common_approach(
    corpus: Path, tokenizer_dir: Path, workers: int, block_size: int, cache: Path, encoder: str = "hf"
) -> dict:
    """The run_clm.py way. Files it cannot parse are found first (untimed) and left out.

    encoder="hf": AutoTokenizer on our tokenizer.json (what users of that script run);
    encoder="sentencepiece": the same sentencepiece encoder prepare uses, to separate the
    gain of the pipeline from the gain of the faster encoder."""
    import datasets
    import pandas
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    candidates = sorted(str(p) for p in corpus.rglob("*.csv"))  # it has no way to read .csv.zst
    loadable, failed = [], []
    for path in candidates:
        try:
            frame = pandas.read_csv(path, nrows=5)
            if "content" not in frame.columns:
                raise ValueError("no content column")
            pandas.read_csv(path, usecols=["content"])
            loadable.append(path)
        except Exception as exc:  # noqa: BLE001 — we are counting what the common approach cannot read
            failed.append((path, type(exc).__name__))
    if encoder == "hf":
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))

        def tokenize(batch):
            return tokenizer([t if isinstance(t, str) else "" for t in batch["content"]])
    else:
        from tokenizer import SentencePieceTokenizer

        sp = SentencePieceTokenizer.load(tokenizer_dir)

        def tokenize(batch):
            return {"input_ids": sp.encode_batch([t if isinstance(t, str) else "" for t in batch["content"]])}

    def group_texts(examples):
        concatenated = {k: list(chain(*examples[k])) for k in examples.keys()}
        total = len(concatenated["input_ids"]) // block_size * block_size
        return {k: [t[i : i + block_size] for i in range(0, total, block_size)] for k, t in concatenated.items()}

    start = time.monotonic()
    raw = datasets.load_dataset("csv", data_files=loadable, split="train", cache_dir=str(cache), usecols=["content"])
    tokenized = raw.map(tokenize, batched=True, num_proc=workers, remove_columns=["content"])
    blocks = tokenized.map(group_texts, batched=True, num_proc=workers)
    seconds = time.monotonic() - start
    return {
        "seconds": seconds,
        "files_failed": len(failed),
        "files_total": len(candidates) + len(list(corpus.rglob("*.csv.zst"))),
        "blocks": len(blocks),
        "failed": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="50MB", help="corpus size S (RSS is also measured at 2S)")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--workdir", default=None, help="keep files here (default: a temp dir)")
    parser.add_argument("--skip-2s", action="store_true", help="skip the 2S memory run")
    args = parser.parse_args()
    size = parse_size(args.size)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_prepare_"))
    work.mkdir(parents=True, exist_ok=True)
    overrides = [f"tokenizer.vocab_size={args.vocab_size}"]

    corpus = work / "corpus"
    if not (corpus / "generation.json").exists():
        generate_corpus(corpus, size, seed=0)
    # train the tokenizer once, untimed: both sides below use it ready-made
    seed_run = work / "with_tokenizer"
    if not (seed_run / "manifest.json").exists():
        run_prepare(corpus, seed_run, args.workers, overrides)
    tokenizer_dir = seed_run / "tokenizer"

    shutil.rmtree(work / "timed", ignore_errors=True)
    timed = run_prepare(corpus, work / "timed", args.workers, overrides + ["--tokenizer", str(tokenizer_dir)])
    report = json.loads((work / "timed" / "report.json").read_text())
    tokens = report["totals"]["tokens"]
    input_mb = report["inputs"]["bytes"] / 1e6
    encode_seconds, encode_tokens = raw_encode(work / "timed", args.workers)
    assert encode_tokens == tokens, (encode_tokens, tokens)
    hf = hf_common_approach(corpus, tokenizer_dir, args.workers, 512, work / "hf_cache")
    shutil.rmtree(work / "hf_cache", ignore_errors=True)
    hf_sp = hf_common_approach(corpus, tokenizer_dir, args.workers, 512, work / "hf_cache", encoder="sentencepiece")
    shutil.rmtree(work / "hf_cache", ignore_errors=True)

    print(f"\ncorpus {input_mb:.1f} MB, {tokens:,} tokens, {args.workers} workers")
    print(f"{'stage':<10} {'seconds':>8} {'MB/s/worker':>12} {'tokens/s/worker':>16}")
    for name, seconds in timed["stages"].items():
        if seconds > 0:
            print(
                f"{name:<10} {seconds:>8.2f} {input_mb / seconds / args.workers:>12.2f} {tokens / seconds / args.workers:>16,.0f}"
            )
    prepare_seconds = timed["total"]
    print(f"prepare total {prepare_seconds:.2f}s = {tokens / prepare_seconds / args.workers:,.0f} tokens/s/worker")
    print(f"raw encode    {encode_seconds:.2f}s = {tokens / encode_seconds / args.workers:,.0f} tokens/s/worker")
    print(f"RATIO prepare/encode throughput = {encode_seconds / prepare_seconds:.2f}  (goal ≥ 0.8)")
    print(
        f"HF load_dataset+map+group_texts {hf['seconds']:.2f}s, {hf['blocks']:,} blocks, could not load {hf['files_failed']} of {hf['files_total']} files"
    )
    print(f"RATIO HF wall / prepare wall = {hf['seconds'] / prepare_seconds:.2f}x  (goal ≥ 3)")
    print(
        f"  same with sentencepiece inside .map: {hf_sp['seconds']:.2f}s → {hf_sp['seconds'] / prepare_seconds:.2f}x (the pipeline's gain alone)"
    )
    print(f"peak RSS (largest process) at S: {timed['peak_rss_mb']:.0f} MB")
    if not args.skip_2s:
        corpus2 = work / "corpus2"
        if not (corpus2 / "generation.json").exists():
            generate_corpus(corpus2, 2 * size, seed=0)
        shutil.rmtree(work / "timed2", ignore_errors=True)
        timed2 = run_prepare(corpus2, work / "timed2", args.workers, overrides + ["--tokenizer", str(tokenizer_dir)])
        print(f"peak RSS (largest process) at 2S: {timed2['peak_rss_mb']:.0f} MB  (goal ≤ 1024 and flat)")


if __name__ == "__main__":
    main()
