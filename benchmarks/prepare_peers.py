"""The peers `bench_prepare.py` measures `prepare` against, one per command, each in its own process.

    python benchmarks/prepare_peers.py encode    --docs OUT/docs --tokenizer DIR --workers W --result R.json
    python benchmarks/prepare_peers.py hf        --files LIST --tokenizer DIR --workers W --work D --result R.json
    python benchmarks/prepare_peers.py datatrove --files LIST --tokenizer DIR --workers W --work D --result R.json

Every peer times its own work (after its imports) and writes {"seconds", "tokens", "rows_read", ...}
to --result; the caller times the whole process and takes its peak RSS. `probe-hf` and
`probe-datatrove` read every file once with the peer's own reader (untimed) and say, per file,
how many rows it got or why it failed: the caller gives each timed peer only the files it can
read (neither survives an unreadable file: both stop with a traceback) and reports the rest.

What each peer does and does not do is in docs/benchmarks.md; in short:
- encode: sentencepiece encode (+1 EOS per document) of exactly the documents `prepare` packed,
  read from the docs/ export of an untimed `prepare ... split.write_documents=true` — the speed
  limit of tokenizing; nothing else.
- hf: the run_clm.py way — datasets.load_dataset("csv") + .map(AutoTokenizer) + group_texts
  into 512-token blocks (num_proc = workers). No cleaning, no dedup, no split.
- datatrove: CSVReader → cheap filters equivalent to ours on raw text (no normalisation) → its
  3-stage exact dedup → DocumentTokenizer (HF `tokenizers` on our tokenizer.json, EOS appended,
  no shuffle), run by LocalPipelineExecutor with tasks = workers. No cleaning, no split, no packing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from itertools import chain
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BLOCK_SIZE = 512

# ---------------------------------------------------------------- the filters, as datatrove runs them
# Our cleaner's drop rules with its defaults (pipeline/data/cleaner.py, CleanConfig), written out
# here so the peer does not depend on our code. They run on the raw text: datatrove has no
# equivalent of our normalisation (HTML, controls, width, whitespace, CJK spaces).
MIN_CHARS = 6  # our too_short/empty: non-whitespace characters
MAX_CHAR_RUN = 8  # our repetitive_chars (run of one letter or Han character): datatrove's RegexFilter
CHAR_RUN = rf"([^\W\d_])\1{{{MAX_CHAR_RUN},}}"
TOP_CHAR_SHARE, TOP_CHAR_MAX_CHARS = 0.5, 100  # our repetitive_chars (one character > half of a short text)
MAX_REPEATED_LINE_SHARE = 0.3  # our repetitive_lines == Gopher's dup_line_frac (see below)
MIN_HAN_SHARE = 0.3  # our low_cjk_share: Han characters / (Han characters + Latin words)
HAN_RUN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")
LATIN_WORD = re.compile("[A-Za-z\u00c0-\u024f]+")


def long_enough(doc) -> bool:
    return len(doc.text.replace(" ", "").replace("\n", "")) >= MIN_CHARS


def no_dominant_char(doc) -> bool:
    dense = doc.text.replace(" ", "").replace("\n", "")
    return len(dense) > TOP_CHAR_MAX_CHARS or max(Counter(dense).values()) / len(dense) <= TOP_CHAR_SHARE


def few_repeated_lines(doc) -> bool:
    # datatrove's GopherRepetitionFilter(dup_line_frac=0.3) is this rule, but it always splits the
    # text into words too (nltk/spacy: its heavy [processing]/[multilingual] extras), so it runs as a lambda.
    lines = doc.text.split("\n")
    return (len(lines) - len(set(lines))) / len(lines) <= MAX_REPEATED_LINE_SHARE


def han_share_enough(doc) -> bool:
    latin = len(LATIN_WORD.findall(doc.text))
    han = sum(map(len, HAN_RUN.findall(doc.text)))
    return han > 0 and han / (han + latin) >= MIN_HAN_SHARE


def text_of(doc) -> bytes:
    """The dedup key. Bytes, because xxhash 4 (what datasets installs here) hashes no str: datatrove
    reads this annotation to pick its hash function and keeps its default, xxhash64."""
    return doc.text.encode()


# ---------------------------------------------------------------- encode


def _encode_file(args) -> tuple[int, float, float]:
    from pipeline.formats.documents import read_records
    from tokenizer import SentencePieceTokenizer

    path, tokenizer_dir = args
    tokenizer = SentencePieceTokenizer.load(Path(tokenizer_dir))
    start = time.monotonic()
    texts = [r["text"] for r in read_records(path)]
    read = time.monotonic() - start
    tokens = 0
    for first in range(0, len(texts), 512):
        tokens += sum(len(ids) + 1 for ids in tokenizer.encode_batch(texts[first : first + 512]))
    return tokens, read, time.monotonic() - start - read


def run_encode(args) -> dict:
    import multiprocessing

    files = sorted(chain(args.docs.glob("train/*.jsonl.zst"), args.docs.glob("validation/*.jsonl.zst")))
    if not files:
        raise SystemExit(f"encode: no documents under {args.docs}/{{train,validation}}/*.jsonl.zst")
    start = time.monotonic()
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        parts = pool.map(_encode_file, [(f, args.tokenizer) for f in files], chunksize=1)
    return {
        "seconds": time.monotonic() - start,
        "tokens": sum(p[0] for p in parts),
        "read_seconds_per_worker": sum(p[1] for p in parts) / args.workers,
        "encode_seconds_per_worker": sum(p[2] for p in parts) / args.workers,
    }


# ---------------------------------------------------------------- the HF way


def probe_hf(files: list[str]) -> dict:
    """Rows per file as datasets' csv builder reads them (pandas.read_csv), or why it fails.
    `.csv.zst` is not probed: load_dataset("csv") over a folder never globs it."""
    import pandas

    out = {}
    for path in files:
        if not path.endswith(".csv"):
            out[path] = {"rows": 0, "error": "not globbed (*.csv only)"}
            continue
        try:
            header = pandas.read_csv(path, nrows=0)
            if "content" not in header.columns:
                raise ValueError(f"no content column (columns {list(header.columns)})")
            out[path] = {"rows": len(pandas.read_csv(path, usecols=["content"])), "error": None}
        except Exception as exc:  # noqa: BLE001 — counting what this peer cannot read
            out[path] = {"rows": 0, "error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    return out


def run_hf(args) -> dict:
    import datasets
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    files = args.files.read_text().split()
    tokenizer = AutoTokenizer.from_pretrained(str(args.tokenizer))

    def tokenize(batch):
        return tokenizer([t if isinstance(t, str) else "" for t in batch["content"]])

    def group_texts(examples):  # run_clm.py's, verbatim in effect
        concatenated = {k: list(chain(*examples[k])) for k in examples.keys()}
        total = len(concatenated["input_ids"]) // BLOCK_SIZE * BLOCK_SIZE
        return {k: [t[i : i + BLOCK_SIZE] for i in range(0, total, BLOCK_SIZE)] for k, t in concatenated.items()}

    start = time.monotonic()
    raw = datasets.load_dataset("csv", data_files=files, split="train", cache_dir=str(args.work), usecols=["content"])
    tokenized = raw.map(tokenize, batched=True, num_proc=args.workers, remove_columns=["content"])
    blocks = tokenized.map(group_texts, batched=True, num_proc=args.workers)
    seconds = time.monotonic() - start
    tokens = sum(len(ids) for ids in tokenized.with_format("arrow")["input_ids"].to_pylist())  # untimed
    return {"seconds": seconds, "tokens": tokens, "rows_read": len(raw), "blocks": len(blocks)}


# ---------------------------------------------------------------- datatrove


def _datatrove_reader(corpus: Path, paths_file: Path | None):
    from datatrove.pipeline.readers import CSVReader

    return CSVReader(str(corpus), paths_file=str(paths_file) if paths_file else None, text_key="content")


def probe_datatrove(corpus: Path, files: list[str]) -> dict:
    """Rows per file as datatrove's CSVReader yields them, or the exception that stops it."""
    reader = _datatrove_reader(corpus, None)
    out = {}
    for path in files:
        rows = 0
        try:
            for _ in reader.read_file(str(Path(path).relative_to(corpus))):
                rows += 1
            out[path] = {"rows": rows, "error": None}
        except Exception as exc:  # noqa: BLE001 — counting what this peer cannot read
            out[path] = {"rows": rows, "error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    return out


def run_datatrove(args) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import ExactDedupConfig, ExactDedupFilter, ExactDedupSignature, ExactFindDedups
    from datatrove.pipeline.filters import LambdaFilter, RegexFilter
    from datatrove.pipeline.tokens import DocumentTokenizer

    work, tasks = args.work, args.workers
    files = args.files.read_text().split()
    paths_file = work / "paths.txt"  # datatrove wants them relative to the data folder
    paths_file.write_text("\n".join(str(Path(f).relative_to(args.corpus)) for f in files) + "\n")
    config = ExactDedupConfig(content_getter=text_of)  # default hash: xxhash64

    def filters():
        return [
            LambdaFilter(long_enough),
            RegexFilter(CHAR_RUN),
            LambdaFilter(no_dominant_char),
            LambdaFilter(few_repeated_lines),
            LambdaFilter(han_share_enough),
        ]

    common = {"tasks": tasks, "workers": args.workers, "skip_completed": False}
    signatures = LocalPipelineExecutor(
        [
            _datatrove_reader(args.corpus, paths_file),
            *filters(),
            ExactDedupSignature(str(work / "sigs"), config, finder_workers=tasks),
        ],
        logging_dir=str(work / "logs1"),
        **common,
    )
    find = LocalPipelineExecutor(
        [ExactFindDedups(str(work / "sigs"), str(work / "dups"), config)],
        logging_dir=str(work / "logs2"),
        depends=signatures,
        **common,
    )
    # Stage 3 reads the input again, as datatrove's dedup examples do (no intermediate copy).
    tokenize = LocalPipelineExecutor(
        [
            _datatrove_reader(args.corpus, paths_file),
            *filters(),
            ExactDedupFilter(str(work / "dups"), config),
            DocumentTokenizer(
                str(work / "tokens"),
                tokenizer_name_or_path=str(args.tokenizer / "tokenizer.json"),
                eos_token=args.eos,
                shuffle_documents=False,  # our pack does not shuffle either (the trainer's sampler does)
            ),
        ],
        logging_dir=str(work / "logs3"),
        depends=find,
        **common,
    )
    start = time.monotonic()
    tokenize.run()
    seconds = time.monotonic() - start
    stats = {s["name"]: s["stats"] for s in json.loads((work / "logs3" / "stats.json").read_text())}
    reader = next(v for k, v in stats.items() if "Csv" in k)
    dedup = next(v for k, v in stats.items() if "stage 3" in k)
    token_bytes = sum(p.stat().st_size for p in (work / "tokens").glob("*.ds"))
    step_stats = {}  # per step and stage: datatrove's own time and counters (for the profile)
    for stage in ("logs1", "logs2", "logs3"):
        for step in json.loads((work / stage / "stats.json").read_text()):
            step_stats[f"{stage}: {step['name']}"] = step["stats"]
    return {
        "seconds": seconds,
        "step_stats": step_stats,
        "tokens": token_bytes // 2,  # uint16 tokens (vocabulary < 65,536)
        "rows_read": _count(reader.get("documents")),
        "documents_after_dedup": _count(dedup.get("forwarded")),
        "duplicates_dropped": _count(dedup.get("dropped")),
    }


def _count(stat) -> int:
    if stat is None:
        return 0
    return int(stat["total"] if isinstance(stat, dict) else stat)


# ---------------------------------------------------------------- command line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["encode", "hf", "datatrove", "probe-hf", "probe-datatrove"])
    parser.add_argument("--docs", type=Path, help="encode: prepare's OUT/docs")
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--files", type=Path, help="a text file listing the input files to read")
    parser.add_argument("--tokenizer", type=Path)
    parser.add_argument("--eos", default="</s>")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--work", type=Path, help="scratch folder (caches, datatrove's stage outputs)")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    if args.side == "encode":
        result = run_encode(args)
    elif args.side == "hf":
        result = run_hf(args)
    elif args.side == "datatrove":
        result = run_datatrove(args)
    elif args.side == "probe-hf":
        result = probe_hf(args.files.read_text().split())
    else:
        result = probe_datatrove(args.corpus, args.files.read_text().split())
    args.result.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
