"""Fault injection for the real trainer: the cases tests/faults runs once each (CI) and
benchmarks/bench_trainer_faults.py repeats (×20) into a case × outcome table.

Every case starts real launches (torchrun, 2 CPU ranks, real DeepSpeed, dropout on), injects its
fault at a moment drawn from its seed, then starts the same command again — no `--resume` flag —
until the run finishes. The outcome is judged against an uninterrupted reference run:
  bitwise   every step's per-rank, per-micro-batch loss equals the reference bit for bit, each
            step is logged once, each sample is used exactly once per epoch (strict audit)
  refused   the fault was refused with a clear message (and the run then finished bitwise)
  FAIL: …   anything else
and, for every case, the committed checkpoints seen during the case (polled every 50 ms) must
all still be committed at the end ("lost" counts those that are not).

Replay a case: the seed is in every failure message; FAULT_SEED=<seed> pytest tests/faults -k <case>.
FAULT_TRAINER_ROOT=/path/to/other/checkout runs the cases against that checkout's trainer (how the
cases were shown to fail on the old trainer).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from pipeline.train import checkpoint
from pipeline.train.audit import AuditError, check_exactly_once, read_audit
from pipeline.train.hooks import ENV_SAVE_PAUSE_S, ENV_SIGNAL_AT_STEP
from tests.helpers.train_fixtures import (
    REPO,
    kill_tree,
    live_ranks,
    make_packed_data,
    read_jsonl,
    train_command,
    train_env,
    write_run_configs,
)

TRAIN_BLOCKS = 120  # global batch 16: an epoch is 7.5 steps, the run crosses an epoch boundary
MAX_STEPS = 10
WORLD = 2
FAULT_CONFIG = {
    "max_steps": MAX_STEPS,
    "eval_interval": 4,
    "checkpoint_interval_steps": 3,
    "keep_last": 100,  # nothing is pruned: every committed checkpoint must survive
    "audit_samples": True,
}
CASES = (
    "kill9-group-random",  # kill -9 of the whole launcher group at a random moment (start-up, step, save, eval)
    "kill9-in-save",  # kill -9 of the group inside a save (between a rank's files and the commit record)
    "kill9-one-rank",  # kill -9 of one random rank; the launcher tears the others down
    "signal-random",  # SIGUSR1 or SIGTERM to every rank at a random moment, start-up included
    "signal-startup",  # SIGUSR1 or SIGTERM to every rank during start-up (before the first step)
    "latest-damaged",  # `latest` missing / empty / garbage / naming a deleted tag, newest tag truncated
    "two-trainers",  # a second trainer on the same run directory
    "disk-full",  # the file-size limit hits inside a save (EFBIG, as ENOSPC would)
)


@dataclasses.dataclass
class Outcome:
    case: str
    zero: str
    seed: int
    result: str  # "bitwise", "refused" or "FAIL: why"
    launches: int = 0
    lost: int = 0  # committed checkpoints that did not survive (other than those the case damaged itself)
    damaged: list = dataclasses.field(default_factory=list)  # tags the case destroyed on purpose
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.result.startswith("FAIL") and self.lost == 0


def make_data(root: Path):
    return make_packed_data(root, train_blocks=TRAIN_BLOCKS, val_blocks=37)


def make_config(directory: Path, zero: str) -> tuple[Path, str]:
    return write_run_configs(directory, **FAULT_CONFIG), f"configs/deepspeed/{zero}.json"


# ------------------------------------------------------------------ launches


class Launch:
    """One launcher process (own session, output in a file) and helpers to watch it."""

    def __init__(self, config: Path, data: Path, run: Path, ds: str, log: Path, hooks=None, fsize_limit=None):
        self.log = log
        self._handle = open(log, "w")

        def limits():  # in the child: a file-size limit stands in for a full disk
            if fsize_limit:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))

        command, env = train_command(config, data, run, deepspeed_config=ds), train_env(**(hooks or {}))
        other = os.environ.get("FAULT_TRAINER_ROOT")  # run the cases against another checkout (e.g. old code)
        if other:
            command = [c.replace(str(REPO / "launch"), str(Path(other) / "launch")) for c in command]
            env["PYTHONPATH"] = other
        self.proc = subprocess.Popen(
            command,
            env=env,
            cwd=other or REPO,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=limits,
        )
        self.started = time.monotonic()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def ranks(self) -> list:
        return live_ranks(self.proc.pid)

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.kill()
            self._handle.close()

    def kill(self) -> None:
        """SIGKILL to the launcher and all its ranks at once (kill_tree: torchrun's ranks live in
        sessions of their own, a killpg of the launcher's group would miss them)."""
        kill_tree(self.proc.pid)
        self.proc.wait()


def steps_logged(run: Path) -> int:
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = path.read_text().split("\n")[:-1]  # complete lines only
    return max((json.loads(line)["step"] for line in lines if '"train"' in line), default=0)


def wait_for(condition, launch: Launch, timeout: float = 240) -> bool:
    """Poll until `condition()`; False if the launch ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if launch.proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise TimeoutError(f"{launch.log}: condition not met in {timeout}s")
        time.sleep(0.02)
    return True


def run_status(run: Path) -> dict:
    path = run / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def finish(config, data, run, ds, work: Path, outcome: Outcome, attempts: int = 4) -> bool:
    """Start the same command again (no --resume) until the run reports finished."""
    for _ in range(attempts):
        outcome.launches += 1
        launch = Launch(config, data, run, ds, work / f"launch{outcome.launches}.log")
        code = launch.wait()
        if code == 0 and run_status(run).get("state") == "finished":
            return True
        if run_status(run).get("state") != "preempted":
            outcome.detail += f" launch {outcome.launches} exit {code}: {launch.text()[-1500:]}"
            return False
    return False


class CommitWatcher:
    """Polls checkpoints/ and remembers every tag seen committed (with its record)."""

    def __init__(self, ckpt_dir: Path):
        self.ckpt_dir = ckpt_dir
        self.seen: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.scan()
            time.sleep(0.05)

    def scan(self) -> None:
        if self.ckpt_dir.is_dir():
            for tag in checkpoint.committed_tags(self.ckpt_dir):
                self.seen.setdefault(tag, checkpoint.read_commit(self.ckpt_dir / tag))

    def lost(self) -> list[str]:
        self._stop.set()
        self._thread.join()
        self.scan()
        return [tag for tag, record in self.seen.items() if checkpoint.read_commit(self.ckpt_dir / tag) != record]


# ------------------------------------------------------------------ judging


def reference_run(work: Path, data, zero: str) -> dict:
    """The uninterrupted run: its audit (per-micro-batch losses) and metrics losses."""
    config, ds = make_config(work / "cfg", zero)
    run = work / "run"
    launch = Launch(config, data.root, run, ds, work / "reference.log")
    code = launch.wait()
    assert code == 0, launch.text()[-3000:]
    return {"audit": read_audit(run, WORLD), "losses": train_losses(run)}


def train_losses(run: Path) -> dict[int, float]:
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]
    if len(steps) != len(set(steps)):
        raise AuditError(f"{run}/metrics.jsonl: a step is logged twice: {steps}")
    return {r["step"]: r["loss"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"}


def judge(run: Path, reference: dict) -> str:
    try:
        audit = read_audit(run, WORLD)
        check_exactly_once(audit, TRAIN_BLOCKS)
        losses = train_losses(run)
    except (AuditError, OSError) as exc:
        return f"FAIL: audit: {exc}"
    if sorted(audit) != list(range(1, MAX_STEPS + 1)):
        return f"FAIL: audit steps {sorted(audit)}"
    for step, entry in reference["audit"].items():
        if audit[step] != entry:
            return f"FAIL: step {step} differs from the uninterrupted run (samples or loss bits)"
    if losses != reference["losses"]:
        return "FAIL: metrics.jsonl losses differ from the uninterrupted run"
    return "bitwise"


# ------------------------------------------------------------------ the cases


def run_case(case: str, zero: str, seed: int, work: Path, data, reference: dict) -> Outcome:
    rng = random.Random(seed)
    outcome = Outcome(case, zero, seed, "FAIL: not run")
    work.mkdir(parents=True, exist_ok=True)
    config, ds = make_config(work / "cfg", zero)
    run = work / "run"
    watcher = CommitWatcher(run / "checkpoints")
    try:
        result = CASE_FUNCTIONS[case](rng, config, data.root, run, ds, work, outcome, reference)
        if result is not None:  # the case judged itself
            outcome.result = result
        elif not finish(config, data.root, run, ds, work, outcome):
            outcome.result = "FAIL: did not finish" + outcome.detail[-2000:]
        else:
            verdict = judge(run, reference)
            refused = outcome.result == "refused"
            outcome.result = verdict if verdict.startswith("FAIL") else ("refused" if refused else "bitwise")
    finally:
        outcome.lost = len([tag for tag in watcher.lost() if tag not in outcome.damaged])
    return outcome


def _start(config, data, run, ds, work, outcome, **kwargs) -> Launch:
    outcome.launches += 1
    return Launch(config, data, run, ds, work / f"launch{outcome.launches}.log", **kwargs)


def _random_moment(rng: random.Random, launch: Launch, run: Path) -> str:
    """Wait for a random moment of the run: start-up, inside a step, right after an eval began,
    or right after a save began. Returns what was chosen."""
    where = rng.choice(["startup", "step", "eval", "save"])
    if where == "startup":
        time.sleep(rng.uniform(0.0, 12.0))
    elif where == "step":
        target = rng.randint(1, MAX_STEPS - 1)
        wait_for(lambda: steps_logged(run) >= target, launch)
        time.sleep(rng.uniform(0.0, 0.6))
    elif where == "eval":  # evaluation runs right after the train record of a multiple of eval_interval
        target = rng.choice([4, 8])
        wait_for(lambda: steps_logged(run) >= target, launch)
        time.sleep(rng.uniform(0.0, 0.3))
    else:  # a save starts right after steps 3, 6, 9 (interval) or 4, 8 (new best)
        target = rng.choice([3, 4, 6, 8, 9])
        wait_for(lambda: steps_logged(run) >= target, launch)
        time.sleep(rng.uniform(0.0, 0.4))
    return where


def case_kill9_group_random(rng, config, data, run, ds, work, outcome, reference):
    launch = _start(config, data, run, ds, work, outcome)
    outcome.detail = _random_moment(rng, launch, run)
    launch.kill()  # SIGKILL to the launcher's whole process group
    return None


def case_kill9_in_save(rng, config, data, run, ds, work, outcome, reference):
    pause = rng.uniform(0.3, 1.5)
    launch = _start(config, data, run, ds, work, outcome, hooks={ENV_SAVE_PAUSE_S: f"{pause:.3f}"})
    nth = rng.randint(1, 3)
    wait_for(lambda: launch.text().count("files written, pausing") >= nth, launch)
    time.sleep(rng.uniform(0.0, pause))
    launch.kill()
    outcome.detail = f"save #{nth}, pause {pause:.2f}s"
    return None


def case_kill9_one_rank(rng, config, data, run, ds, work, outcome, reference):
    launch = _start(config, data, run, ds, work, outcome)
    where = _random_moment(rng, launch, run)
    wait_for(lambda: len(launch.ranks()) == WORLD, launch, timeout=60)  # a "start-up" moment may precede them
    ranks = launch.ranks()
    if ranks:
        victim = rng.choice(ranks)
        victim.send_signal(signal.SIGKILL)
    launch.wait()
    outcome.detail = f"{where}, {len(ranks)} ranks seen"
    return None


EARLY_CPU_S = 0.3  # a rank reaches line 1 of launch/pretrain.py after 20–40 ms of CPU (measured, idle or loaded)


def handlers_installed(pid: int) -> bool:
    """Whether the process catches SIGTERM and SIGUSR1 (/proc/PID/status SigCgt: the kernel's view)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    caught = int(line.split()[1], 16)
                    return all(caught >> (sig - 1) & 1 for sig in (signal.SIGTERM, signal.SIGUSR1))
    except OSError:  # the rank ended meanwhile
        pass
    return False


def _signal_ranks(launch: Launch, signum: int) -> bool:
    """Signal every rank. True if some rank may have had no handlers yet: before line 1 of
    launch/pretrain.py (the interpreter starting), where no Python program can catch a signal.
    "Before line 1" is told by CPU time, not wall time, so a loaded machine does not widen it: a
    rank without handlers past EARLY_CPU_S of CPU is not excused (that is the bug the test is for)."""
    early = False
    for rank in launch.ranks():
        try:
            cpu = rank.cpu_times()
            early |= not handlers_installed(rank.pid) and cpu.user + cpu.system < EARLY_CPU_S
            rank.send_signal(signum)
        except Exception:  # the rank ended meanwhile
            pass
    return early


def _judge_signal(launch: Launch, run: Path, signum: int, early: bool, before: dict, what: str, outcome) -> str | None:
    """After a stop signal the ranks must exit in order and the run say "preempted" (or "finished":
    the signal came after the last step). The one exception is a signal that landed before line 1
    of launch/pretrain.py (`early`, documented in docs/training.md): that rank dies by the signal
    (torchrun: "Signal N (SIGX) received by PID") — accepted only if nothing was written
    (status.json as before); the caller's resume must then still be bitwise with no checkpoint lost."""
    code = launch.wait()
    status = run_status(run)
    died = re.search(r"Signal \d+ \(SIG\w+\) received by PID", launch.text()) is not None
    outcome.detail = f"{signal.Signals(signum).name} at {what}: {status.get('state')} at step {status.get('step')}"
    if not died and status.get("state") in ("preempted", "finished"):
        return None
    if died and early and status == before and code != 0:
        outcome.detail += f" (before the handlers: died by the signal, exit {code}, nothing written)"
        return None
    return (
        f"FAIL: after the signal (before line 1: {early}, a rank died by it: {died}), "
        f"status {status}: {launch.text()[-1500:]}"
    )


def case_signal_random(rng, config, data, run, ds, work, outcome, reference):
    signum = rng.choice([signal.SIGUSR1, signal.SIGTERM])
    launch = _start(config, data, run, ds, work, outcome)
    where = _random_moment(rng, launch, run)
    wait_for(lambda: len(launch.ranks()) == WORLD, launch, timeout=60)
    early = _signal_ranks(launch, signum)
    return _judge_signal(launch, run, signum, early, {}, where, outcome)


def case_signal_startup(rng, config, data, run, ds, work, outcome, reference):
    signum = rng.choice([signal.SIGUSR1, signal.SIGTERM])
    if rng.random() < 0.5:  # half of the time, start-up of a resumed run
        hooks = {ENV_SIGNAL_AT_STEP: str(rng.randint(1, MAX_STEPS - 2))}
        first = _start(config, data, run, ds, work, outcome, hooks=hooks)
        first.wait()
    launch = _start(config, data, run, ds, work, outcome)
    wait_for(lambda: len(launch.ranks()) == WORLD, launch, timeout=60)
    before_steps, before = steps_logged(run), run_status(run)
    time.sleep(rng.uniform(0.0, 8.0))
    early = _signal_ranks(launch, signum)
    return _judge_signal(launch, run, signum, early, before, f"start-up (from step {before_steps})", outcome)


def case_latest_damaged(rng, config, data, run, ds, work, outcome, reference):
    first = _start(config, data, run, ds, work, outcome, hooks={ENV_SIGNAL_AT_STEP: str(rng.randint(7, 9))})
    first.wait()
    ckpt = run / "checkpoints"
    committed = checkpoint.committed_tags(ckpt)
    if len(committed) < 2:
        return f"FAIL: expected ≥ 2 committed checkpoints, got {committed}"
    damage = rng.choice(["missing", "empty", "garbage", "deleted-tag", "truncated-newest"])
    latest = ckpt / "latest"
    if damage == "missing":
        latest.unlink()
    elif damage == "empty":
        latest.write_text("")
    elif damage == "garbage":
        latest.write_bytes(os.urandom(64))
    elif damage == "deleted-tag":
        latest.write_text("step_99999999")
    else:  # a file of the newest tag truncated (a copy cut short): that tag must not be used
        newest = ckpt / committed[-1]
        outcome.damaged.append(committed[-1])  # destroyed on purpose: not a checkpoint the trainer lost
        victim = sorted(p for p in newest.iterdir() if p.name.endswith("optim_states.pt"))[0]
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    outcome.detail = damage
    before = set(committed) - ({committed[-1]} if damage == "truncated-newest" else set())
    if not finish(config, data, run, ds, work, outcome):
        return "FAIL: did not finish after damage " + damage + outcome.detail[-1500:]
    still = set(checkpoint.committed_tags(ckpt))
    if not before <= still:
        return f"FAIL: committed checkpoints lost after {damage}: {sorted(before - still)}"
    if damage == "truncated-newest" and not (ckpt / ".incomplete" / committed[-1]).is_dir():
        return f"FAIL: the truncated {committed[-1]} was not moved to checkpoints/.incomplete/"
    verdict = judge(run, reference)
    return verdict if verdict.startswith("FAIL") else "bitwise"


def case_two_trainers(rng, config, data, run, ds, work, outcome, reference):
    # the first trainer's saves pause (numbers unchanged), so it surely outlives the second's start-up
    first = _start(config, data, run, ds, work, outcome, hooks={ENV_SAVE_PAUSE_S: "6"})
    lock = run / ".trainer.lock"
    wait_for(lambda: lock.exists() and lock.stat().st_size > 0, first)
    time.sleep(rng.uniform(0.0, 3.0))
    holder = first_pid(first)
    second = _start(config, data, run, ds, work, outcome)
    started = time.monotonic()
    code = second.wait(timeout=120)
    took = time.monotonic() - started
    text = second.text()
    first_code = first.wait()
    if code == 0 or "in use by another trainer" not in text or f"pid {holder}" not in text:
        return f"FAIL: the second trainer was not refused naming the holder pid {holder} (exit {code}): {text[-1500:]}"
    if first_code != 0:
        return f"FAIL: the first trainer did not finish (exit {first_code}): {first.text()[-1500:]}"
    verdict = judge(run, reference)
    outcome.detail = f"second refused after {took:.1f}s"
    return "refused" if verdict == "bitwise" else verdict


def first_pid(launch: Launch) -> int | None:
    ranks = sorted(launch.ranks(), key=lambda p: p.create_time())
    for rank in ranks:
        if rank.environ().get("RANK") == "0":
            return rank.pid
    return None


def case_disk_full(rng, config, data, run, ds, work, outcome, reference):
    stop_at = rng.randint(1, 5)
    first = _start(config, data, run, ds, work, outcome, hooks={ENV_SIGNAL_AT_STEP: str(stop_at)})
    first.wait()
    full = _start(config, data, run, ds, work, outcome, fsize_limit=160_000)
    code = full.wait()
    text = full.text()
    outcome.detail = f"stopped at {stop_at}, then a save hit the size limit (exit {code})"
    if code == 0:
        return f"FAIL: the save did not fail under the size limit: {text[-1500:]}"
    if "error: checkpoint" not in text or "File too large" not in text:
        return f"FAIL: no clear error for the failed save: {text[-2000:]}"
    outcome.result = "refused"
    return None


CASE_FUNCTIONS = {
    "kill9-group-random": case_kill9_group_random,
    "kill9-in-save": case_kill9_in_save,
    "kill9-one-rank": case_kill9_one_rank,
    "signal-random": case_signal_random,
    "signal-startup": case_signal_startup,
    "latest-damaged": case_latest_damaged,
    "two-trainers": case_two_trainers,
    "disk-full": case_disk_full,
}


def clean(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
