"""The test session's probe guard (ARCHITECTURE.md: "a test-session guard refuses anything
else").

Imported by tests/conftest.py, so it holds for every test and every process a test starts:

- KIEMKE_PROBE_ALLOW = 127.0.0.0/8, ::1 for this process and its children. The agent's
  probe layer and transport (kiemke/agent/probe_policy.py) refuse any other address, and
  any name the system resolver would send to a DNS server, before sending anything.
  Tests that build network namespaces add the namespaces' networks for the processes
  they run inside them (tests/netns.py, Topology.allow_env()).
- KIEMKE_PROBE_GUARD_LOG: every refusal, in any process, appends a line to this file.
  The autouse fixture `probe_guard` fails the test that caused one, with the line, so a
  refused probe cannot hide behind a probe result or an exit code a test accepts.

Also usable alone: `python -m pytest -p probe_guard` with tests/ on sys.path
(tests/test_probe_guard.py runs an inner session that way to prove the guard trips).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiemke.agent.probe_policy import ALLOW_ENV, GUARD_LOG_ENV

LOOPBACK = "127.0.0.0/8,::1"

_fd, _log = tempfile.mkstemp(prefix="kiemke-probe-guard-", suffix=".log")
os.close(_fd)
os.environ[ALLOW_ENV] = LOOPBACK
os.environ[GUARD_LOG_ENV] = _log
GUARD_LOG = Path(_log)


def allow_env(*networks: str) -> dict[str, str]:
    """Environment for a process that may also reach `networks` (namespaces a test made)."""
    return {ALLOW_ENV: ",".join((LOOPBACK, *networks))}


@pytest.fixture(autouse=True)
def probe_guard() -> Iterator[None]:
    before = GUARD_LOG.stat().st_size if GUARD_LOG.exists() else 0
    yield
    size = GUARD_LOG.stat().st_size if GUARD_LOG.exists() else 0
    if size > before:
        with open(GUARD_LOG, "rb") as fh:
            fh.seek(before)
            lines = fh.read().decode("utf-8", "replace").strip()
        pytest.fail("this test made the agent try to reach an address outside loopback and "
                    "the namespaces the test created; the probe guard refused it (nothing "
                    f"was sent). Point the test's probes at 127.0.0.1:\n{lines}",
                    pytrace=False)
