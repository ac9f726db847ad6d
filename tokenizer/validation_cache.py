"""Validate a given tokenizer directory once per content, not once per `prepare`.

`validate_tokenizer_dir` imports transformers and compares it with sentencepiece on probe
texts: ~2 s of CPU (5 s on a loaded core) that every preparation with `--tokenizer DIR` paid
before reading a row. The verdict depends only on the directory's files and on the installed
transformers / tokenizers / sentencepiece, so a pass is remembered under a hash of exactly
those, in `$ZH_PRETRAIN_CACHE` (default `$XDG_CACHE_HOME/zh-pretrain`, else
`~/.cache/zh-pretrain`). Any changed byte or package version is a new key and is checked
again; a failure is never cached; a cache that cannot be written only costs the check.
"""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
from pathlib import Path

from tokenizer.load import HF_FILES, MODEL_FILE, validate_tokenizer_dir

CHECK_VERSION = 1  # bump when validate_tokenizer_dir checks something new: old verdicts are then redone
PACKAGES = ("transformers", "tokenizers", "sentencepiece")


def cache_root() -> Path:
    configured = os.environ.get("ZH_PRETRAIN_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zh-pretrain"


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)  # no import of the package itself: that is the cost we avoid
    except metadata.PackageNotFoundError:
        return "absent"


def content_key(directory: Path) -> str | None:
    """sha256 over the files the check reads and the packages it runs; None if a file is missing."""
    digest = hashlib.sha256(f"check-{CHECK_VERSION}".encode())
    for name in PACKAGES:
        digest.update(f"\0{name}={_package_version(name)}".encode())
    for name in (MODEL_FILE, *HF_FILES):
        path = Path(directory) / name
        if not path.is_file():
            return None
        digest.update(f"\0{name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def validate_once(directory: Path) -> bool:
    """Raise TokenizerDirError like validate_tokenizer_dir; returns True when a cached pass made
    the check unnecessary."""
    key = content_key(directory)
    marker = cache_root() / "validated-tokenizers" / key if key else None
    if marker is not None and marker.is_file():
        return True
    validate_tokenizer_dir(directory)
    if marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            temporary = marker.with_name(f".{marker.name}.tmp-{os.getpid()}")
            temporary.write_text(f"{Path(directory).resolve()}\n", encoding="utf-8")
            os.replace(temporary, marker)
        except OSError:
            pass  # read-only home, full disk: the next run checks again
    return False
