"""Pretrain a causal LM with DeepSpeed ZeRO on prepared data.

    deepspeed --num_gpus 8 launch/pretrain.py --config configs/train/zh-3b1.yaml \
        --data out --output runs/zh-3b1 [--deepspeed configs/deepspeed/zero2.json] [key=value ...]

Also runs under `torchrun --nproc_per_node N` and `srun`. Exit 0: finished; 75: preempted
(checkpoint saved, run the same command again to resume); anything else: error.
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from pipeline.train.loop import add_arguments, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    code = main()
    # Everything is saved, flushed and the process group destroyed. Skip interpreter teardown:
    # ZeRO-3 runs here sometimes died there with SIGABRT (after the work was done), turning exit
    # 0/75 into a crash for the launcher.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
