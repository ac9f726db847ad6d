"""Raw encode throughput of a tokenizer directory: the yardstick packing is measured against.

    python -m tokenizer.throughput OUT/tokenizer docs.jsonl.zst [...] [--batch-size 256] [--limit-mb 50]

Encodes the documents' text with SentencePieceTokenizer.encode_batch (one thread, like one
packing worker) and prints tokens/s, MB/s (UTF-8 bytes) and characters per token as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.formats.documents import read_documents
from tokenizer.load import SentencePieceTokenizer


def read_texts(doc_files: Sequence[Path], limit_bytes: int) -> list[str]:
    texts, size = [], 0
    for path in doc_files:
        for doc in read_documents(path):
            texts.append(doc.text)
            size += len(doc.text.encode("utf-8"))
            if size >= limit_bytes:
                return texts
    return texts


def measure_encode_throughput(
    tokenizer_dir: Path, texts: list[str], batch_size: int = 256, num_threads: int = 1
) -> dict:
    tokenizer = SentencePieceTokenizer.load(tokenizer_dir, num_threads=num_threads)
    tokens = 0
    start = time.perf_counter()
    for first in range(0, len(texts), batch_size):
        tokens += sum(map(len, tokenizer.encode_batch(texts[first : first + batch_size])))
    seconds = time.perf_counter() - start
    utf8_bytes = sum(len(text.encode("utf-8")) for text in texts)
    chars = sum(map(len, texts))
    return {
        "documents": len(texts),
        "mb": utf8_bytes / 1e6,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "mb_per_s": utf8_bytes / 1e6 / seconds,
        "chars_per_token": chars / max(tokens, 1),
        "num_threads": num_threads,
        "batch_size": batch_size,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokenizer_dir", type=Path)
    parser.add_argument("doc_files", type=Path, nargs="+", help=".jsonl.zst document files")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit-mb", type=float, default=50.0, help="encode at most this much text")
    args = parser.parse_args(argv)
    texts = read_texts(args.doc_files, int(args.limit_mb * 1e6))
    result = measure_encode_throughput(args.tokenizer_dir, texts, args.batch_size, args.threads)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
