"""A prepared corpus that grows: version 1 in OUT, versions 2, 3, … in OUT/appends/<NNNN>/.

`prepare --append` (pipeline/data/append.py) prepares only the new input files, as a plan of
their own in OUT/appends/<NNNN>/ that deduplicates against the earlier versions and reuses
their tokenizer and validation threshold. An appended version is *published* once its
finalize task is done; OUT/manifest.json — the one file training reads — then lists the
shards of every published version, in version order:

- train and validation shards: version 1's, then version 2's, … (paths relative to OUT), so
  the blocks of an earlier version are a prefix of the next version's block numbering;
- `versions`: per version its folder, plan fingerprint, the train/validation block counts up
  to and including it, and the manifest fingerprint it had when it was the newest. A trainer
  whose checkpoint names an earlier version's fingerprint continues on the grown corpus from
  the next epoch (pipeline/train/sampler.py); any other fingerprint change is refused.

Version 1's finalize task writes OUT/manifest.json, so publishing a version is re-running it
(the combination is a function of the finished markers: the same bytes every time). With no
appended version the manifest is exactly version 1's, without a `versions` list.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from pipeline.data.executor import is_done
from pipeline.data.prepare_plan import Plan, PlanError
from pipeline.formats.manifest import FORMAT, compute_fingerprint

APPENDS = "appends"

_SUMMED_TOTALS = ("documents", "tokens", "blocks", "partial_tokens_dropped")


def append_folder(root: Path, version: int) -> Path:
    return root / APPENDS / f"{version:04d}"


def published_appends(root: Path) -> list[Plan]:
    """The appended versions of `root` whose finalize is done, in order (2, 3, …). A version
    still being prepared ends the list (the next one is created only after it is published)."""
    plans = []
    version = 2
    while (append_folder(root, version) / "plan.json").is_file():
        plan = Plan.load(append_folder(root, version))
        if plan.version != version:
            raise PlanError(f"{plan.output / 'plan.json'}: says version {plan.version}, its folder {version}")
        if not is_done(plan, "finalize", 0):
            break
        plans.append(plan)
        version += 1
    return plans


def _prefixed(entries: list[dict], folder: str) -> list[dict]:
    return [{**entry, "path": f"{folder}/{entry['path']}"} for entry in entries]


def _add(combined: dict, own: dict, report: dict, folder: str, totals: dict) -> None:
    """Append one appended version's own manifest (paths relative to its folder) to `combined`."""
    for split, entry in combined["splits"].items():
        theirs = own["splits"][split]
        entry["shards"] += _prefixed(theirs["shards"], folder)
        for key in ("blocks", "tokens", "documents", "partial_tokens_dropped"):
            entry[key] += theirs[key]
    for split in ("train", "validation"):
        combined["documents"][split] += _prefixed(own["documents"][split], folder)
    combined["samples"] += _prefixed(own["samples"], folder)
    for name, counts in own["sources"].items():
        mine = combined["sources"].setdefault(name, {**counts, **{k: 0 for k in counts if k != "weight"}})
        for key, value in counts.items():
            if key != "weight":
                mine[key] += value
    combined["sources"] = dict(sorted(combined["sources"].items()))
    for key in _SUMMED_TOTALS:
        combined["totals"][key] += own["totals"][key]
    for key in ("tokens", "documents", "chars"):
        totals[key] += sum(report["splits"][split][key] for split in ("train", "validation"))


def _version_entry(combined: dict, version: int, folder: str, plan_fingerprint: str) -> dict:
    return {
        "version": version,
        "folder": folder,
        "plan": plan_fingerprint,
        "train_blocks": combined["splits"]["train"]["blocks"],
        "validation_blocks": combined["splits"]["validation"]["blocks"],
        "fingerprint": compute_fingerprint({"format": FORMAT, **combined}),
    }


def combine_versions(root_plan: Plan, own: dict, report: dict) -> dict:
    """Version 1's manifest `own` (+ its report) with every published appended version added."""
    appends = published_appends(root_plan.output)
    if not appends:
        return own
    combined = copy.deepcopy(own)
    totals = {key: sum(report["splits"][s][key] for s in ("train", "validation")) for key in ("tokens", "documents")}
    totals["chars"] = sum(report["splits"][s]["chars"] for s in ("train", "validation"))
    versions = [_version_entry(combined, 1, ".", root_plan.fingerprint)]
    for plan in appends:
        folder = str(plan.output.relative_to(root_plan.output))
        own_manifest = json.loads((plan.output / "manifest.json").read_text(encoding="utf-8"))
        own_report = json.loads((plan.output / "report.json").read_text(encoding="utf-8"))
        _add(combined, own_manifest, own_report, folder, totals)
        versions.append(_version_entry(combined, plan.version, folder, plan.fingerprint))
    tokens, documents, chars = totals["tokens"], totals["documents"], totals["chars"]
    combined["totals"]["tokens_per_document"] = tokens / documents if documents else 0.0
    combined["totals"]["chars_per_token"] = chars / (tokens - documents) if tokens > documents else 0.0
    combined["versions"] = versions
    return combined


def version_summaries(root_plan: Plan) -> list[dict]:
    """For report.json: what each appended version added (its own report's totals)."""
    rows = []
    for plan in published_appends(root_plan.output):
        report = json.loads((plan.output / "report.json").read_text(encoding="utf-8"))
        rows.append(
            {
                "version": plan.version,
                "folder": str(plan.output.relative_to(root_plan.output)),
                "files": report["inputs"]["files"],
                **{
                    key: report["totals"][key]
                    for key in (
                        "rows_read",
                        "rows_kept",
                        "documents",
                        "duplicates",
                        "train_documents",
                        "validation_documents",
                        "tokens_in_blocks",
                    )
                },
            }
        )
    return rows
