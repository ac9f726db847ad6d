"""benchmarks/gpu_check.py's dry run (CPU build, tiny model): the same code path as on a GPU,
checked for the result format — every field present, numbers finite, the MFU label honest about
its denominator, the markdown table and lines. One eager variant on the shared prepared data
(the other variants are the same code with other overrides; tests/train/test_speed_options.py
covers them on the CPU)."""

import json
import math
import subprocess
import sys

import pytest

from tests.helpers.train_fixtures import REPO, train_env

pytestmark = pytest.mark.slow

VARIANT_FIELDS = {
    "variant": str,
    "ok": bool,
    "steps": int,
    "tokens_per_s": float,
    "step_time_s": float,
    "mfu": float,
    "peak_memory_gib": float,
    "peak_memory_kind": str,
    "final_loss": float,
    "wall_seconds": float,
    "first_window_step_time_s": float,
    "optimizer": str,
    "attention": str,
}


def finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_dry_run_writes_the_result_format(prepared, tmp_path):
    out = tmp_path / "check"
    command = [sys.executable, str(REPO / "benchmarks/gpu_check.py"), "--cpu", "--data", str(prepared)]
    command += ["--out", str(out), "--variants", "eager", "--steps", "4"]
    result = subprocess.run(command, cwd=REPO, env=train_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    report = json.loads((out / "gpu_check.json").read_text())
    assert report["schema"] == "gpu_check/1" and report["mode"] == "cpu dry run"
    env = report["environment"]
    assert env["device"] == "cpu" and env["torch"].startswith("2.") and env["peak_tflops"] == 1.0
    assert report["mfu_label"] == "MFU vs a nominal 1 TFLOP/s (CPU dry run: not a hardware peak)"
    assert report["data"]["block_size"] == 128 and report["data"]["train_blocks"] > 0

    (variant,) = report["variants"]
    for key, kind in VARIANT_FIELDS.items():
        value = variant[key]
        assert isinstance(value, kind) or (kind is float and finite_number(value)), (key, value)
        if kind is float:
            assert finite_number(value) and value > 0, (key, value)
    assert variant["variant"] == "eager" and variant["ok"] and variant["steps"] == 4
    assert variant["optimizer"].startswith("AdamW(fused=False") and variant["peak_memory_kind"] == "process max RSS"
    assert variant["attention"].startswith("SDPA → ") and "on cpu (float32" in variant["attention"]

    ck = report["checkpoint"]
    for key in ("save_seconds_at_end", "save_seconds_at_stop", "load_seconds"):
        assert finite_number(ck[key]) and ck[key] >= 0, (key, ck)
    assert report["resume"]["bitwise"] is True, report["resume"]  # fp32 on the CPU: exact
    assert report["resume"]["reason"].startswith("stopped at step 2 and resumed")
    assert report["binding"] == {"ok": None, "summary": "n/a on the CPU (no devices to bind)"}
    assert finite_number(report["total_seconds"])

    md = (out / "gpu_check.md").read_text()
    lines = md.splitlines()
    assert lines[0].startswith("# GPU check — ") and "cpu dry run" in lines[0]
    assert report["mfu_label"] in md
    header = "| variant | tokens/s | MFU | step s | first window step s | peak memory GiB | final loss | optimizer |"
    row = lines[lines.index(header) + 2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "eager" and len(cells) == 8
    assert float(cells[1].replace(",", "")) > 0 and cells[2].endswith("%")
    for prefix in ("- Attention: SDPA → ", "- Checkpoint save: ", "- Bitwise resume: yes — ", "- One-GPU-per-task"):
        assert any(line.startswith(prefix) for line in lines), prefix
