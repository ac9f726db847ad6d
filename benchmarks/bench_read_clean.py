"""Throughput of the read and clean stages, single process (not a test).

    python benchmarks/bench_read_clean.py [--mb 50] [--dir /tmp/bench_read_clean]

Writes a deterministic synthetic corpus file (~MB megabytes of CSV: Chinese sentences,
paragraphs and long documents with some English terms, numbers, HTML, entities, wrapped
CJK spaces, ANSI escapes and short/English/repetitive rows), as .csv and as .csv.zst, then
times: read only, and read + clean, each on both files. MB (1e6 bytes) are bytes
of uncompressed CSV processed per second, by wall time and by CPU time of this process.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time

import zstandard

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from pipeline.data.cleaner import CleanConfig, Cleaner  # noqa: E402
from pipeline.formats.csv_corpus import FileReport, ReadConfig, read_csv_file  # noqa: E402

COMMON = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面"
    "而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性"
    "好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向"
    "道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长"
)
PUNCT = "，，，，。。！？、；："
ENGLISH = ["Python", "GPU", "iPhone", "AI", "CPU", "Linux", "App", "DNA", "NBA", "PDF"]
NOISE = [
    lambda s: f"<p>{s}</p>",
    lambda s: s.replace("，", "&nbsp;，", 1),
    lambda s: " ".join(s[:12]) + s[12:],
    lambda s: f"\x1b[32m{s}\x1b[0m",
    lambda s: s.replace("的", "&#8220;的&#8221;", 1),
]


def sentence(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(6, 30)):
        roll = rng.random()
        if roll < 0.03:
            words.append(rng.choice(ENGLISH))
        elif roll < 0.05:
            words.append(str(rng.randint(1, 2030)))
        else:
            words.append(rng.choice(COMMON))
        if rng.random() < 0.12:
            words.append(rng.choice(PUNCT[:6]))
    return "".join(words) + rng.choice("。。。！？")


def row_text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:
        text = sentence(rng)
    elif kind < 0.8:
        text = "".join(sentence(rng) for _ in range(rng.randint(2, 8)))
    elif kind < 0.9:
        text = "\n".join("".join(sentence(rng) for _ in range(rng.randint(2, 6))) for _ in range(rng.randint(3, 15)))
    elif kind < 0.94:
        text = rng.choice(["好的", "哈哈哈哈哈哈哈哈哈哈哈哈哈", "Click here to read more about this topic", "!!!!!!!"])
    else:
        text = sentence(rng)
    if rng.random() < 0.15:
        text = rng.choice(NOISE)(text)
    return text


def write_corpus(path: str, megabytes: float, seed: int = 0) -> None:
    rng = random.Random(seed)
    target = int(megabytes * 1e6)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "title", "content"])
        row = 0
        while f.tell() < target:
            writer.writerow([row, f"标题{row}", row_text(rng)])
            row += 1


def timed(path: str, clean: bool) -> tuple[float, float, int, int]:
    cleaner = Cleaner(CleanConfig())
    report = FileReport(path)
    kept = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    for doc in read_csv_file(path, ReadConfig(), report):
        if clean:
            pieces, _reason = cleaner(doc)
            kept += len(pieces)
    return time.perf_counter() - start, time.process_time() - start_cpu, report.rows_read, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--dir", default="/tmp/bench_read_clean")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    plain = os.path.join(args.dir, f"corpus_{args.mb:g}mb.csv")
    if not os.path.exists(plain):
        write_corpus(plain, args.mb)
    packed = plain + ".zst"
    if not os.path.exists(packed):
        with open(plain, "rb") as src, open(packed, "wb") as dst:
            zstandard.ZstdCompressor(level=3).copy_stream(src, dst)
    # Throughput is quoted per uncompressed CSV byte for both files, so .zst shows the cost
    # of decompression; CPU time is given too because a shared machine inflates wall time.
    size = os.path.getsize(plain) / 1e6
    print(f"{size:.1f} MB of CSV (.zst on disk: {os.path.getsize(packed) / 1e6:.1f} MB)")
    for path in (plain, packed):
        for clean in (False, True):
            seconds, cpu, rows, kept = timed(path, clean)
            what = "read+clean" if clean else "read only "
            print(
                f"{os.path.basename(path):24s} {what} {rows:7d} rows  wall {seconds:5.2f} s "
                f"{size / seconds:6.1f} MB/s   cpu {cpu:5.2f} s {size / cpu:6.1f} MB/s"
                + (f"  kept {kept}" if clean else "")
            )


if __name__ == "__main__":
    main()
