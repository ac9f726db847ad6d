"""`train`: pretrain a causal LM with DeepSpeed ZeRO on prepared data, in this process.

One process is one rank: start several with `deepspeed launch/pretrain.py …`, `torchrun` or
`srun`; alone it trains on one device. Exit 0: finished; 75: stopped by a signal with a
checkpoint saved (run the same command again to resume); anything else: an error.
"""

from __future__ import annotations

from pipeline.train.trainer import add_arguments, run

__all__ = ["add_arguments", "run"]
