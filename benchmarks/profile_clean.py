"""Where the clean stage's time goes, rule by rule (not a test).

    python benchmarks/profile_clean.py                          # the generator's messy corpus, 20 MB
    python benchmarks/profile_clean.py --size 50MB
    python benchmarks/profile_clean.py --input 'corpus/**/*.csv*'   # your own files

Reads every document into memory once (the read is timed on its own), then times the
Cleaner with its rules switched on one at a time in their running order: a rule's cost is the
CPU time added by switching it on, on the text the earlier rules left (what it costs inside
the real stage). The same for the filters, then the splitting into pieces (with --max-chars)
and the rest of a call; then the stage's own work beside the Cleaner
(hashing and writing the kept pieces), to show the Cleaner's share. Each measurement is the best of --repeats, in CPU
seconds of this one process, so a loaded machine changes it little.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import glob
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from pipeline.data.cleaner import CleanConfig, Cleaner  # noqa: E402
from pipeline.data.stages.clean import records  # noqa: E402
from pipeline.formats.csv_corpus import FileReport, ReadConfig, read_csv_rows  # noqa: E402
from pipeline.formats.documents import Document, PieceWriter, content_hash  # noqa: E402

# In the order clean_text runs them; each step switches one more on.
CLEAN_RULES = (
    "strip_html",
    "remove_control",
    "normalize_width",
    "traditional_to_simplified",
    "collapse_whitespace",
    "join_cjk_spaces",
)
ALL_RULES_OFF = {rule: False for rule in CLEAN_RULES}
# Filters in drop_reason's order, each as the config that switches it (and the ones before) on.
ALL_FILTERS_OFF = {
    "min_chars": 0,
    "max_char_run": None,
    "max_top_char_share": None,
    "max_repeated_line_share": None,
    "min_cjk_share": 0.0,
}
FILTER_STEPS = (
    ("empty / too_short", ("min_chars",)),
    ("repetitive_chars", ("max_char_run", "max_top_char_share")),
    ("repetitive_lines", ("max_repeated_line_share",)),
    ("low_cjk_share", ("min_cjk_share",)),
)


def read_documents(paths: list[str]) -> tuple[list[Document], int, float]:
    """Every row as a Document, and the CPU seconds of reading them as the stage does ((row, text) pairs)."""
    start = time.process_time()
    rows = [(path, list(read_csv_rows(path, ReadConfig(), FileReport(path)))) for path in paths]
    read_cpu = time.process_time() - start
    documents = [Document(text, path, row) for path, pairs in rows for row, text in pairs]
    return documents, sum(os.path.getsize(p) for p in paths), read_cpu


def best_cpu(run: Callable[[], object], repeats: int) -> float:
    # GC off while timing: this process holds every document at once (the stage streams
    # them), and the collector's walks over that heap would be charged to whatever runs
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            run()
            best = min(best, time.process_time() - start)
        finally:
            gc.enable()
    return best


def profile(documents: list[Document], base: CleanConfig, repeats: int) -> list[tuple[str, float]]:
    """[(step, CPU seconds it adds)] for every rule, filter and the rest of a call."""
    texts = [doc.text for doc in documents]
    rows: list[tuple[str, float]] = []

    def clean_all(config: CleanConfig) -> Callable[[], object]:
        cleaner = Cleaner(config)
        return lambda: [cleaner.clean_text(text) for text in texts]

    switched = dict(ALL_RULES_OFF)
    previous = best_cpu(clean_all(dataclasses.replace(base, **switched)), repeats)
    rows.append(("clean_text with every rule off (the loop, fast-path checks)", previous))
    for rule in CLEAN_RULES:
        if not getattr(base, rule):
            continue  # off in this config: costs nothing here
        switched[rule] = True
        now = best_cpu(clean_all(dataclasses.replace(base, **switched)), repeats)
        rows.append((rule, now - previous))
        previous = now

    cleaner = Cleaner(base)
    cleaned = [cleaner.clean_text(text) for text in texts]

    def filter_all(config: CleanConfig) -> Callable[[], object]:
        filtering = Cleaner(config)
        return lambda: [filtering.drop_reason(text) for text in cleaned]

    filters = dict(ALL_FILTERS_OFF)
    previous = best_cpu(filter_all(dataclasses.replace(base, **filters)), repeats)
    rows.append(("drop_reason with every filter off (the dense copy)", previous))
    for name, fields in FILTER_STEPS:
        filters.update({field: getattr(base, field) for field in fields})
        now = best_cpu(filter_all(dataclasses.replace(base, **filters)), repeats)
        rows.append((name, now - previous))
        previous = now

    kept = [text for text in cleaned if cleaner.drop_reason(text) is None]
    if base.max_chars is not None:
        rows.append(("split at max_chars", best_cpu(lambda: [cleaner.split(text) for text in kept], repeats)))
    parts = best_cpu(lambda: [cleaner.drop_reason(cleaner.clean_text(text)) for text in texts], repeats)
    whole = best_cpu(lambda: [cleaner.pieces(text) for text in texts], repeats)
    rows.append(("the rest of a call (split check)", whole - parts))
    return rows


def profile_stage_io(documents: list[Document], base: CleanConfig, repeats: int) -> list[tuple[str, float]]:
    """The clean stage's own work per kept piece, beside the cleaner: hash, write (as the stage does both)."""
    cleaner = Cleaner(base)
    pieces = [piece for doc in documents for piece in cleaner(doc)[0]]
    texts = [piece.text for piece in pieces]
    hashing = best_cpu(
        lambda: records(
            0, [content_hash(text) for text in texts], [0] * len(texts), [p.row for p in pieces], [0] * len(texts)
        ),
        repeats,
    )

    def write_all() -> None:
        with tempfile.TemporaryDirectory() as tmp, PieceWriter(Path(tmp) / "pieces.arrow") as writer:
            batch = 4096  # about FLUSH_CHARS of text at this corpus's ~100 characters a piece
            for start in range(0, len(texts), batch):
                end = start + batch
                writer.write_batch(
                    texts[start:end],
                    [0] * len(texts[start:end]),
                    [p.row for p in pieces[start:end]],
                    [0] * len(texts[start:end]),
                )

    return [
        ("content hash (blake2b-128) of each piece, into the bucket records", hashing),
        ("write pieces (Arrow IPC, as the stage does)", best_cpu(write_all, repeats)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", help="a glob of CSV files (default: a generated corpus of --size)")
    parser.add_argument("--size", default="20MB", help="generated corpus size (without --input)")
    parser.add_argument(
        "--max-chars", type=int, default=None, help="clean.max_chars (default: off, as the default config)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of N per measurement")
    args = parser.parse_args()
    if args.input:
        paths = sorted(glob.glob(args.input, recursive=True))
        if not paths:
            sys.exit(f"--input {args.input!r} matches no file")
    else:
        from pipeline.tools.corpus_gen import generate_corpus, parse_size

        corpus = Path(tempfile.gettempdir()) / f"profile-clean-{args.size}"
        if not (corpus / "generation.json").is_file():
            generate_corpus(corpus, parse_size(args.size), seed=1)
        paths = sorted(glob.glob(f"{corpus}/**/*.csv*", recursive=True))

    documents, size, read_cpu = read_documents(paths)
    base = CleanConfig(max_chars=args.max_chars)
    rows = profile(documents, base, args.repeats)
    total = sum(seconds for _, seconds in rows)
    stage_rows = profile_stage_io(documents, base, args.repeats)
    mb = size / 1e6
    print(
        f"{len(paths)} files, {mb:.1f} MB on disk, {len(documents):,} documents; CPU seconds, best of {args.repeats}\n"
    )
    print("| step | CPU s | µs / document | share of clean |")
    print("|---|---:|---:|---:|")
    print(f"| read (CSV → (row, text); not part of clean) | {read_cpu:.2f} | {1e6 * read_cpu / len(documents):.1f} | |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {1e6 * seconds / len(documents):.1f} | {100 * seconds / total:.0f} % |")
    print(f"| **Cleaner (sum)** | **{total:.2f}** | {1e6 * total / len(documents):.1f} | {mb / total:.1f} MB/s |")
    stage = read_cpu + total + sum(seconds for _, seconds in stage_rows)
    print("\nThe clean stage around the Cleaner (share of read + Cleaner + these):\n")
    print("| step | CPU s | µs / document | share of stage |")
    print("|---|---:|---:|---:|")
    for name, seconds in [("read", read_cpu), ("Cleaner", total), *stage_rows]:
        print(f"| {name} | {seconds:.2f} | {1e6 * seconds / len(documents):.1f} | {100 * seconds / stage:.0f} % |")
    print(f"| **sum** | **{stage:.2f}** | {1e6 * stage / len(documents):.1f} | {mb / stage:.1f} MB/s |")


if __name__ == "__main__":
    main()
