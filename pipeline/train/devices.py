"""Which GPU a rank uses, and moving batches onto it.

Two ways a cluster hands GPUs to the ranks of one node:
- all GPUs visible to every rank (deepspeed/torchrun, or srun without GPU binding): rank with
  LOCAL_RANK=i uses cuda:i;
- one GPU per task (SLURM `--gpus-per-task=1`, `--gpu-bind=single:1`/`map_gpu`, or a site that
  sets CUDA_VISIBLE_DEVICES per task): every rank sees exactly one device, always cuda:0, whatever
  its LOCAL_RANK. `set_device(LOCAL_RANK)` fails there on every rank but the first.
Anything else (LOCAL_RANK 5 with 4 visible devices) is a launch mistake: a clear error, before
any CUDA work, instead of "invalid device ordinal" from deep inside a library.
"""

from __future__ import annotations

from pipeline.core.typed_config import ConfigError


class DeviceError(ConfigError):
    """The launch gives this rank no GPU of its own (a one-line error, exit 2)."""


def cuda_device_index(local_rank: int, visible_devices: int, cuda_visible_devices: str | None = None) -> int:
    """The CUDA device index this rank must use (a pure function of what the rank can see).

    `visible_devices`: torch.cuda.device_count() (it already applies CUDA_VISIBLE_DEVICES);
    `cuda_visible_devices`: the variable itself, only to explain an error."""
    if visible_devices < 1:
        raise DeviceError(
            f"LOCAL_RANK {local_rank}: no CUDA device visible (CUDA_VISIBLE_DEVICES={cuda_visible_devices!r})"
        )
    if visible_devices == 1:  # bound to one GPU (or a one-GPU machine): it is device 0 in this process
        return 0
    if 0 <= local_rank < visible_devices:
        return local_rank
    raise DeviceError(
        f"LOCAL_RANK {local_rank} but this process sees {visible_devices} CUDA devices "
        f"(CUDA_VISIBLE_DEVICES={cuda_visible_devices!r}): start at most {visible_devices} ranks per node, "
        f"or bind one GPU per task (srun --gpus-per-task=1) so that each rank sees exactly one"
    )


def select_device(local_rank: int):
    """This rank's torch device: its GPU (made current) when CUDA is available, else the CPU."""
    import os

    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    index = cuda_device_index(local_rank, torch.cuda.device_count(), os.environ.get("CUDA_VISIBLE_DEVICES"))
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def to_device(batch, device):
    """A host batch on `device`. To a GPU: through pinned (page-locked) memory, asynchronously, so
    the copy overlaps the GPU's queue instead of stalling the host; on the CPU: the batch itself
    (pinning needs CUDA, and there is nothing to copy)."""
    if device.type != "cuda":
        return batch
    return batch.pin_memory().to(device, non_blocking=True)


def check_compile_toolchain(device) -> None:
    """`compile: true` on the CPU: inductor writes C++ and needs a compiler (g++/clang++, or $CXX).
    Say so before any compute rather than fail in the first step with a compiler traceback."""
    if device.type != "cpu":
        return
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception as exc:  # noqa: BLE001 - inductor raises plain RuntimeError/OSError here
        raise ConfigError(
            f"compile: torch.compile on the CPU needs a C++ compiler (g++ or clang++, or set CXX): {exc}"
        ) from None
