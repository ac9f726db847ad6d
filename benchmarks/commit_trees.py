"""Two commits checked out side by side, and the outputs of `prepare` compared between them:
shared by compare_commits.py (speed) and golden_prepare.py (bytes)."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def commit_trees(base: str, head: str | None, prefix: str) -> Iterator[tuple[Path, dict[str, Path]]]:
    """(a scratch folder, {"base": tree, "head": tree}): each commit in a git worktree of its own,
    head None for this working tree as it is; both removed on exit."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    trees: dict[str, Path] = {}
    try:
        for side, commit in (("base", base), ("head", head)):
            trees[side] = REPO if commit is None else scratch / side
            if commit is not None:
                subprocess.run(
                    ["git", "worktree", "add", "--detach", "-q", str(trees[side]), commit], cwd=REPO, check=True
                )
        yield scratch, trees
    finally:
        for tree in trees.values():
            if tree != REPO:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)
        shutil.rmtree(scratch, ignore_errors=True)


def outputs(root: Path) -> dict[str, str]:
    """sha256 of every file outside work/ and appends/NNNN/work/ (markers and intermediates may
    differ between commits)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "work" not in p.relative_to(root).parts[:3]
    }
