"""`train`: pretrain a causal LM with DeepSpeed ZeRO on prepared data, in this process.

One process is one rank: start several with `deepspeed launch/pretrain.py …`, `torchrun` or
`srun`; alone it trains on one device. Exit 0: finished; 75: stopped by a signal (checkpoint saved
when there was anything new; run the same command again to resume); 2: a clear error (bad config,
data or checkpoint, the run directory in use by another trainer); anything else: a bug.
"""

from __future__ import annotations

# Before the trainer's heavy imports: a signal from here on is a stop request, not a kill.
from pipeline.train import signals

signals.install()

import argparse  # noqa: E402
import sys  # noqa: E402

from pipeline.train.checkpoint import CheckpointError  # noqa: E402
from pipeline.train.run_lock import RunInUse  # noqa: E402
from pipeline.train.signals import EXIT_ERROR  # noqa: E402
from pipeline.train.trainer import add_arguments  # noqa: E402
from pipeline.train.trainer import run as run_trainer  # noqa: E402

__all__ = ["add_arguments", "run"]


def run(args: argparse.Namespace) -> int:
    try:
        return run_trainer(args)
    except (CheckpointError, RunInUse) as exc:  # a clear one-line error, not a traceback
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
