"""The human summary printed at the end of `prepare` (from report.json)."""

from __future__ import annotations

from pathlib import Path


def format_summary(
    report: dict, output: Path, seconds: dict[str, float] | None = None, wall: float | None = None
) -> str:
    t = report["totals"]
    lines = [
        "",
        f"Inputs      {report['inputs']['files']} files, {report['inputs']['bytes'] / 1e6:.1f} MB"
        + (f" ({len(report['inputs']['ignored'])} other files ignored)" if report["inputs"]["ignored"] else ""),
        f"Rows        {t['rows_read']:,} read, {t['rows_kept']:,} kept, {t['rows_read'] - t['rows_kept']:,} dropped",
    ]
    for reason, count in sorted(t["dropped"].items(), key=lambda kv: -kv[1]):
        lines.append(f"              {reason:<22}{count:>12,}")
    lines += [
        f"Documents   {t['documents']:,} ({t['duplicates']:,} duplicates"
        + (f", {t['near_duplicates']:,} near-duplicates" if t.get("near_duplicates") else "")
        + " removed) → "
        f"{t['train_documents']:,} train, {t['validation_documents']:,} validation",
        f"Tokens      {t['tokens']:,} ({report['tokens_per_document']:.1f} per document, "
        f"{report['chars_per_token']:.2f} chars per token, {report['vocab_used_share']:.1%} of the vocabulary used)",
        f"Blocks      {t['blocks']:,} ({t['partial_tokens_dropped']:,} tokens in partial blocks dropped, no padding)",
    ]
    weighted = {name: s for name, s in report.get("sources", {}).items() if s["weight"] != 1.0}
    if weighted:
        lines.append(
            "Mixture     "
            + ", ".join(
                f"{name} ×{s['weight']:g}: {s['train_tokens']:,} → {s['train_weighted_tokens']:,} tokens"
                for name, s in weighted.items()
            )
        )
    if report["errors"]:
        lines.append(f"Problems    {len(report['errors'])} file(s):")
        for error in report["errors"][:10]:
            lines.append(f"              {error['path']}: {error['reason'] or 'error'} — {error['error']}")
        if len(report["errors"]) > 10:
            lines.append(f"              … and {len(report['errors']) - 10} more in report.json")
    if seconds:
        lines.append(
            "Time        "
            + ", ".join(f"{name} {s:.1f}s" for name, s in seconds.items())
            + (f"; total {wall:.1f}s" if wall else "")
        )
    tokenizer = " tokenizer/," if (output / "tokenizer").is_dir() else ""  # an appended version uses version 1's
    lines += [
        f"Output      {output}/manifest.json, report.json,{tokenizer} train/*.arrow, validation/*.arrow",
    ]
    return "\n".join(lines)
