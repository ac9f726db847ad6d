"""Sources and their mixture weights: which input file belongs to which source, how often
the training stream reads it.

A file's *source* is the `mixture:` rule that matches it (a folder or a glob relative to the
input root), else its folder relative to the input root ("." for files right in it). The
input root is the part of the `--input` patterns before the first wildcard. Rules are
checked before any work: a rule matching no input, or a file matched by two rules, is an
error naming the key.

Weights act in the pack stage (stages/pack.py): the packed train stream *is* the weighted
epoch. A weight w = n + f (n whole passes, 0 ≤ f < 1) emits each train document of the source
in passes 0..n-1, and in pass n iff its row's draw is below f. The draw is the first 8 bytes
of blake2b("{path}:{row}") read big-endian, over 2^64: all pieces of a row go together,
and the choice does not depend on task counts.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import os
from collections.abc import Mapping, Sequence

GLOB_CHARS = "*?["
MAX_WEIGHT = 100.0


class MixtureError(ValueError):
    pass


def input_root(patterns: Sequence[str]) -> str:
    """The folder the `--input` patterns start from: each pattern's path up to its first
    component with a wildcard (a plain file path: its folder), common to all patterns."""
    prefixes = []
    for pattern in patterns:
        parts = pattern.split(os.sep)
        fixed = []
        for part in parts:
            if any(c in part for c in GLOB_CHARS):
                break
            fixed.append(part)
        else:
            fixed = fixed[:-1]  # no wildcard: the pattern names a file
        prefixes.append(os.sep.join(fixed) or ("/" if pattern.startswith(os.sep) else "."))
    try:
        return (os.path.commonpath(prefixes) if prefixes else "") or "."  # commonpath(["."]) is ""
    except ValueError:  # absolute and relative patterns mixed
        return "/"


def relative_path(path: str, root: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


def _matches(rule: str, relative: str) -> bool:
    rule = rule.strip("/")
    if any(c in rule for c in GLOB_CHARS):
        return fnmatch.fnmatchcase(relative, rule) or fnmatch.fnmatchcase(relative, rule + "/*")
    return relative == rule or relative.startswith(rule + "/")


def resolve_sources(
    paths: Sequence[str], root: str, mixture: Mapping[str, float], every_rule_used: bool = True
) -> tuple[list[str], dict[str, float]]:
    """(source name of each path, weight of each source). Raises MixtureError naming the key.
    `every_rule_used`: a rule matching none of `paths` is an error (a typo) — except for the new
    files of `prepare --append`, which need not include every source of the corpus."""
    for key, weight in mixture.items():
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and 0 < weight <= MAX_WEIGHT):
            raise MixtureError(f"mixture.{key}: weight must be in (0, {MAX_WEIGHT:g}], got {weight!r}")
    sources = []
    used: set[str] = set()
    for path in paths:
        relative = relative_path(path, root)
        rules = [key for key in mixture if _matches(key, relative)]
        if len(rules) > 1:
            raise MixtureError(
                f"mixture.{rules[0]} and mixture.{rules[1]} both match {path}: a file may belong to one source only"
            )
        if rules:
            sources.append(rules[0])
            used.add(rules[0])
        else:
            folder = os.path.dirname(relative)
            sources.append(folder or ".")
    unused = [key for key in mixture if key not in used]
    if unused and every_rule_used:
        raise MixtureError(
            f"mixture.{unused[0]}: matches no input file under {root} (sources there: "
            f"{', '.join(sorted(set(sources))[:8])})"
        )
    return sources, {name: float(mixture.get(name, 1.0)) for name in sorted(set(sources))}


def row_draw(path: str, row: int) -> float:
    """The row's uniform draw in [0, 1) that decides the fractional part of its weight."""
    digest = hashlib.blake2b(f"{path}:{row}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def copies(weight: float, path: str, row: int) -> int:
    """How many times a train document of this row appears in one weighted epoch."""
    whole = math.floor(weight)
    if whole == weight:  # the usual weight 1: no draw needed (row_draw < 0 is never true)
        return whole
    return whole + (1 if row_draw(path, row) < weight - whole else 0)
