"""The exactly-once sample audit: RUN/audit/rank<r>.jsonl and its checker.

With `audit_samples: true` every rank appends one record per optimizer step: the step, the world
size it ran on, its micro-batches' sample ids and their losses (float.hex, bit-exact). A start that
resumes from step k first drops the records after k (those steps are redone — after a `kill -9`
they were written but never checkpointed): each rank in its own file, and rank 0 also in the files
of ranks the new world size no longer has (a run resumed on fewer ranks). So the files hold each
step exactly once — a step of a 3-rank leg in rank0..2.jsonl, of a 1-rank leg in rank0.jsonl only —
and a repeated or skipped sample is visible to `check_exactly_once` over the union of all legs.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.core.atomic import write_atomically


class AuditError(ValueError):
    pass


def audit_path(run_dir: Path, rank: int) -> Path:
    return Path(run_dir) / "audit" / f"rank{rank}.jsonl"


def _cut(path: Path, resume_step: int) -> None:
    """Keep the records of steps <= resume_step (all gone when resume_step is 0)."""
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


def _rank_files(run_dir: Path) -> dict[int, Path]:
    files = {}
    for path in (Path(run_dir) / "audit").glob("rank*.jsonl"):
        number = path.stem[len("rank") :]
        if number.isdigit():
            files[int(number)] = path
    return dict(sorted(files.items()))


class SampleAudit:
    """This rank's audit file, cut back to `resume_step` (0: a fresh start, a fresh file). Rank 0
    also cuts the files of ranks >= `world` (left by a leg on more ranks)."""

    def __init__(self, run_dir: Path, rank: int, resume_step: int, world: int):
        path = audit_path(run_dir, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        _cut(path, resume_step)
        if rank == 0:
            for other_rank, other in _rank_files(run_dir).items():
                if other_rank >= world:
                    _cut(other, resume_step)
        self.world = world
        self._file = open(path, "a")

    def record(self, step: int, micro_batches: list, losses: list[str]) -> None:
        record = {"step": step, "world": self.world, "samples": [m.tolist() for m in micro_batches], "losses": losses}
        self._file.write(json.dumps(record))
        self._file.write("\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_audit(run_dir: Path, world: int | None = None) -> dict[int, dict]:
    """step → {"stream": sample ids in stream order, "losses": per-rank per-micro loss hex}, over
    every rank file of the run (legs of different world sizes included). `world`: the world size
    of records that do not carry one (audits written before it was recorded).
    Raises AuditError when a rank logged a step twice, a step lacks one of its ranks, or the steps
    have a gap."""
    steps: dict[int, dict] = {}
    for rank, path in _rank_files(run_dir).items():
        seen = set()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise AuditError(f"{path}:{number}: not JSON (a torn line)") from None
            step = record["step"]
            if step in seen:
                raise AuditError(f"{path}:{number}: step {step} logged twice (a redone step kept twice)")
            seen.add(step)
            entry = steps.setdefault(step, {"micro": {}, "losses": {}, "world": set()})
            entry["micro"][rank] = record["samples"]
            entry["losses"][rank] = record["losses"]
            entry["world"].add(record.get("world", world))
    if sorted(steps) != list(range(1, len(steps) + 1)):
        raise AuditError(f"{run_dir}/audit: steps are not 1..{len(steps)}: {sorted(steps)[:20]}…")
    out = {}
    for step, entry in sorted(steps.items()):
        if len(entry["world"]) != 1 or None in entry["world"]:
            raise AuditError(f"step {step}: ranks disagree on (or do not record) the world size: {entry['world']}")
        (step_world,) = entry["world"]
        if sorted(entry["micro"]) != list(range(step_world)):
            raise AuditError(f"step {step}: logged by ranks {sorted(entry['micro'])}, expected all {step_world}")
        accum = len(entry["micro"][0])
        stream = [i for k in range(accum) for r in range(step_world) for i in entry["micro"][r][k]]
        out[step] = {"stream": stream, "losses": [entry["losses"][r] for r in range(step_world)]}
    return out


def check_exactly_once(audit: dict[int, dict], num_samples: int, schedule: list[tuple[int, int]] | None = None) -> int:
    """Every sample once per epoch: each full epoch of the stream is a permutation of its blocks,
    and the started epoch repeats none. `schedule` [(first epoch, blocks), …]: the epoch sizes of a
    run whose corpus grew (see sampler.py); default: every epoch has `num_samples`. Returns the
    number of full epochs; raises AuditError."""
    stream = [i for step in sorted(audit) for i in audit[step]["stream"]]
    schedule = schedule or [(0, num_samples)]

    def size_of(epoch: int) -> int:
        return [n for first, n in schedule if first <= epoch][-1]

    epoch = position = 0
    while position + size_of(epoch) <= len(stream):
        size = size_of(epoch)
        part = stream[position : position + size]
        if sorted(part) != list(range(size)):
            repeated = sorted({i for i in part if part.count(i) > 1})[:10]
            raise AuditError(f"epoch {epoch}: not every sample exactly once (repeated: {repeated}; {size} blocks)")
        position += size
        epoch += 1
    partial = stream[position:]
    if len(set(partial)) != len(partial):
        raise AuditError(f"epoch {epoch} (started): a sample repeats")
    return epoch
