"""The delivery lock: one deliverer at a time, across processes, released on exit."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from kiemke.agent.filelock import LockBusy, exclusive

HOLDER = """
import sys, time
from pathlib import Path
from kiemke.agent.filelock import exclusive
with exclusive(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_waits_then_gives_up(tmp_path):
    lock = tmp_path / "deliver.lock"
    holder = _hold(lock, 5)
    try:
        with pytest.raises(LockBusy, match="another kiemke-agent process"), \
                exclusive(lock, wait=0.2):
            pass
    finally:
        holder.kill()
        holder.wait()
    # The OS released the dead holder's lock: no stale lock file blocks the agent.
    with exclusive(lock, wait=0.2):
        pass


def test_waiter_gets_the_lock_when_the_holder_finishes(tmp_path):
    lock = tmp_path / "deliver.lock"
    holder = _hold(lock, 0.5)
    started = time.monotonic()
    with exclusive(lock, wait=20):
        waited = time.monotonic() - started
    holder.wait()
    assert holder.returncode == 0
    assert waited > 0.1  # it really waited for the other process
