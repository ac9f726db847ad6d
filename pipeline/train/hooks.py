"""Test hooks: fault-injection aids for the trainer's own tests, kept out of the user's config.

They are read from the environment in this one place (the tests start real launchers, and the
environment is what reaches every rank through deepspeed, torchrun and srun alike). A user never
sets them; docs/training.md ("For developers") lists them.

  ZH_PRETRAIN_TEST_SIGNAL_AT_STEP=N   rank 0 sends itself SIGUSR1 right after step N
  ZH_PRETRAIN_TEST_SAVE_PAUSE_S=S     every save pauses S seconds between its files and its commit
                                      (a window for `kill -9` inside a save)
"""

from __future__ import annotations

import dataclasses
import os

ENV_SIGNAL_AT_STEP = "ZH_PRETRAIN_TEST_SIGNAL_AT_STEP"
ENV_SAVE_PAUSE_S = "ZH_PRETRAIN_TEST_SAVE_PAUSE_S"


@dataclasses.dataclass(frozen=True)
class TrainHooks:
    signal_at_step: int | None = None
    save_pause_s: float = 0.0

    @classmethod
    def from_env(cls, env=None) -> TrainHooks:
        env = os.environ if env is None else env
        signal_at = env.get(ENV_SIGNAL_AT_STEP)
        return cls(
            signal_at_step=int(signal_at) if signal_at else None,
            save_pause_s=float(env.get(ENV_SAVE_PAUSE_S) or 0.0),
        )
