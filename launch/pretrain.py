"""The file the launchers start: `deepspeed launch/pretrain.py`, `torchrun launch/pretrain.py`, `srun`.

    deepspeed --num_gpus 8 launch/pretrain.py --config configs/train/zh-3b1.yaml \
        --data out --output runs/zh-3b1 [--deepspeed configs/deepspeed/zero2.json] [key=value ...]

The same as `python -m pipeline train …` in each rank. Exit 0: finished; 75: preempted
(checkpoint saved, run the same command again to resume); 2: a clear error; else a bug.
"""

import os
import sys

from pipeline.cli import main

if __name__ == "__main__":
    code = main(["train", *sys.argv[1:]])
    # Everything is saved, flushed and the process group destroyed. Skip interpreter teardown:
    # ZeRO-3 runs here sometimes died there with SIGABRT (after the work was done), turning exit
    # 0/75 into a crash for the launcher.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
