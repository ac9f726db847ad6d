import os

import pytest

from pipeline.train.distributed import detect

LAUNCH_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_LOCALID",
    "SLURM_JOB_ID",
    "SLURM_STEP_NODELIST",
    "SLURM_JOB_NODELIST",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """detect() writes RANK, WORLD_SIZE, MASTER_* into os.environ itself (for srun); monkeypatch
    only restores what it touched, so restore the whole environment: leaked launch variables made a
    later single-process `pipeline train` wait for 8 ranks."""
    saved = dict(os.environ)
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_torchrun_and_deepspeed_variables(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "3")
    env = detect(local_rank_arg=3)
    assert (env.rank, env.local_rank, env.world_size, env.is_main) == (3, 3, 8, False)


def test_srun_variables_are_translated(monkeypatch):
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_NTASKS", "16")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "gpu-a")
    env = detect()
    assert (env.rank, env.local_rank, env.world_size) == (5, 1, 16)
    assert os.environ["RANK"] == "5" and os.environ["WORLD_SIZE"] == "16"
    assert os.environ["MASTER_ADDR"] == "gpu-a" and os.environ["MASTER_PORT"] == str(20000 + 4242)


def test_single_process_gets_a_rendezvous():
    env = detect()
    assert (env.rank, env.world_size) == (0, 1)
    assert os.environ["MASTER_ADDR"] == "127.0.0.1" and os.environ["WORLD_SIZE"] == "1"
