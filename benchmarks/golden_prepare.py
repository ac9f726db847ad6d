"""Golden check: the same generated corpus prepared four ways at two commits, every output compared byte for byte.

    .venv/bin/python benchmarks/golden_prepare.py --base 77324d1                       # vs the working tree
    .venv/bin/python benchmarks/golden_prepare.py --base 77324d1 --head HEAD --size 8MB
    .venv/bin/python benchmarks/golden_prepare.py --base 77324d1 --head-override split.write_documents=true

A speed change to the data stages must not change a byte of what `prepare` writes. The four
preparations cover the paths a speed change can break: (a) 3 tasks, a given tokenizer; (b) 5
tasks, near dedup on, mixture weights 2.0 and 0.5; (c) 4 tasks on all folders but those starting
with "s", then `--append` of the rest; (d) 2 tasks training a tokenizer (vocab 1500). The given
tokenizer is trained once, up front, with the base commit. Each commit runs from a git worktree
of its own with this checkout's virtual environment. Every file outside work/ is compared;
`--head-override KEY=VALUE` is added to the head's version-1 runs (an intended config change, to
show that nothing else moved: a plan or manifest that differs only in those keys and the
fingerprints is listed as such and does not count). Exit 1 if anything else differs, listing what.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from commit_trees import commit_trees, outputs  # benchmarks/, beside this script

PREPARATIONS = {  # name: (input glob under the corpus, arguments, appended afterwards)
    "a-3-tasks": ("**/*.csv*", ["--tokenizer", "{tokenizer}", "--num-tasks", "3"], False),
    "b-near-dedup-mixture": (
        "**/*.csv*",
        [
            "--tokenizer",
            "{tokenizer}",
            "--num-tasks",
            "5",
            "dedup.near.enabled=true",
            "mixture.news_2019=2.0",
            "mixture.history_wiki=0.5",
        ],
        False,
    ),  # fmt: skip
    "c-append": ("[!s]*/**/*.csv*", ["--tokenizer", "{tokenizer}", "--num-tasks", "4"], True),
    "d-train-tokenizer": ("**/*.csv*", ["--num-tasks", "2", "tokenizer.vocab_size=1500"], False),
}


def pipeline(tree: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)


FINGERPRINTS = ("fingerprint", "input_fingerprint")  # hashes of the config among the rest


def _is_plan_hash(key: str, value) -> bool:
    """A version's "plan" entry in the manifest: its plan's fingerprint."""
    return key == "plan" and isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def without(value, overridden: list[str]):
    """A plan or manifest with the overridden config keys and every fingerprint taken out."""
    if isinstance(value, list):
        return [without(item, overridden) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {k: without(v, overridden) for k, v in value.items() if k not in FINGERPRINTS and not _is_plan_hash(k, v)}
    if isinstance(kept.get("config"), dict):
        for key in overridden:
            *parents, leaf = key.split("=")[0].split(".")
            node = kept["config"]
            for parent in parents:
                node = node.get(parent, {})
            node.pop(leaf, None)
    return kept


def same_but_overrides(base: Path, head: Path, overridden: list[str]) -> bool:
    if base.suffix != ".json" or not overridden:
        return False
    return without(json.loads(base.read_text()), overridden) == without(json.loads(head.read_text()), overridden)


def prepare_all(tree: Path, corpus: Path, tokenizer: Path, out: Path, overrides: list[str]) -> None:
    for name, (pattern, arguments, append) in PREPARATIONS.items():
        filled = [a.format(tokenizer=tokenizer) for a in arguments]
        pipeline(tree, "prepare", "--input", f"{corpus}/{pattern}", "--output", str(out / name), "--quiet",
                 "--workers", "2", *filled, *overrides)  # fmt: skip
        if append:
            pipeline(tree, "prepare", "--append", "--input", f"{corpus}/**/*.csv*", "--output", str(out / name),
                     "--quiet", "--workers", "2")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--head", default=None, help="a commit (default: this working tree as it is)")
    parser.add_argument("--size", default="8MB", help="generated corpus size")
    parser.add_argument("--head-override", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    with commit_trees(args.base, args.head, "golden-prepare-") as (scratch, trees):
        corpus = scratch / "corpus"
        pipeline(trees["base"], "generate-corpus", "--output", str(corpus), "--size", args.size, "--seed", "11")
        pipeline(trees["base"], "prepare", "--input", f"{corpus}/**/*.csv*", "--output", str(scratch / "tokenizer-run"),
                 "--quiet", "--workers", "2", "tokenizer.vocab_size=2000")  # fmt: skip
        tokenizer = scratch / "tokenizer-run" / "tokenizer"
        prepare_all(trees["base"], corpus, tokenizer, scratch / "out-base", [])
        prepare_all(trees["head"], corpus, tokenizer, scratch / "out-head", args.head_override)
        differ = 0
        for name in PREPARATIONS:
            base, head = outputs(scratch / "out-base" / name), outputs(scratch / "out-head" / name)
            diff = sorted(k for k in base.keys() | head.keys() if base.get(k) != head.get(k))
            print(
                f"{name}: {len(base)} files at base, {len(head)} at head; " + ("identical" if not diff else "differ:")
            )
            explained = [
                path
                for path in diff
                if path in base
                and path in head
                and same_but_overrides(
                    scratch / "out-base" / name / path, scratch / "out-head" / name / path, args.head_override
                )
            ]
            for path in diff:
                where = "only at base" if path not in head else "only at head" if path not in base else "bytes differ"
                if path in explained:
                    where = "only the overridden config and the fingerprints differ"
                print(f"    {path} ({where})")
            differ += len(diff) > len(explained)
        if differ:
            sys.exit(f"{differ} of {len(PREPARATIONS)} preparations differ")


if __name__ == "__main__":
    main()
