"""The README's first command — the product's front door — run for real, end to end."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    demo = tmp_path / "demo"
    result = subprocess.run(
        ["bash", "launch/demo.sh"],
        cwd=REPO,
        env={**os.environ, "DEMO_DIR": str(demo)},
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert "first run exited with code 75" in out  # interrupted by the signal …
    assert '"state": "finished"' in (demo / "run" / "status.json").read_text()  # … and resumed to the end
    evaluation = json.loads((demo / "run" / "eval.json").read_text())
    assert evaluation["perplexity"] < evaluation["unigram"]["perplexity"] / 2
    assert "lower than the unigram baseline" in out
    for path in ("data/manifest.json", "data/report.md", "run/hf/model.safetensors", "run/report.md"):
        assert (demo / path).is_file(), path
    assert list((demo / "run" / "report").glob("*.png")) and list((demo / "data" / "report").glob("*.png"))
    assert out.rstrip().splitlines()[-1].strip().startswith("README.md")  # ends by saying what to do next
