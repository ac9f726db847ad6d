"""Rank and world from the launcher's environment: deepspeed, torchrun, srun, or none.

deepspeed and torchrun set RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT (deepspeed
also passes `--local_rank`). Under `srun` only SLURM_* variables exist; they are translated to
the torch names here (MASTER_ADDR: first host of the job step, MASTER_PORT from the job id).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess

from pipeline.train.devices import select_device


@dataclasses.dataclass(frozen=True)
class DistEnv:
    rank: int
    local_rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _first_slurm_host() -> str:
    nodelist = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST") or "127.0.0.1"
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
        return out.stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return nodelist.split(",")[0]


def detect(local_rank_arg: int | None = None) -> DistEnv:
    """Read (and for srun, set) the torch.distributed environment variables."""
    env = os.environ
    if "RANK" not in env and "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        env["RANK"] = env["SLURM_PROCID"]
        env["WORLD_SIZE"] = env["SLURM_NTASKS"]
        env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
        env.setdefault("MASTER_ADDR", _first_slurm_host())
        env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))
    rank = int(env.get("RANK", "0"))
    world = int(env.get("WORLD_SIZE", "1"))
    local = int(env.get("LOCAL_RANK", local_rank_arg if local_rank_arg is not None and local_rank_arg >= 0 else 0))
    if world == 1:  # a single process still needs a rendezvous for DeepSpeed
        env.setdefault("RANK", "0")
        env.setdefault("WORLD_SIZE", "1")
        env.setdefault("LOCAL_RANK", str(local))
        env.setdefault("MASTER_ADDR", "127.0.0.1")
        env.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    return DistEnv(rank=rank, local_rank=local, world_size=world)


def init(dist: DistEnv):
    """Initialise torch.distributed through DeepSpeed; returns the torch device of this rank."""
    import importlib

    import deepspeed
    import torch

    # not `import deepspeed.comm.torch as m`: deepspeed.comm re-exports `torch`, so that binds torch
    ds_torch_comm = importlib.import_module("deepspeed.comm.torch")

    if os.environ.get("PRETRAIN_DS_SHM_COMM", "0") != "1":
        # On CPU DeepSpeed JIT-compiles a shared-memory all-reduce op (~60 s on a fresh machine)
        # at init; there is no config switch for it. gloo does the same job for CPU runs/tests,
        # and on GPUs the op does not exist, so skip the build unless asked for.
        ds_torch_comm.build_shm_op = lambda: None
    device = select_device(dist.local_rank)  # one GPU per task → cuda:0; all visible → cuda:LOCAL_RANK
    if device.type == "cuda" and not torch.distributed.is_initialized():
        # Our own NCCL init, bound to *this* device: deepspeed.init_distributed would bind
        # cuda:LOCAL_RANK (wrong, or no such device, under one-GPU-per-task binding); it adopts a
        # process group that exists. No device_id for a single rank, as DeepSpeed does (#8248: a
        # bound one-rank group cannot build later groups by ncclCommSplit).
        from deepspeed.constants import default_pg_timeout

        torch.distributed.init_process_group(
            "nccl",
            timeout=default_pg_timeout,
            device_id=device if dist.world_size > 1 else None,
        )
    deepspeed.init_distributed(dist_backend="nccl" if device.type == "cuda" else "gloo")
    return device


def engine_args(device):
    """`args` for deepspeed.initialize: the engine calls set_device(LOCAL_RANK) unless told the
    device index (`device_rank`), which under one-GPU-per-task binding is 0, not LOCAL_RANK."""
    import argparse

    return argparse.Namespace(device_rank=device.index) if device.type == "cuda" else None


_control_group = None


def control_group():
    """A gloo group for the per-step stop vote: on GPUs a NCCL all-reduce of a flag would force a
    device sync every step (reading the result); gloo reduces a CPU tensor and leaves the GPU
    queue alone. On CPU runs the default (gloo) group is used."""
    global _control_group
    import torch

    if torch.distributed.get_backend() == "gloo":
        return None
    if _control_group is None:
        _control_group = torch.distributed.new_group(backend="gloo")
    return _control_group


def shutdown() -> None:
    """ZeRO-3 runs sometimes abort at interpreter exit without an explicit teardown."""
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
