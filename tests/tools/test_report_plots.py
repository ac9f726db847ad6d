"""Data and training reports: real PNGs whose plotted data are the numbers in the files."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from pipeline.tools.report_plots import render_data_report, render_training_report

ROOT = Path(__file__).resolve().parents[2]
EDGES = [0, 8, 16, 32, 64, 128]


def data_report() -> dict:
    return {
        "totals": {
            "rows_read": 1000,
            "rows_kept": 870,
            "dropped": {"too_short": 90, "empty": 25, "mostly_symbols": 15},
            "documents": 850,
            "duplicates": 20,
            "train_documents": 830,
            "validation_documents": 20,
            "tokens": 123456,
            "blocks": 241,
        },
        "histograms": {
            "doc_chars": {"edges": EDGES, "counts": [0, 10, 200, 400, 200, 40]},
            "doc_tokens": {"edges": EDGES, "counts": [5, 300, 400, 100, 45, 0]},
        },
        "chars_per_token": 1.61,
        "errors": [{"path": "corpus/a/part-1.csv", "reason": "missing_column", "error": "no column 'content'"}],
        "tokens_per_document": 145.2,
    }


def assert_png(path: str | Path) -> None:
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # not a blank canvas


def test_data_report_plots_the_report(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(data_report()))
    result = render_data_report(tmp_path)
    assert result["series"]["rows"] == {"x": ["kept", "too_short", "empty", "mostly_symbols"], "y": [870, 90, 25, 15]}
    assert result["series"]["doc_chars"]["y"] == [0, 10, 200, 400, 200, 40]
    # the empty last bucket (no document has ≥128 tokens) is left off the axis
    assert result["series"]["doc_tokens"] == {
        "x": ["0–7", "8–15", "16–31", "32–63", "64–127"],
        "y": [5, 300, 400, 100, 45],
    }
    assert [Path(p).name for p in result["figures"]] == ["doc_chars.png", "doc_tokens.png", "rows.png"]
    for figure in result["figures"]:
        assert_png(figure)
    markdown = (tmp_path / "report.md").read_text()
    assert "| characters per token | 1.61 |" in markdown and "| too_short | 90 |" in markdown
    assert "`corpus/a/part-1.csv`: missing_column" in markdown
    first = {p: Path(p).read_bytes() for p in result["figures"]}
    render_data_report(tmp_path)
    assert {p: Path(p).read_bytes() for p in result["figures"]} == first  # deterministic bytes


def test_data_report_tolerates_missing_keys(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps({"totals": {"rows_read": 5, "rows_kept": 5}}))
    result = render_data_report(tmp_path)
    assert [Path(p).name for p in result["figures"]] == ["rows.png"]
    assert "no histograms.doc_chars" in (tmp_path / "report.md").read_text()


def test_data_report_command(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(data_report()))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "report",
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0 and "3 figures" in done.stdout, done.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "report",
            "--output",
            str(tmp_path / "nowhere"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert missing.returncode == 2 and "prepare" in missing.stderr


def write_metrics(run_dir: Path) -> list[dict]:
    records = []
    for step in range(1, 41):
        records.append(
            {
                "kind": "train",
                "step": step,
                "loss": 6.0 * math.exp(-step / 15) + 1.0,
                "lr": min(1.0, step / 10) * 6e-4,
                "grad_norm": 1.0,
                "tokens_per_s": 1000.0 + step,
                "step_time_s": 0.1,
                "data_wait_share": 0.002,
                "mfu": 0.31,
            }
        )
        if step % 10 == 0:
            records.append(
                {
                    "kind": "eval",
                    "step": step,
                    "val_loss": 5.0 - step / 20,
                    "val_ppl": math.exp(5.0 - step / 20),
                    "val_acc": step / 100,
                }
            )
    # a preempted and resumed run logs steps 21-23 twice; the later records are the ones that count
    resumed = [dict(r, loss=r["loss"] + 0.5) for r in records if r["kind"] == "train" and 21 <= r["step"] <= 23]
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = (
        [json.dumps(r) for r in records[:25]] + [json.dumps(r) for r in resumed] + [json.dumps(r) for r in records[25:]]
    )
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    latest = {(r["kind"], r["step"]): r for r in records}
    latest.update({("train", r["step"]): r for r in resumed})
    return list(latest.values())


def test_training_report_plots_the_metrics(tmp_path):
    expected = write_metrics(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "report", "--run", str(tmp_path)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    result = render_training_report(tmp_path)
    train = sorted((r for r in expected if r["kind"] == "train"), key=lambda r: r["step"])
    evals = sorted((r for r in expected if r["kind"] == "eval"), key=lambda r: r["step"])
    assert result["series"]["train_loss"] == {"x": [r["step"] for r in train], "y": [r["loss"] for r in train]}
    assert result["series"]["train_loss"]["y"][21] == train[21]["loss"]  # step 22: the resumed value
    assert result["series"]["val_ppl"] == {"x": [10, 20, 30, 40], "y": [r["val_ppl"] for r in evals]}
    assert result["series"]["lr"]["y"] == [r["lr"] for r in train]
    assert result["series"]["tokens_per_s"]["y"] == [r["tokens_per_s"] for r in train]
    assert set(result["drawn"]) == {
        "train loss",
        "validation loss",
        "validation perplexity",
        "learning rate",
        "tokens/s (all ranks)",
    }
    assert [Path(p).name for p in result["figures"]] == ["loss.png", "lr.png", "throughput.png", "val_ppl.png"]
    for figure in result["figures"]:
        assert_png(figure)
    markdown = (tmp_path / "report.md").read_text()
    assert "best validation loss 3" in markdown and "at step 40" in markdown and "tensorboard --logdir" in markdown


def test_training_report_of_a_run_without_evaluations(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 1, "loss": 7.0, "lr": 1e-4}) + "\n")
    result = render_training_report(tmp_path)
    assert [Path(p).name for p in result["figures"]] == ["loss.png", "lr.png"]
    assert "no evaluations yet" in (tmp_path / "report.md").read_text()
    (tmp_path / "metrics.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="metrics.jsonl:1"):
        render_training_report(tmp_path)


@pytest.mark.slow
def test_data_report_of_a_real_prepare_run(prepared, tmp_path):
    """The report.json that `python -m pipeline prepare` really writes (the session's prepared
    corpus, copied so the shared output stays untouched), not only the assumed shape."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(prepared / "report.json", out / "report.json")
    report = json.loads((out / "report.json").read_text())
    result = render_data_report(out)
    totals = report["totals"]
    assert result["series"]["rows"]["y"][0] == totals["rows_kept"]
    assert sum(result["series"]["rows"]["y"]) == totals["rows_read"]  # every row is kept or dropped for a reason
    for key in ("doc_chars", "doc_tokens"):
        counts = report["histograms"][key]["counts"]
        assert (
            sum(result["series"][key]["y"]) == sum(counts) == totals["train_documents"] + totals["validation_documents"]
        )
    for figure in result["figures"]:
        assert_png(figure)
    assert f"| characters per token | {report['chars_per_token']:,.4g} |" in (out / "report.md").read_text()
