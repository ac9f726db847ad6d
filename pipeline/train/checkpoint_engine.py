"""DeepSpeed's checkpoint files, loaded without running code and saved durably.

DeepSpeed 0.19.8 reads and writes its checkpoint files through `engine.checkpoint_engine`
(TorchCheckpointEngine: `torch.load(weights_only=False)`, a plain `torch.save`). `make_safe`
swaps in SafeCheckpointEngine:
  load  `torch.load(weights_only=True)` with the explicit allowlist `SAFE_GLOBALS` — the model
        states (module, client state, scheduler, DeepSpeed's config) and the ZeRO optimizer
        states of ZeRO 0–3, CPU offload and bf16 hold only tensors, plain types and these;
  save  each file fsynced by the rank that wrote it (on a shared filesystem only the writer's
        fsync makes that node's data durable) and listed for the commit record.
Not covered (DeepSpeed calls torch.load itself, weights_only=False, on paths this trainer never
takes): universal checkpoints (`load_universal`, stage3's `optimizer_state.pt`), MoE experts, the
NVMe-offload copy, and `zero_to_fp32` (used by `python -m pipeline export`: export only folders
you trust, or committed ones of your own runs).
"""

from __future__ import annotations

import argparse
import collections
import os

import torch
from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine
from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
from deepspeed.runtime.zero.config import ZeroStageEnum
from deepspeed.utils.tensor_fragment import fragment_address

from pipeline.train.checkpoint import CheckpointError

# Found with torch.serialization.get_unsafe_globals_in_checkpoint on this trainer's checkpoints
# (ZeRO 1/2/3, ZeRO-2/3 offload, bf16); tests/train/test_checkpoint_engine.py re-checks it.
SAFE_GLOBALS = [
    argparse.Namespace,
    collections.OrderedDict,
    DynamicLossScaler,
    LossScaler,
    ZeroStageEnum,
    fragment_address,
]


class SafeCheckpointEngine(TorchCheckpointEngine):
    written: list[str]

    def save(self, state_dict, path: str):
        try:
            with open(path, "wb") as handle:
                torch.save(state_dict, handle, _use_new_zipfile_serialization=self.zipfile_serialization)
                handle.flush()
                os.fsync(handle.fileno())
        except Exception as exc:  # a full disk surfaces from torch's zip writer as a RuntimeError
            cause = exc
            while cause is not None and not isinstance(cause, OSError):
                cause = cause.__context__
            raise OSError(getattr(cause, "errno", None), f"{path}: {cause or exc}") from None
        self.written.append(path)

    def load(self, path: str, map_location=None):
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            try:
                return torch.load(path, map_location=map_location, weights_only=True)
            except Exception as exc:  # UnpicklingError and the like: name the file and the type
                raise CheckpointError(
                    f"{path}: refused by the weights-only loader ({str(exc).splitlines()[0]}); this trainer loads "
                    f"only tensors, plain types and checkpoint_engine.SAFE_GLOBALS"
                ) from None


def make_safe(engine) -> None:
    """Swap DeepSpeed's default TorchCheckpointEngine of `engine` for SafeCheckpointEngine."""
    current = engine.checkpoint_engine
    if type(current) is not TorchCheckpointEngine:
        raise CheckpointError(f"unexpected DeepSpeed checkpoint engine {type(current).__name__}")
    safe = SafeCheckpointEngine.__new__(SafeCheckpointEngine)
    safe.__dict__.update(current.__dict__)
    safe.written = []
    engine.checkpoint_engine = safe
