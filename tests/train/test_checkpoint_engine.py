"""DeepSpeed's checkpoint files load weights-only: a pickle that would run code is refused
(and does not run); the allowlist covers what DeepSpeed 0.19.8 really writes."""

import os

import pytest
import torch

from pipeline.train.checkpoint import CheckpointError


class Payload:
    """Unpickling this runs `touch MARKER` (what a hostile checkpoint would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def safe_engine():
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    from pipeline.train.checkpoint_engine import make_safe

    class FakeEngine:  # only the attribute make_safe swaps: the loader itself is real
        checkpoint_engine = TorchCheckpointEngine()

    engine = FakeEngine()
    make_safe(engine)
    return engine.checkpoint_engine


def test_a_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": {"w": torch.ones(2)}, "evil": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused by the weights-only loader"):
        safe_engine().load(str(path))
    assert not marker.exists()


def test_the_allowlist_covers_deepspeed_objects(tmp_path):
    """(Real ZeRO 1/2/3, offload and bf16 checkpoints load through it in tests/train/test_trainer.py.)"""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum

    path = tmp_path / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    state = {"loss_scaler": LossScaler(scale=2.0**16), "zero_stage": ZeroStageEnum(2)}
    torch.save({"optimizer_state_dict": state, "ds_version": "0.19.8"}, path)
    loaded = safe_engine().load(str(path))
    assert loaded["optimizer_state_dict"]["zero_stage"] == ZeroStageEnum(2)
    assert loaded["optimizer_state_dict"]["loss_scaler"].cur_scale == 2.0**16


def test_saved_files_are_listed_for_the_commit_record(tmp_path):
    engine = safe_engine()
    engine.save({"x": torch.arange(3)}, str(tmp_path / "a.pt"))
    assert engine.written == [str(tmp_path / "a.pt")]
    assert torch.equal(engine.load(str(tmp_path / "a.pt"))["x"], torch.arange(3))
