"""The exactly-once sample audit: RUN/audit/rank<r>.jsonl and its checker.

With `audit_samples: true` every rank appends one record per optimizer step: the step, its
micro-batches' sample ids and their losses (float.hex, bit-exact). A start that resumes from step
k first drops the records after k (those steps are redone — after a `kill -9` they were written
but never checkpointed), so the file holds each step exactly once and a repeated or skipped
sample is visible to `check_exactly_once`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.core.atomic import write_atomically


class AuditError(ValueError):
    pass


def audit_path(run_dir: Path, rank: int) -> Path:
    return Path(run_dir) / "audit" / f"rank{rank}.jsonl"


class SampleAudit:
    """This rank's audit file, cut back to `resume_step` (0: a fresh start, a fresh file)."""

    def __init__(self, run_dir: Path, rank: int, resume_step: int):
        path = audit_path(run_dir, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step and path.exists():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= resume_step:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):  # a line torn by a kill
                    continue
        with write_atomically(path, "w") as handle:
            handle.write("".join(line + "\n" for line in kept))
        self._file = open(path, "a")

    def record(self, step: int, micro_batches: list, losses: list[str]) -> None:
        self._file.write(json.dumps({"step": step, "samples": [m.tolist() for m in micro_batches], "losses": losses}))
        self._file.write("\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_audit(run_dir: Path, world: int) -> dict[int, dict]:
    """step → {"stream": sample ids in stream order, "losses": per-rank per-micro loss hex}.
    Raises AuditError when a rank logged a step twice or the steps have a gap."""
    steps: dict[int, dict] = {}
    for rank in range(world):
        path = audit_path(run_dir, rank)
        seen = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise AuditError(f"{path}:{number}: not JSON (a torn line)") from None
            if record["step"] in seen:
                raise AuditError(f"{path}:{number}: step {record['step']} logged twice (a redone step kept twice)")
            seen.append(record["step"])
            entry = steps.setdefault(record["step"], {"micro": {}, "losses": {}})
            entry["micro"][rank] = record["samples"]
            entry["losses"][rank] = record["losses"]
        if seen != list(range(1, len(seen) + 1)):
            raise AuditError(f"{path}: steps are not 1..{len(seen)} in order: {seen[:20]}…")
    out = {}
    for step, entry in sorted(steps.items()):
        if len(entry["micro"]) != world:
            raise AuditError(f"step {step}: logged by ranks {sorted(entry['micro'])}, expected all {world}")
        accum = len(entry["micro"][0])
        stream = [i for k in range(accum) for r in range(world) for i in entry["micro"][r][k]]
        out[step] = {"stream": stream, "losses": [entry["losses"][r] for r in range(world)]}
    return out


def check_exactly_once(audit: dict[int, dict], num_samples: int) -> int:
    """Every sample once per epoch: each full epoch of the stream is a permutation of the blocks,
    and the started epoch repeats none. Returns the number of full epochs; raises AuditError."""
    stream = [i for step in sorted(audit) for i in audit[step]["stream"]]
    full_epochs = len(stream) // num_samples
    for epoch in range(full_epochs):
        part = stream[epoch * num_samples : (epoch + 1) * num_samples]
        if sorted(part) != list(range(num_samples)):
            repeated = sorted({i for i in part if part.count(i) > 1})[:10]
            raise AuditError(f"epoch {epoch}: not every sample exactly once (repeated: {repeated})")
    partial = stream[full_epochs * num_samples :]
    if len(set(partial)) != len(partial):
        raise AuditError(f"epoch {full_epochs} (started): a sample repeats")
    return full_epochs
