"""OUT/manifest.json: the complete, stable description of a prepared data directory.

Training trusts nothing else: it finds shards, block size, vocabulary and the tokenizer
here, and stores `fingerprint` in every checkpoint so that resuming on different data is
refused. The fingerprint covers what determines the token stream (each shard's sha256 and
block count, the tokenizer), not where the directory lives.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pipeline.core.atomic import write_json_atomically
from pipeline.core.fingerprint import fingerprint

FORMAT = "zh-pretrain/packed-v1"
SPLITS = ("train", "validation")


class ManifestError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class ShardEntry:
    path: str  # relative to the data directory
    blocks: int
    tokens: int
    sha256: str
    bytes: int | None = None  # file size (manifests written before sizes were recorded: None)
    source: str | None = None  # validation shards: the one source whose text they hold


@dataclasses.dataclass
class DataManifest:
    root: Path
    raw: dict[str, Any]

    @property
    def block_size(self) -> int:
        return int(self.raw["block_size"])

    @property
    def vocab_size(self) -> int:
        return int(self.raw["vocab_size"])

    @property
    def dtype(self) -> str:
        return str(self.raw["dtype"])

    @property
    def special_ids(self) -> dict[str, int]:
        return dict(self.raw["special_ids"])

    @property
    def eos_id(self) -> int:
        return int(self.raw["special_ids"]["eos"])

    @property
    def fingerprint(self) -> str:
        return str(self.raw["fingerprint"])

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / self.raw["tokenizer"]["path"]

    @property
    def tokenizer_fingerprint(self) -> str:
        return str(self.raw["tokenizer"]["fingerprint"])

    def shards(self, split: str) -> list[ShardEntry]:
        if split not in self.raw["splits"]:
            raise ManifestError(f"{self.root / 'manifest.json'}: no split '{split}' (has {list(self.raw['splits'])})")
        return [ShardEntry(**entry) for entry in self.raw["splits"][split]["shards"]]

    def shard_paths(self, split: str) -> list[Path]:
        return [self.root / entry.path for entry in self.shards(split)]

    def num_blocks(self, split: str) -> int:
        return sum(entry.blocks for entry in self.shards(split))

    def earlier_version(self, fingerprint: str) -> dict | None:
        """The entry of `versions` (a corpus grown by `prepare --append`) whose manifest had
        `fingerprint`, if it is an earlier version of this one; its blocks are a prefix of ours."""
        versions = self.raw.get("versions", [])
        return next((v for v in versions[:-1] if v["fingerprint"] == fingerprint), None)

    def block_sources(self, split: str) -> list[str] | None:
        """The source of each block of `split` (validation shards hold one source each), or
        None when the manifest does not record them (train, or data prepared before sources)."""
        shards = self.shards(split)
        if not shards or any(entry.source is None for entry in shards):
            return None
        return [entry.source for entry in shards for _ in range(entry.blocks)]


def compute_fingerprint(raw: dict[str, Any]) -> str:
    identity = {
        "format": raw["format"],
        "block_size": raw["block_size"],
        "dtype": raw["dtype"],
        "tokenizer": raw["tokenizer"]["fingerprint"],
        "splits": {
            split: [(s["blocks"], s["sha256"]) for s in raw["splits"][split]["shards"]]
            for split in sorted(raw["splits"])
        },
    }
    return fingerprint(identity)


def write_manifest(data_dir: str | Path, raw: dict[str, Any]) -> DataManifest:
    """Fill in `format`, each shard's `bytes` (if missing) and `fingerprint`; write atomically."""
    raw = {"format": FORMAT, **raw}
    for split in raw["splits"].values():
        for shard in split["shards"]:
            shard.setdefault("bytes", (Path(data_dir) / shard["path"]).stat().st_size)
    raw["fingerprint"] = compute_fingerprint(raw)
    write_json_atomically(Path(data_dir) / "manifest.json", raw)
    return DataManifest(Path(data_dir), raw)


REQUIRED_KEYS = ("format", "block_size", "dtype", "vocab_size", "special_ids", "tokenizer", "splits", "fingerprint")


def load_manifest(data_dir: str | Path) -> DataManifest:
    """Read and sanity-check OUT/manifest.json; errors name the file and the missing key."""
    root = Path(data_dir)
    path = root / "manifest.json"
    if not path.is_file():
        raise ManifestError(f"{path}: not found — is {root} the output of `python -m pipeline prepare`?")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON: {exc}") from None
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise ManifestError(f"{path}: missing key '{key}'")
    if raw["format"] != FORMAT:
        raise ManifestError(f"{path}: format {raw['format']!r}, expected {FORMAT!r}")
    if compute_fingerprint(raw) != raw["fingerprint"]:
        raise ManifestError(f"{path}: fingerprint does not match its contents (edited by hand?)")
    return DataManifest(root, raw)


def check_sizes(manifest: DataManifest) -> DataManifest:
    """The cheap check training runs at start (after `load_manifest` checked the manifest's own
    fingerprint): every shard exists with the size the manifest records. A stat per shard, no
    reading; `python -m pipeline verify` re-hashes everything. Raises ManifestError naming
    the files that differ."""
    problems = []
    for split in SPLITS:
        if split not in manifest.raw["splits"]:
            continue
        for entry in manifest.shards(split):
            problem = _size_problem(manifest.root / entry.path, entry.bytes)
            if problem:
                problems.append(problem)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ManifestError(
            f"{manifest.root / 'manifest.json'}: data differs from its manifest: {'; '.join(problems[:3])}{more} "
            f"— run `python -m pipeline verify --output {manifest.root}`, then re-run `prepare`"
        )
    return manifest


def _size_problem(path: Path, expected: int | None) -> str | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{path}: missing"
    if expected is None:
        return f"{path}: the manifest records no size (written by an older version; re-run finalize)"
    if size != expected:
        return f"{path}: {size} bytes, the manifest says {expected}"
    return None


def verify_files(manifest: DataManifest) -> list[str]:
    """Every difference between the data directory and its manifest, one line per file:
    shards (size, sha256, Arrow schema: block size and dtype, block count) and document files
    (size, sha256). Reads every byte once."""
    from pipeline.formats.packed_shards import inspect_shard, sha256_of_file

    problems: list[str] = []
    for split in SPLITS:
        if split not in manifest.raw["splits"]:
            problems.append(f"{manifest.root / 'manifest.json'}: no split '{split}'")
            continue
        for entry in manifest.shards(split):
            path = manifest.root / entry.path
            problem = _size_problem(path, entry.bytes)
            if problem:
                problems.append(problem)
                continue
            if sha256_of_file(path) != entry.sha256:
                problems.append(f"{path}: sha256 differs from the manifest")
                continue
            try:
                block_size, dtype, blocks = inspect_shard(path)
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: not a readable shard ({exc})")
                continue
            if block_size != manifest.block_size or dtype != manifest.dtype:
                problems.append(
                    f"{path}: blocks of {block_size} × {dtype}, the manifest says {manifest.block_size} × {manifest.dtype}"
                )
            elif blocks != entry.blocks:
                problems.append(f"{path}: {blocks} blocks, the manifest says {entry.blocks}")
        problems += _file_problems(manifest, manifest.raw.get("documents", {}).get(split, []))
    problems += _file_problems(manifest, manifest.raw.get("samples", []))  # OUT/dropped/
    return problems


def _file_problems(manifest: DataManifest, entries: list[dict]) -> list[str]:
    from pipeline.formats.packed_shards import sha256_of_file

    problems = []
    for entry in entries:
        path = manifest.root / entry["path"]
        problem = _size_problem(path, entry["bytes"])
        if problem:
            problems.append(problem)
        elif sha256_of_file(path) != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest")
    return problems
