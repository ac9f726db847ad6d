"""Fault injection for `python -m pipeline prepare`: real processes, real SIGKILLs, a real file
size limit. Shared by tests/faults (a few random draws per case, CI) and
benchmarks/fault_prepare.py (×N per case, a table for docs/faults.md).

Every case ends in one of:
  identical   the output tree is byte-identical to an uninterrupted run's
  clear-error the run failed with one line naming the file, no traceback, nothing torn published
  CORRUPT …   anything else (a differing, missing or extra file; an orphan process; a traceback)
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STAGES = ("clean", "dedup", "group", "split", "tokenizer", "pack", "finalize")
# small: the whole run is dominated by process start-up and the tokenizer's transformers check
FAULT_SETTINGS = [
    "dedup.num_buckets=3",
    "split.min_validation_documents=20",
    "pack.block_size=64",
    "pack.max_blocks_per_shard=64",  # several shards per pack task: kills land between and inside them
]
NUM_TASKS = "3"


@dataclass
class Setup:
    corpus: Path
    tokenizer: Path
    reference: Path  # an uninterrupted run
    # seconds from each stage's first task lock to the next stage's, in a watched run: a kill is
    # drawn within that window (a fixed 0.6 s overshot most stages of this small corpus: the run
    # had finished before the kill in 7 of 10 `kill-group-clean` runs)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def kill_window(self, stage: str) -> float:
        return max(self.stage_seconds.get(stage, 0.6), MIN_KILL_WINDOW_S)


MIN_KILL_WINDOW_S = 0.01


def prepare_command(setup: Setup, output: Path, workers: int = 2, pattern: str = "**/*.csv*") -> list[str]:
    given = ["--tokenizer", str(setup.tokenizer)] if setup.tokenizer.is_dir() else []  # not yet: train one
    return [
        sys.executable,
        "-m",
        "pipeline",
        "prepare",
        "--input",
        f"{setup.corpus}/{pattern}",
        "--output",
        str(output),
        "--workers",
        str(workers),
        "--num-tasks",
        NUM_TASKS,
        *given,
        "--quiet",
        *FAULT_SETTINGS,
    ]


# `prepare --append`: version 1 is every source but the last in name order, the append adds it
VERSION_1_PATTERN = "[!s]*/**/*.csv*"  # the generated corpus: history_wiki, news_2019 | science_tech


def append_command(setup: Setup, output: Path) -> list[str]:
    return [
        sys.executable, "-m", "pipeline", "prepare", "--append", "--input", f"{setup.corpus}/**/*.csv*",
        "--output", str(output), "--workers", "2", "--num-tasks", NUM_TASKS, "--quiet",
    ]  # fmt: skip


@dataclass
class AppendSetup:
    version_1: Path  # prepared from VERSION_1_PATTERN, never appended to (copied for each case)
    reference: Path  # a copy of it with an uninterrupted append
    stage_seconds: dict[str, float] = field(default_factory=dict)  # of a watched append (see Setup)

    def kill_window(self, stage: str) -> float:
        return max(self.stage_seconds.get(stage, 0.6), MIN_KILL_WINDOW_S)


def make_append_setup(setup: Setup, root: Path) -> AppendSetup:
    version_1 = root / "version-1"
    done = run(prepare_command(setup, version_1, pattern=VERSION_1_PATTERN))
    assert done.returncode == 0, done.stderr
    reference = root / "appended"
    shutil.copytree(version_1, reference)
    appended = run(append_command(setup, reference))
    assert appended.returncode == 0 and "published version 2" in appended.stdout, appended.stderr
    watched = root / "watched"
    shutil.copytree(version_1, watched)
    windows = stage_windows(append_command(setup, watched), watched / "appends" / "0002")
    shutil.rmtree(watched)
    return AppendSetup(version_1=version_1, reference=reference, stage_seconds=windows)


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True, **kwargs)


def make_setup(root: Path, corpus_bytes: int = 300_000, seed: int = 3) -> Setup:
    """Corpus, a tokenizer trained once (given to every run with --tokenizer) and the reference."""
    from pipeline.tools.corpus_gen import generate_corpus

    corpus = root / "corpus"
    generate_corpus(corpus, corpus_bytes, seed=seed)
    first = root / "first"
    trained = run(
        [
            *prepare_command(Setup(corpus, root / "tokenizer", root), first),
            "tokenizer.vocab_size=1500",
        ]
    )
    assert trained.returncode == 0, trained.stderr
    setup = Setup(corpus=corpus, tokenizer=root / "tokenizer", reference=root / "reference")
    shutil.copytree(first / "tokenizer", setup.tokenizer)
    shutil.rmtree(first)
    done = run(prepare_command(setup, setup.reference))
    assert done.returncode == 0, done.stderr
    setup.stage_seconds = stage_windows(prepare_command(setup, root / "watched"), root / "watched")
    shutil.rmtree(root / "watched")
    return setup


def stage_windows(command: list[str], output: Path) -> dict[str, float]:
    """Run `command` once, watching output/work/locks/: the seconds from each stage's first task
    lock to the next stage's (the last stage: to the run's end). That is the window a kill timed
    from the stage's lock, as kill_during times it, must fall in. (A stage's own timer also counts
    its pool start-up, which comes before any lock: 0.16 s for clean, of which 0.04 s after.)"""
    process = start(command)
    appeared: dict[str, float] = {}
    while process.poll() is None:
        for stage in STAGES:
            if stage not in appeared and (output / "work" / "locks" / stage).exists():
                appeared[stage] = time.monotonic()
        time.sleep(0.002)
    ended = time.monotonic()
    _, stderr = process.communicate()
    assert process.returncode == 0, stderr
    marks = [appeared.get(stage) for stage in STAGES] + [ended]
    return {
        stage: next(mark for mark in marks[index + 1 :] if mark is not None) - appeared[stage]
        for index, stage in enumerate(STAGES)
        if stage in appeared
    }


# --- comparing trees ----------------------------------------------------------------------------


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def differences(output: Path, reference: Path) -> list[str]:
    got, want = tree(output), tree(reference)
    diff = [f"missing {k}" for k in sorted(want.keys() - got.keys())]
    diff += [f"extra {k}" for k in sorted(got.keys() - want.keys())]
    diff += [f"differs {k}" for k in sorted(want.keys() & got.keys()) if got[k] != want[k]]
    return diff


def verdict(output: Path, setup: Setup) -> str:
    diff = differences(output, setup.reference)
    return "identical" if not diff else f"CORRUPT {len(diff)} file(s): {'; '.join(diff[:4])}"


# --- processes ----------------------------------------------------------------------------------


def start(command: list[str], **kwargs) -> subprocess.Popen:
    """In its own session (sid = pid), so the whole group can be killed and its members found."""
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


PF_EXITING = 0x4  # /proc/PID/stat flags: the process is inside exit()
SIGKILL_BIT = 1 << (signal.SIGKILL - 1)


def session_members(sid: int, dying: bool = True) -> list[int]:
    """Processes of session `sid` that have not exited (zombies excluded), from /proc; with
    dying=False also without those already on their way out (SIGKILL pending, or in exit())."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text() if not dying else ""
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        state, session, flags = fields[0], int(fields[3]), int(fields[6])
        if session != sid or state in "ZX":
            continue
        if not dying:
            pending = {
                k: int(v, 16)
                for k, v in (line.split(":\t") for line in status.splitlines())
                if k in ("SigPnd", "ShdPnd")
            }
            if flags & PF_EXITING or any(mask & SIGKILL_BIT for mask in pending.values()):
                continue
        members.append(int(entry.name))
    return members


def holding_task_locks(pids: list[int]) -> list[int]:
    """Those of `pids` with a task lock (OUT/work/locks/STAGE/NNNNN.lock) open: workers inside a
    task. A worker the pool forked an instant before the parent died holds none: it has not yet
    set its parent-death signal, sees its parent gone in the same initializer and exits without
    taking a task (pipeline/data/executor.py, `_die_with_parent`)."""
    holding = []
    for pid in pids:
        try:
            targets = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:  # gone meanwhile
            continue
        if any("/work/locks/" in target and target.endswith(".lock") for target in targets):
            holding.append(pid)
    return holding


ORPHAN_GRACE_S = 0.3


def orphans(sid: int) -> list[int]:
    """Members of session `sid` (whose leader, the parent, was just killed and reaped) that
    outlive it: any that holds a task lock while we watch, or is still alive and not dying after
    ORPHAN_GRACE_S. A worker the pool forked an instant before the parent died is neither: it
    exits on its own within milliseconds, without a task (it finds its parent gone before it
    could set the parent-death signal)."""
    candidates = session_members(sid, dying=False)
    found: set[int] = set()
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while candidates:
        found.update(holding_task_locks(candidates))
        if time.monotonic() > deadline:
            found.update(candidates)
            break
        time.sleep(0.005)
        candidates = [pid for pid in session_members(sid, dying=False) if pid in candidates]
    return sorted(found)


def wait_gone(sid: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := session_members(sid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def wait_for_stage(output: Path, stage: str, process: subprocess.Popen, timeout: float = 120.0) -> bool:
    """True once a task of `stage` has taken its lock (the stage has started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (output / "work" / "locks" / stage).exists():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def past_stage(output: Path, stage: str) -> bool:
    """True once a later stage has taken a task lock: a kill now would miss `stage`."""
    return any((output / "work" / "locks" / later).exists() for later in STAGES[STAGES.index(stage) + 1 :])


def kill(process: subprocess.Popen, mode: str) -> bool:
    """SIGKILL the whole process group or the parent only; True if it was still running."""
    alive = process.poll() is None
    try:
        if mode == "group":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except ProcessLookupError:
        pass
    process.wait()  # not communicate(): orphans holding the output pipes would delay it until they exit
    return alive


def kill_during(setup: Setup, output: Path, stage: str, mode: str, rng: random.Random) -> str:
    """Start `prepare`, SIGKILL it (`mode`) a random moment within `stage` (its window in
    the setup's watched run); for a parent-only kill, check that no worker outlives it.
    Returns '' or what went wrong."""
    process = start(prepare_command(setup, output))
    reached = wait_for_stage(output, stage, process)
    time.sleep(rng.uniform(0.0, setup.kill_window(stage)))
    late = past_stage(output, stage)
    landed = kill(process, mode) and not late
    # the parent is dead and reaped: its workers must be dying already (PR_SET_PDEATHSIG), not
    # merely about to finish their task and notice the broken pipe
    outlived = orphans(process.pid)
    left = wait_gone(process.pid)
    for pid in left:  # do not leave them running after the test
        os.kill(pid, signal.SIGKILL)
    process.communicate()
    if outlived:
        return f"CORRUPT orphans {outlived} outlived the parent (still alive after: {left})"
    return "" if reached and landed else "missed"


def rerun(setup: Setup, output: Path) -> str:
    result = run(prepare_command(setup, output))
    if result.returncode != 0:
        return f"CORRUPT rerun exited {result.returncode}: {result.stderr.strip()[-300:]}"
    return verdict(output, setup)


# --- the cases ----------------------------------------------------------------------------------


def case_kill(setup: Setup, work: Path, stage: str, mode: str, rng: random.Random) -> str:
    output = work / f"kill-{mode}-{stage}"
    problem = kill_during(setup, output, stage, mode, rng)
    if problem.startswith("CORRUPT"):
        return problem
    outcome = rerun(setup, output)
    return outcome if problem != "missed" else f"{outcome} (kill missed the stage)"


def case_kill_every_stage(setup: Setup, work: Path, mode: str, rng: random.Random) -> str:
    """CI form: one output, killed once in every stage in turn, each kill followed at once by the
    next run (which resumes and is killed in the next stage), then a final run."""
    output = work / f"kill-{mode}-every-stage"
    missed = []
    for stage in STAGES:
        problem = kill_during(setup, output, stage, mode, rng)
        if problem.startswith("CORRUPT"):
            return f"{problem} (stage {stage})"
        if problem:
            missed.append(stage)
    outcome = rerun(setup, output)
    return outcome + (f" (kills missed: {missed})" if missed else "")


def case_append_killed(setup: Setup, appends: AppendSetup, work: Path, mode: str, rng: random.Random) -> str:
    """`prepare --append` killed (`mode`) once at a random moment in every stage of the new
    version, each kill followed at once by the next run, then a final run: the whole folder
    (version 1, the new version, the published manifest) byte-identical to an uninterrupted append."""
    output = work / f"append-{mode}"
    shutil.copytree(appends.version_1, output)
    missed = []
    for stage in STAGES:
        process = start(append_command(setup, output))
        reached = wait_for_stage(output / "appends" / "0002", stage, process)
        time.sleep(rng.uniform(0.0, appends.kill_window(stage)))
        late = past_stage(output / "appends" / "0002", stage)
        landed = kill(process, mode) and not late
        outlived = orphans(process.pid)
        for pid in wait_gone(process.pid):
            os.kill(pid, signal.SIGKILL)
        process.communicate()
        if outlived:
            return f"CORRUPT orphans {outlived} outlived the parent (stage {stage})"
        if not (reached and landed):
            missed.append(stage)
    result = run(append_command(setup, output))
    if result.returncode != 0:
        return f"CORRUPT rerun exited {result.returncode}: {result.stderr.strip()[-300:]}"
    diff = differences(output, appends.reference)
    outcome = "identical" if not diff else f"CORRUPT {len(diff)} file(s): {'; '.join(diff[:4])}"
    return outcome + (f" (kills missed: {missed})" if missed else "")


def case_two_at_once(setup: Setup, work: Path, rng: random.Random) -> str:
    output = work / "two-at-once"
    first = start(prepare_command(setup, output))
    time.sleep(rng.uniform(0.0, 0.3))
    second = start(prepare_command(setup, output))
    results = [(p, *p.communicate()) for p in (first, second)]
    for process, _, err in results:
        if process.returncode != 0:
            return f"CORRUPT a concurrent run exited {process.returncode}: {err.strip()[-300:]}"
    return verdict(output, setup)


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def case_disk_full(setup: Setup, work: Path, rng: random.Random) -> str:
    """RLIMIT_FSIZE in the child: the first shard that grows past the limit fails mid-write
    (EFBIG; a full disk gives ENOSPC the same way). The run starts at the pack stage (a finished
    output with the packing undone) so that the limit lands inside a shard. Expect one clear
    error naming the shard, nothing torn published, and a re-run without the limit that ends
    byte-identical."""
    output = work / "disk-full"
    shutil.copytree(setup.reference, output)
    shards = ("train/", "validation/")  # not work/clean/*.arrow, clean's pieces
    for path in [
        *output.glob("train/*.arrow"),
        *output.glob("validation/*.arrow"),
        *output.glob("work/markers/pack/*"),
        *output.glob("work/markers/finalize/*"),
    ]:
        path.unlink()
    (output / "manifest.json").unlink()
    largest = max(len(data) for name, data in tree(setup.reference).items() if name.startswith(shards))
    # ≥ one page: the pool's shared progress counter lives in a 4 KiB file that must fit
    limit = rng.randint(4096, largest - 1)
    process = start(prepare_command(setup, output), preexec_fn=_limit_file_size(limit))
    _, err = process.communicate()
    if process.returncode == 0:
        return f"CORRUPT no error with a {limit}-byte file size limit"
    lines = [line for line in err.strip().splitlines() if line.strip()]
    if "Traceback" in err or process.returncode != 2 or len(lines) != 1 or ".arrow" not in lines[0]:
        return f"CORRUPT not one clear line naming the shard (exit {process.returncode}): {err.strip()[-400:]}"
    reference = tree(setup.reference)
    torn = [
        name
        for name, data in tree(output).items()
        # temporaries (a worker stopped mid-write when the pool shut down) are not published;
        # the task's next start removes them (its journal lists them)
        if not (name.endswith(".temps") or ".tmp-" in name) and reference.get(name) != data
    ]
    if torn:
        return f"CORRUPT published while failing: {torn[:4]}"
    outcome = rerun(setup, output)
    return "clear-error, then " + outcome if outcome == "identical" else outcome


def _damage(path: Path, how: str, rng: random.Random) -> None:
    if how == "deleted":
        path.unlink()
    else:
        data = path.read_bytes()
        path.write_bytes(data[: rng.randrange(len(data))])


def case_damaged(setup: Setup, work: Path, what: str, how: str, rng: random.Random) -> str:
    """A finished output; then a marker or a shard is deleted or truncated. `verify` must name a
    damaged shard; a re-run must redo exactly what is missing and end byte-identical."""
    output = work / f"damaged-{what}-{how}"
    shutil.copytree(setup.reference, output)
    pattern = "work/markers/*/*.json" if what == "marker" else "*/*.arrow"
    victim = rng.choice(sorted(output.glob(pattern)))
    _damage(victim, how, rng)
    if what == "shard":
        verify = run([sys.executable, "-m", "pipeline", "verify", "--output", str(output)])
        if verify.returncode != 1 or str(victim) not in verify.stdout:
            return f"CORRUPT verify did not name {victim} (exit {verify.returncode}): {verify.stdout[-300:]}"
    outcome = rerun(setup, output)
    if outcome == "identical":
        after = run([sys.executable, "-m", "pipeline", "verify", "--output", str(output)])
        if after.returncode != 0:
            return f"CORRUPT verify fails after the re-run: {after.stdout[-300:]}"
    return outcome


def new_seed() -> int:
    return int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(1 << 30))
