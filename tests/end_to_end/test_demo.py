"""The README's first command — the product's front door — run for real, end to end."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.train_fixtures import kill_tree

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    demo = tmp_path / "demo"
    # its own session, so a timeout kills the whole demo (trainer ranks included), not only bash:
    # orphaned ranks would train on beside the rest of the suite
    process = subprocess.Popen(
        ["bash", "launch/demo.sh"],
        cwd=REPO,
        env={**os.environ, "DEMO_DIR": str(demo)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=3000)  # ~6 min idle; generous for a loaded 2-core machine
    except subprocess.TimeoutExpired:
        kill_tree(process.pid)
        out, err = process.communicate()
        pytest.fail("the demo did not finish in 3000 s:\n" + out[-4000:] + err[-4000:])
    assert process.returncode == 0, out[-4000:] + err[-4000:]
    assert "first run exited with code 75" in out  # interrupted by the signal …
    assert '"state": "finished"' in (demo / "run" / "status.json").read_text()  # … and resumed to the end
    evaluation = json.loads((demo / "run" / "eval.json").read_text())
    assert evaluation["perplexity"] < evaluation["unigram"]["perplexity"] / 2
    assert "lower than the unigram baseline" in out
    for path in ("data/manifest.json", "data/report.md", "run/hf/model.safetensors", "run/report.md"):
        assert (demo / path).is_file(), path
    assert list((demo / "run" / "report").glob("*.png")) and list((demo / "data" / "report").glob("*.png"))
    assert out.rstrip().splitlines()[-1].strip().startswith("README.md")  # ends by saying what to do next
