"""Known accelerators: peak throughput and memory, shared by the trainer's MFU and the planner."""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class GpuSpec:
    name: str
    marker: str  # how torch.cuda.get_device_name() spells the model (matched as a whole word)
    bf16_tflops: float  # dense tensor-core peak, bf16 with fp32 accumulation
    fp32_tflops: float
    memory_gib: float  # what torch.cuda reports as total memory


GPUS = {
    "h100": GpuSpec("NVIDIA H100 80GB SXM", "H100", 989.0, 67.0, 79.6),
    "h200": GpuSpec("NVIDIA H200 141GB SXM", "H200", 989.0, 67.0, 139.8),
    "a100": GpuSpec("NVIDIA A100 80GB", "A100", 312.0, 19.5, 79.2),
    "a100-40g": GpuSpec("NVIDIA A100 40GB", "A100", 312.0, 19.5, 39.4),
    "l40s": GpuSpec("NVIDIA L40S", "L40S", 362.0, 91.6, 44.4),
    "a10": GpuSpec("NVIDIA A10", "A10", 125.0, 31.2, 22.0),
    "rtx4090": GpuSpec("NVIDIA GeForce RTX 4090", "RTX 4090", 165.2, 82.6, 23.6),
    "rtx3090": GpuSpec("NVIDIA GeForce RTX 3090", "RTX 3090", 71.0, 35.6, 23.7),
}


def peak_tflops(device_name: str, precision: str) -> float | None:
    """Dense peak TFLOP/s of a device (by its torch name) at `precision` (bf16/fp16/fp32)."""
    for spec in GPUS.values():
        if re.search(rf"\b{re.escape(spec.marker)}\b", device_name):
            return spec.fp32_tflops if precision == "fp32" else spec.bf16_tflops
    return None
