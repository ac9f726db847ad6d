"""The file the launchers start: `deepspeed launch/pretrain.py`, `torchrun launch/pretrain.py`, `srun`.

    deepspeed --num_gpus 8 launch/pretrain.py --config configs/train/zh-3b1.yaml \
        --data out --output runs/zh-3b1 [--deepspeed configs/deepspeed/zero2.json] [key=value ...]

The same as `python -m pipeline train …` in each rank. Exit codes (docs/training.md): 0 finished;
75 stopped by SIGTERM/SIGUSR1 (checkpoint saved when there was anything new; run the same command
again to resume); 2 a clear error (bad input, config or state, the run directory in use); else a bug.
"""

# First thing, before torch, DeepSpeed and the rendezvous: a stop signal during start-up (a
# preemption landing while a requeued job starts) is remembered, not the default "terminate".
from pipeline.train import signals

signals.install()

import os  # noqa: E402
import sys  # noqa: E402

from pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    code = main(["train", *sys.argv[1:]])
    # Everything is saved, flushed and the process group destroyed. Skip interpreter teardown:
    # ZeRO-3 runs here sometimes died there with SIGABRT (after the work was done), turning exit
    # 0/75 into a crash for the launcher.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
