"""The test helpers themselves: what they call a live rank (a wrong answer fails a whole fault round)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from tests.helpers.train_fixtures import live_ranks

# A parent that starts a "rank" which exits at once and is never reaped: a zombie, as a rank
# the launcher has not waited for yet looks between its death and the launcher's wait().
PARENT = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'pass', 'launch/pretrain.py'])\n"
    "time.sleep(60)\n"
)


def test_a_rank_that_died_unreaped_is_not_a_live_rank():
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        deadline = time.monotonic() + 30
        while not [c for c in psutil.Process(parent.pid).children() if c.status() == psutil.STATUS_ZOMBIE]:
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.05)
        assert live_ranks(parent.pid) == []  # no psutil.ZombieProcess either
    finally:
        parent.kill()
        parent.wait()
