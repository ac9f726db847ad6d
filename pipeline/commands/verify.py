"""`python -m pipeline verify --output OUT`: does the data directory still match its manifest?

Re-hashes every shard and document file listed in OUT/manifest.json (sha256), checks sizes,
each shard's block size, dtype and block count, and prints one line per file that differs.
Exit codes: 0 everything matches; 1 some file differs (each one named); 2 the manifest itself
is missing, unreadable or edited (its fingerprint does not match its contents).

Training runs the cheap part (manifest fingerprint + sizes) at every start; run this after
copying a data directory, or when in doubt. A damaged directory is repaired by re-running the
same `prepare` (tasks whose outputs are missing or have the wrong size are redone).
"""

from __future__ import annotations

import argparse

from pipeline.formats.manifest import load_manifest, verify_files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", required=True, help="prepared data directory (holds manifest.json)")


def run(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.output)
    shards = sum(len(manifest.shards(split)) for split in manifest.raw["splits"])
    documents = sum(len(files) for files in manifest.raw.get("documents", {}).values())
    problems = verify_files(manifest)
    for problem in problems:
        print(f"differs: {problem}")
    if problems:
        print(f"{manifest.root}: {len(problems)} file(s) differ from manifest.json")
        return 1
    print(
        f"{manifest.root}: {shards} shards and {documents} document files match manifest.json ({manifest.fingerprint[:12]})"
    )
    return 0
