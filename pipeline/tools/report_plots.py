"""PNG figures and a markdown summary for a prepared data directory and for a training run.

    python -m pipeline report --output OUT     # OUT/report.json   → OUT/report/*.png + OUT/report.md
    python launch/report.py RUN                # RUN/metrics.jsonl → RUN/report/*.png + RUN/report.md

Every plotting function returns the series it drew, so tests (and curious users) can check
that the picture shows the numbers in the files. Missing keys are skipped with a note in the
markdown, never an exception: a report of a half-finished run is still useful. Figures are
written under a temporary name and renamed; PNG metadata carries no timestamp, so the same
input gives the same bytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.core.atomic import write_atomically  # noqa: E402
from pipeline.formats.documents import read_records  # noqa: E402
from pipeline.formats.metrics_file import read_metrics  # noqa: E402

Series = dict[str, list]
PNG_METADATA = {"Software": None}  # no version string: same input, same bytes across upgrades


def save_figure(figure, path: Path) -> Path:
    with write_atomically(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100, bbox_inches="tight", metadata=PNG_METADATA)
    plt.close(figure)
    return path


def _bucket_labels(edges: list[int]) -> list[str]:
    return [f"{lo}–{hi - 1}" for lo, hi in zip(edges, edges[1:])] + [f"≥{edges[-1]}"]


# ---------------------------------------------------------------- data report


def plot_row_outcomes(totals: dict, path: Path) -> Series:
    """Rows kept and rows dropped per filter reason (the reasons `clean` counts)."""
    labels = ["kept"] + sorted(totals.get("dropped", {}), key=lambda reason: -totals["dropped"][reason])
    values = [int(totals.get("rows_kept", 0))] + [int(totals["dropped"][reason]) for reason in labels[1:]]
    figure, axis = plt.subplots(figsize=(8, 0.5 * len(labels) + 1.5))
    axis.barh(labels[::-1], values[::-1], color=["tab:red"] * (len(labels) - 1) + ["tab:green"])
    axis.set_xlabel("rows")
    axis.set_title(f"{int(totals.get('rows_read', sum(values))):,} rows read")
    for y, value in enumerate(values[::-1]):
        axis.annotate(f"{value:,}", (value, y), xytext=(3, 0), textcoords="offset points", va="center")
    save_figure(figure, path)
    return {"x": labels, "y": values}


def plot_histogram(histogram: dict, path: Path, xlabel: str, title: str) -> Series:
    """A fixed-edge histogram from report.json ({"edges": [...], "counts": [...]}); empty buckets
    beyond the longest document are left off the axis."""
    labels, counts = _bucket_labels(list(histogram["edges"])), [int(c) for c in histogram["counts"]]
    shown = max((i for i, c in enumerate(counts) if c), default=0) + 1
    labels, counts = labels[:shown], counts[:shown]
    figure, axis = plt.subplots(figsize=(9, 4))
    axis.bar(range(len(counts)), counts, color="tab:blue")
    axis.set_xticks(range(len(counts)), labels, rotation=45, ha="right")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("documents")
    axis.set_title(title)
    save_figure(figure, path)
    return {"x": labels, "y": counts}


def render_data_report(output_dir: str | Path) -> dict[str, Any]:
    """OUT/report.json → OUT/report/{rows,doc_chars,doc_tokens}.png + OUT/report.md."""
    output_dir = Path(output_dir)
    report_path = output_dir / "report.json"
    if not report_path.is_file():
        raise FileNotFoundError(f"{report_path}: not found — run `python -m pipeline prepare` first")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    totals = report.get("totals", {})
    histograms = report.get("histograms", {})
    figures_dir = output_dir / "report"
    series: dict[str, Series] = {}
    notes: list[str] = []
    if "rows_kept" in totals or "dropped" in totals:
        series["rows"] = plot_row_outcomes(totals, figures_dir / "rows.png")
    else:
        notes.append("no row counts in report.json (totals.rows_kept / totals.dropped)")
    for key, xlabel, title in (
        ("doc_chars", "characters per document", "Document length"),
        ("doc_tokens", "tokens per document", "Tokens per document"),
    ):
        if key in histograms:
            series[key] = plot_histogram(histograms[key], figures_dir / f"{key}.png", xlabel, title)
        else:
            notes.append(f"no histograms.{key} in report.json")

    lines = ["# Data report", "", f"Source: `{report_path}`", ""]
    table = [
        ("rows read", totals.get("rows_read")),
        ("rows kept", totals.get("rows_kept")),
        ("documents", totals.get("documents")),
        ("duplicates removed", totals.get("duplicates")),
        ("near duplicates removed", totals.get("near_duplicates")),
        ("train documents", totals.get("train_documents")),
        ("validation documents", totals.get("validation_documents")),
        ("tokens", totals.get("tokens")),
        ("blocks", totals.get("blocks")),
        ("tokens lost to partial blocks", totals.get("partial_tokens_dropped")),
        (
            "vocabulary used",
            f"{report['vocab_used_share']:.1%}" if isinstance(report.get("vocab_used_share"), float) else None,
        ),
        ("tokens per document", report.get("tokens_per_document")),
        ("characters per token", report.get("chars_per_token")),
    ]
    lines += ["| | |", "|---|---:|"] + [f"| {name} | {_number(value)} |" for name, value in table if value is not None]
    if totals.get("dropped"):
        lines += ["", "Rows dropped, by reason:", "", "| reason | rows |", "|---|---:|"]
        lines += [
            f"| {reason} | {count:,} |" for reason, count in sorted(totals["dropped"].items(), key=lambda kv: -kv[1])
        ]
    sources = report.get("sources") or {}
    if sources:
        lines += [
            "",
            "Tokens per source (with EOS, before cutting into blocks); train is read `weight` times per epoch:",
            "",
            "| source | files | weight | train tokens | per epoch (weighted) | validation tokens |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {name} | {s['files']} | {s['weight']:g} | {s['train_tokens']:,} | {s['train_weighted_tokens']:,} "
            f"| {s['validation_tokens']:,} |"
            for name, s in sources.items()
        ]
    appended = report.get("appended_versions") or []
    if appended:
        lines += [
            "",
            "The table above is version 1. Versions added since by `prepare --append` (each folder has its own "
            "report.md; duplicates include copies of an earlier version's text):",
            "",
            "| version | folder | files | rows read | documents | duplicates | train docs | validation docs | "
            "tokens in blocks |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {v['version']} | `{v['folder']}` | {v['files']:,} | {v['rows_read']:,} | {v['documents']:,} | "
            f"{v['duplicates']:,} | {v['train_documents']:,} | {v['validation_documents']:,} | "
            f"{v['tokens_in_blocks']:,} |"
            for v in appended
        ]
    errors = report.get("errors") or []
    if errors:
        lines += ["", f"Files with problems ({len(errors)}):", ""]
        lines += [f"- `{e.get('path')}`: {e.get('reason') or 'error'} — {e.get('error', '')}" for e in errors[:50]]
        if len(errors) > 50:
            lines.append(f"- … and {len(errors) - 50} more in report.json")
    lines += dropped_examples(output_dir, report.get("dropped_samples") or {})
    lines += [""] + [f"![{name}](report/{name}.png)" for name in series]
    if notes:
        lines += ["", "Not shown: " + "; ".join(notes) + "."]
    _write_text(output_dir / "report.md", "\n".join(lines) + "\n")
    return {
        "series": series,
        "figures": sorted(str(p) for p in figures_dir.glob("*.png")),
        "markdown": str(output_dir / "report.md"),
    }


SHOWN_PER_SOURCE = 2  # examples per (reason, source) in report.md; OUT/dropped/ holds more
SHOWN_CHARS = 160


def _cell(text: str) -> str:
    text = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ⏎ ").replace("\r", " ")


def _where(entry: dict) -> str:
    part = f" piece {entry['part']}" if entry.get("part") else ""
    return f"`{entry['path']}` row {entry['row']}{part}"


def dropped_examples(output_dir: Path, section: dict) -> list[str]:
    """A few examples per reason and source from OUT/dropped/*.jsonl.zst (the text before
    cleaning for rows the filters dropped; pairs for duplicates; clusters for near ones)."""
    if not section:
        return []
    lines = ["", "## What was dropped: examples", ""]
    lines.append(
        f"A few per reason and source; `{output_dir}/dropped/<reason>.jsonl.zst` holds up to "
        "`samples.per_source` of each, chosen by a hash of (file, row)."
    )
    for reason, info in section.items():
        path = output_dir / info["path"]
        if not path.is_file():
            lines += ["", f"### {reason}", "", f"(`{path}` is missing)"]
            continue
        shown: dict[str, int] = {}
        rows = []
        for record in read_records(path):
            source = record["source"]
            if shown.get(source, 0) >= SHOWN_PER_SOURCE:
                continue
            shown[source] = shown.get(source, 0) + 1
            if "members" in record:
                first, *others = record["members"]
                rows.append(
                    f"| {source} | {record['size']} documents, kept {_where(first)}: {_cell(first['text'])} | "
                    + "<br>".join(f"{_where(m)}: {_cell(m['text'])}" for m in others)
                    + " |"
                )
            elif "removed" in record:
                removed, kept = record["removed"], record["kept"]
                rows.append(f"| {source} | removed {_where(removed)}: {_cell(removed['text'])} | kept {_where(kept)} |")
            else:
                rows.append(f"| {source} | {_where(record)}, {record['chars']} chars | {_cell(record['text'])} |")
        header = {
            "duplicates": "| source | copy removed | first occurrence kept |",
            "near_duplicates": "| source | cluster | other members |",
        }.get(reason, "| source | where | text before cleaning |")
        lines += [
            "",
            f"### {reason} ({info['samples']} examples in `{info['path']}`)",
            "",
            header,
            "|---|---|---|",
            *rows,
        ]
    return lines


# ---------------------------------------------------------------- training report


def read_run_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """(train records, eval records) by step; a step logged twice (a resumed run) keeps its last record."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found — is {run_dir} a training run directory?")
    return read_metrics(path, "train"), read_metrics(path, "eval")


def _series(records: list[dict], key: str) -> Series:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return {"x": [p[0] for p in points], "y": [p[1] for p in points]}


def plot_lines(panels: list[tuple[str, Series, str]], path: Path, log_y: bool = False) -> None:
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for label, series, style in panels:
        axis.plot(series["x"], series["y"], style, label=label)
    axis.set_xlabel("step")
    if log_y:
        axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend()
    save_figure(figure, path)


def render_training_report(run_dir: str | Path) -> dict[str, Any]:
    """RUN/metrics.jsonl → RUN/report/{loss,val_ppl,lr,throughput}.png + RUN/report.md."""
    run_dir = Path(run_dir)
    train, evals = read_run_metrics(run_dir)
    figures_dir = run_dir / "report"
    series = {
        "train_loss": _series(train, "loss"),
        "val_loss": _series(evals, "val_loss"),
        "val_ppl": _series(evals, "val_ppl"),
        "val_acc": _series(evals, "val_acc"),
        "lr": _series(train, "lr"),
        "tokens_per_s": _series(train, "tokens_per_s"),
    }
    drawn: dict[str, Series] = {}
    figures = {
        "loss": ([("train loss", series["train_loss"], "-"), ("validation loss", series["val_loss"], "o-")], False),
        "val_ppl": ([("validation perplexity", series["val_ppl"], "o-")], True),
        "lr": ([("learning rate", series["lr"], "-")], False),
        "throughput": ([("tokens/s (all ranks)", series["tokens_per_s"], "-")], False),
    }
    for name, (panels, log_y) in figures.items():
        panels = [panel for panel in panels if panel[1]["x"]]
        if panels:
            plot_lines(panels, figures_dir / f"{name}.png", log_y=log_y)
            drawn.update({label: s for label, s, _ in panels})

    lines = ["# Training report", "", f"Run: `{run_dir}`", ""]
    if train:
        last = train[-1]
        lines += [
            f"- steps logged: {len(train)} (last step {last['step']}), last train loss {_number(last.get('loss'))}"
        ]
        speeds = series["tokens_per_s"]["y"]
        if speeds:
            lines.append(f"- throughput: median {_number(sorted(speeds)[len(speeds) // 2])} tokens/s")
        for key, label in (("mfu", "MFU"), ("data_wait_share", "data-wait share of step time")):
            values = _series(train, key)["y"]
            if values:
                lines.append(f"- {label}: median {sorted(values)[len(values) // 2]:.2%}")
    else:
        lines.append("- no train records yet")
    if evals:
        best = min((r for r in evals if "val_loss" in r), key=lambda r: r["val_loss"], default=None)
        last = evals[-1]
        lines.append(
            f"- last evaluation (step {last['step']}): loss {_number(last.get('val_loss'))}, "
            f"perplexity {_number(last.get('val_ppl'))}, next-token accuracy {_number(last.get('val_acc'))}"
        )
        if best is not None:
            lines.append(
                f"- best validation loss {_number(best['val_loss'])} (perplexity {_number(best.get('val_ppl'))}) at step {best['step']}"
            )
    else:
        lines.append("- no evaluations yet")
    lines += ["", f"TensorBoard: `tensorboard --logdir {run_dir / 'tb'}`", ""]
    lines += [f"![{name}](report/{name}.png)" for name in figures if (figures_dir / f"{name}.png").exists()]
    _write_text(run_dir / "report.md", "\n".join(lines) + "\n")
    return {
        "series": series,
        "drawn": drawn,
        "figures": sorted(str(p) for p in figures_dir.glob("*.png")),
        "markdown": str(run_dir / "report.md"),
    }


# ---------------------------------------------------------------- helpers, command line


def _number(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _write_text(path: Path, text: str) -> None:
    with write_atomically(path, "w") as handle:
        handle.write(text)
