"""Device selection over the launch environments a GPU node gives a rank (pure: no GPU needed),
and the host→device copy on the CPU."""

import os

import pytest
import torch

from pipeline.train.devices import DeviceError, cuda_device_index, to_device
from pipeline.train.distributed import detect
from tests.train.test_distributed import LAUNCH_VARS


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Restores the whole environment: detect() sets launch variables in os.environ itself."""
    saved = dict(os.environ)
    for var in (*LAUNCH_VARS, "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    yield
    os.environ.clear()
    os.environ.update(saved)


def visible_count(cuda_visible_devices: str | None, gpus_on_node: int) -> int:
    """What torch.cuda.device_count() reports for this CUDA_VISIBLE_DEVICES on a node with
    `gpus_on_node` GPUs (unset: all of them; ids or UUIDs, comma-separated)."""
    if cuda_visible_devices is None:
        return gpus_on_node
    return len([d for d in cuda_visible_devices.split(",") if d.strip()])


# (case, launcher variables, CUDA_VISIBLE_DEVICES, GPUs on the node, expected device index)
CASES = [
    ("torchrun, all 8 visible, local rank 5", {"RANK": "13", "WORLD_SIZE": "16", "LOCAL_RANK": "5"}, None, 8, 5),
    ("deepspeed launcher sets CVD to all", {"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "2"}, "0,1,2,3", 4, 2),
    (
        "srun without binding: every task sees all 4",
        {"SLURM_PROCID": "7", "SLURM_NTASKS": "8", "SLURM_LOCALID": "3"},
        None,
        4,
        3,
    ),
    (
        "srun --gpus-per-task=1 (cgroup: CVD renumbered to 0)",
        {"SLURM_PROCID": "7", "SLURM_NTASKS": "8", "SLURM_LOCALID": "3"},
        "0",
        8,
        0,
    ),
    (
        "srun --gpu-bind=map_gpu without cgroup: CVD is the physical id",
        {"SLURM_PROCID": "6", "SLURM_NTASKS": "8", "SLURM_LOCALID": "6"},
        "6",
        8,
        0,
    ),
    (
        "a site binding by GPU UUID",
        {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_LOCALID": "1"},
        "GPU-5f1e0c2a-aaaa-bbbb-cccc-0123456789ab",
        2,
        0,
    ),
    ("one process on a one-GPU machine", {}, None, 1, 0),
    ("torchrun --nproc_per_node 2 with CVD=2,3", {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, "2,3", 8, 1),
]


@pytest.mark.parametrize("case,launch,cvd,gpus,expected", CASES, ids=[c[0] for c in CASES])
def test_device_index_for_each_launch(monkeypatch, case, launch, cvd, gpus, expected):
    for key, value in launch.items():
        monkeypatch.setenv(key, value)
    env = detect()
    assert cuda_device_index(env.local_rank, visible_count(cvd, gpus), cvd) == expected


@pytest.mark.parametrize(
    "local_rank,cvd,gpus",
    [
        (5, "0,1,2,3", 8),  # 8 ranks started on a node where the site exposes 4
        (2, "0,1", 8),  # --gpus-per-task=2: each task sees 2, local ranks go to 3
        (4, None, 4),
    ],
)
def test_more_local_ranks_than_visible_devices_is_a_clear_error(local_rank, cvd, gpus):
    with pytest.raises(DeviceError) as err:
        cuda_device_index(local_rank, visible_count(cvd, gpus), cvd)
    message = str(err.value)
    assert f"LOCAL_RANK {local_rank} but this process sees {visible_count(cvd, gpus)} CUDA devices" in message
    assert f"CUDA_VISIBLE_DEVICES={cvd!r}" in message and "--gpus-per-task=1" in message
    assert "\n" not in message


def test_no_visible_device_is_a_clear_error():
    with pytest.raises(DeviceError, match=r"LOCAL_RANK 0: no CUDA device visible \(CUDA_VISIBLE_DEVICES=''\)"):
        cuda_device_index(0, visible_count("", 8), "")


def test_host_batch_stays_put_on_the_cpu():
    """On the CPU the copy is a no-op: the same tensor (pinning would raise without CUDA)."""
    batch = torch.arange(12).view(3, 4)
    assert to_device(batch, torch.device("cpu")) is batch
