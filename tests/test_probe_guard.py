"""The probe guard trips: a probe outside the allow-list sends nothing and fails its test.

- In this process: every kind of probe and the collector transport, aimed outside
  loopback, is refused (with the session's allow-list from tests/probe_guard.py).
- In a real `kiemke-agent collect --probes` inside a loopback-only network namespace under
  strace: with the guard no non-loopback address is even tried; without it the same
  command tries them all (so the strace check can fail). Nothing can leave the machine
  either way: the namespace has only loopback.
- An inner pytest session with the guard plugin: a test that accepts a failed probe still
  fails, naming the refused address.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import REPO, missing_component
from netns import netns_problem

from kiemke.agent import probe_policy, probes
from kiemke.agent.config import AgentConfig
from kiemke.agent.state import Credentials
from kiemke.agent.transport import Transport

OUTSIDE = "192.0.2.10"  # TEST-NET-1: never routed, and refused before any packet anyway


@pytest.fixture
def own_guard_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Refusals of this test go to its own file, so the session guard does not fail it."""
    log = tmp_path / "guard.log"
    monkeypatch.setenv(probe_policy.GUARD_LOG_ENV, str(log))
    return log


def test_every_probe_kind_outside_loopback_is_refused(own_guard_log: Path) -> None:
    assert probe_policy.allowed() is not None  # the session guard is on
    refused = [
        probes.tcp(OUTSIDE, 443, 0.5),
        probes.http(f"https://{OUTSIDE}/", 0.5),
        probes.http("https://www.gov.vn/", 0.5),  # a name only DNS knows
        probes.icmp(OUTSIDE, 0.5),
        probes.query_server(OUTSIDE, "www.gov.vn", 0.5),
        probes.resolve_system("www.gov.vn", 0.5),
    ]
    for probe in refused:
        assert probe.ok is False and probe.latency_ms is None, probe
        assert "probe guard: refused" in (probe.error or ""), probe
    assert "would ask the DNS server" in refused[-1].error
    lines = own_guard_log.read_text("utf-8").splitlines()
    assert len(lines) == len(refused)
    assert sum(OUTSIDE in line for line in lines) == 4
    # Loopback and names from the hosts file are still allowed.
    assert probes.resolve_system("localhost", 2.0).ok
    assert "probe guard" not in (probes.tcp("127.0.0.1", 9, 0.5).error or "")


def test_transport_refuses_before_connecting(own_guard_log: Path, tmp_path: Path) -> None:
    cfg = AgentConfig(server=f"https://{OUTSIDE}", retries=1, timeout=0.5,
                      state_dir=tmp_path)
    creds = Credentials(server=cfg.server, agent_id="a" * 32, secret="s" * 43,
                        machine_id="m" * 32, unit={}, enrolled_at="2026-12-01T00:00:00Z")
    transport = Transport(cfg, cfg.server)
    try:
        with pytest.raises(probe_policy.ProbeRefused, match=OUTSIDE):
            transport.post_report(b"{}", False, creds)
    finally:
        transport.close()
    assert "a request to the collector" in own_guard_log.read_text("utf-8")


def _strace_targets(trace: Path) -> set[str]:
    found = set()
    for line in trace.read_text("utf-8", "replace").splitlines():
        for m in re.finditer(r'inet_(?:addr|pton)\((?:AF_INET6, )?"([^"]+)"', line):
            found.add(m.group(1))
    return found


def test_agent_collect_in_a_loopback_only_namespace(tmp_path: Path) -> None:
    problem = netns_problem() or (None if shutil.which("strace") else "strace is not installed")
    if problem:
        missing_component(problem)
    conf = tmp_path / "agent.conf"
    conf.write_text(f"""[agent]
server = https://{OUTSIDE}:8443
state_dir = {tmp_path / 'state'}
[network]
gateway_check = tcp:80
internet_probes = https://www.gov.vn, tcp://198.51.100.7:443
dns_names = www.gov.vn
dns_direct = true
probe_timeout = 0.5
""", encoding="utf-8")
    ns = f"kk{uuid.uuid4().hex[:8]}g"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)

        def collect(guard_env: dict[str, str], name: str) -> tuple[dict, set[str]]:
            trace = tmp_path / f"{name}.trace"
            env = {k: v for k, v in os.environ.items()
                   if k not in (probe_policy.ALLOW_ENV, probe_policy.GUARD_LOG_ENV)}
            proc = subprocess.run(
                ["ip", "netns", "exec", ns, "strace", "-f", "-qq", "-o", str(trace),
                 "-e", "trace=connect,sendto,sendmsg", sys.executable, "-m", "kiemke.agent",
                 "--config", str(conf), "collect", "--probes"],
                capture_output=True, text=True, timeout=120, cwd=REPO,
                env={**env, **guard_env})
            assert proc.returncode == 0, proc.stderr
            return json.loads(proc.stdout), _strace_targets(trace)

        log = tmp_path / "guard.log"
        report, tried = collect({probe_policy.ALLOW_ENV: "127.0.0.0/8,::1",
                                 probe_policy.GUARD_LOG_ENV: str(log)}, "guarded")
        outside = {a for a in tried if not a.startswith("127.") and a != "::1"}
        assert outside == set(), f"the guard let these through: {outside}"
        checks = report["network"]["checks"]
        errors = [p["error"] for c in ("dns", "internet", "collector")
                  for p in checks[c]["probes"]]
        assert errors and all("probe guard: refused" in e for e in errors), checks
        assert log.read_text("utf-8").count("probe guard: refused") == len(errors)

        # Without the guard the same agent tries them all (the strace check can fail).
        _, tried = collect({}, "unguarded")
        assert {OUTSIDE, "198.51.100.7"} <= tried
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_the_session_guard_fails_a_test_that_probes_outside(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(f"""
from kiemke.agent import probes

def test_accepts_a_failed_probe():
    assert probes.tcp("{OUTSIDE}", 443, 0.2).ok is False  # passes on its own

def test_loopback_only():
    assert probes.resolve_system("localhost", 2.0).ok
""", encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in (probe_policy.ALLOW_ENV, probe_policy.GUARD_LOG_ENV)}
    env["PYTHONPATH"] = str(REPO / "tests")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "probe_guard", "-q",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           "-c", os.devnull, "test_inner.py"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert re.search(r"\b2 passed, 1 error\b", out), out
    assert "ERROR at teardown of test_accepts_a_failed_probe" in out, out
    assert f"{OUTSIDE} is not in the allowed networks" in out, out
