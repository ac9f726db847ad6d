"""Train a tiny GPT-2 with a real DeepSpeed engine for a few steps, save a checkpoint and
the engine's logits on a fixed batch. Launched by tests/train/test_export.py under torchrun.

    torchrun --nproc_per_node 2 tests/helpers/ds_export_run.py RUN TOKENIZER_DIR ZERO_STAGE
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import deepspeed
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pipeline.train import distributed  # noqa: E402
from tests.helpers.tiny_lm import tiny_gpt2  # noqa: E402


def main() -> None:
    run_dir, tokenizer_dir, stage = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    # the trainer's own init: gloo on CPU, and no ~60 s JIT build of DeepSpeed's shm op
    distributed.init(distributed.detect())
    rank = torch.distributed.get_rank()
    model = tiny_gpt2(vocab_size=600, positions=64, seed=0)
    if rank == 0:
        model.config.save_pretrained(run_dir / "hf_config")
        shutil.copytree(tokenizer_dir, run_dir / "tokenizer", dirs_exist_ok=True)
    ds_config = {
        "train_micro_batch_size_per_gpu": 2,
        "gradient_accumulation_steps": 1,
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-2, "weight_decay": 0.01, "torch_adam": True}},
        "zero_optimization": {"stage": stage},
        "steps_per_print": 1000,
    }
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=ds_config)
    generator = torch.Generator().manual_seed(100 + rank)
    for _ in range(3):
        batch = torch.randint(4, 600, (2, 16), generator=generator)
        loss = engine(input_ids=batch, labels=batch).loss
        engine.backward(loss)
        engine.step()
    engine.save_checkpoint(str(run_dir / "checkpoints"), tag="step3")
    engine.eval()
    probe = torch.randint(4, 600, (3, 20), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        logits = engine(input_ids=probe).logits
    if rank == 0:
        torch.save({"input_ids": probe, "logits": logits.float()}, run_dir / "engine_logits.pt")
    torch.distributed.barrier()


if __name__ == "__main__":
    main()
