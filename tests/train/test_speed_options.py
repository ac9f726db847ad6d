"""`fused_adam: true` and `compile: true` with the real trainer on the CPU (one rank, gloo, tiny
GPT-2, real shards): the same losses as the eager / unfused run within a stated tolerance, the
option really in effect (read back from the built optimizer / engine), and resume bit for bit.

Tolerance. Dropout is off in these runs, so eager and fused/compiled differ only by the order of
fp32 arithmetic (fused kernels, inductor's fused loops): measured on this CPU, fused AdamW gave
the unfused losses bit for bit and inductor differed by ≤ 1e-6 over 6 steps (2e-7 relative). The
bound is 1e-4 absolute — 100× that noise — and the test checks that it is at least 50× smaller
than every step's own loss change in the reference run, so a missed or doubled update, a wrong
learning rate or a different batch cannot hide inside it.
"""

import subprocess
import sys

import pytest

from pipeline.train.hooks import ENV_SIGNAL_AT_STEP
from tests.helpers.train_fixtures import (
    REPO,
    audit_steps,
    free_port,
    make_packed_data,
    read_jsonl,
    train_env,
    write_run_configs,
)

pytestmark = pytest.mark.slow
STEPS, STOP_AT = 4, 2
TOLERANCE = 1e-4
# one layer: inductor's compile time grows with the graph (2 layers: ~160 s on a loaded 2-core machine)
MODEL = ["model.hf_config.n_layer=1"]
NO_DROPOUT = ["model.hf_config.resid_pdrop=0.0", "model.hf_config.embd_pdrop=0.0", "model.hf_config.attn_pdrop=0.0"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("speed")
    data = make_packed_data(root / "data", train_blocks=48, val_blocks=8)
    config = write_run_configs(root / "cfg", max_steps=STEPS, micro_batch_size=2, eval_interval=100, eval_max_blocks=4)
    return root, data, config


def train(setup, name: str, *overrides: str, hooks: dict | None = None) -> subprocess.CompletedProcess:
    """One rank, started as `python -m pipeline train` (the single-process launch)."""
    root, data, config = setup
    command = [sys.executable, "-m", "pipeline", "train", "--config", str(config), "--data", str(data.root)]
    command += ["--output", str(root / name), *MODEL, *NO_DROPOUT, *overrides]
    # a free rendezvous port: the single-process default (29500 + pid % 1000) can be taken on a busy machine
    env = train_env(**(hooks or {}), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    return subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def losses(setup, name: str) -> list[float]:
    records = [r for r in read_jsonl(setup[0] / name / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    return [r["loss"] for r in records]


@pytest.fixture(scope="module")
def eager(setup):
    result = train(setup, "eager")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "optimizer AdamW(fused=False" in result.stdout and ", compiled" not in result.stdout
    reference = losses(setup, "eager")
    smallest_change = min(abs(a - b) for a, b in zip(reference, reference[1:]))
    assert smallest_change > 50 * TOLERANCE, (reference, "the tolerance would not tell one step from the next")
    return reference


def assert_close(reference: list[float], other: list[float]) -> None:
    worst = max(abs(a - b) for a, b in zip(reference, other))
    assert worst <= TOLERANCE, f"max |Δloss| {worst:.3g} > {TOLERANCE:g}: {reference} vs {other}"


def assert_resumes_bitwise(setup, name: str, *overrides: str) -> None:
    """Stopped by SIGUSR1 after step STOP_AT, resumed: every per-micro-batch loss equals the
    uninterrupted run's bit for bit (the audit records them as exact hex)."""
    cut = train(setup, f"{name}-cut", *overrides, hooks={ENV_SIGNAL_AT_STEP: str(STOP_AT)})
    assert cut.returncode == 75, cut.stdout[-4000:]
    resumed = train(setup, f"{name}-cut", *overrides)
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    assert f"resuming at step {STOP_AT}" in resumed.stdout
    full, interrupted = audit_steps(setup[0] / name, world=1), audit_steps(setup[0] / f"{name}-cut", world=1)
    assert sorted(full) == sorted(interrupted) == list(range(1, STEPS + 1))
    for step in full:
        assert interrupted[step] == full[step], f"step {step}: {interrupted[step]['losses']} != {full[step]['losses']}"


def test_fused_adam_matches_unfused_and_resumes_bitwise(setup, eager):
    result = train(setup, "fused", "fused_adam=true")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "optimizer AdamW(fused=True" in result.stdout  # read back from the optimizer DeepSpeed built
    assert_close(eager, losses(setup, "fused"))
    assert_resumes_bitwise(setup, "fused", "fused_adam=true")


def test_compile_matches_eager_and_resumes_bitwise(setup, eager):
    result = train(setup, "compiled", "compile=true")
    assert result.returncode == 0, result.stdout[-4000:]
    assert ", compiled" in result.stdout  # the engine's own flag, not the config's
    assert_close(eager, losses(setup, "compiled"))
    assert_resumes_bitwise(setup, "compiled", "compile=true")
    # in place (nn.Module.compile): the checkpoint's parameter names are the model's own
    import torch

    states = torch.load(
        next((setup[0] / "compiled" / "checkpoints").glob("step_*/mp_rank_00_model_states.pt")), weights_only=False
    )
    assert not [k for k in states["module"] if "_orig_mod" in k]
