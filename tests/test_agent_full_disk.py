"""A full disk under the agent's state directory (issue 11, item 4), with real processes.

The state directory is a 1 MiB tmpfs this test mounts and fills to the last byte. Two
reports are spooled while the collector is unreachable; then, with the disk full and the
collector back, `kiemke-agent send` must deliver the spooled reports, send the new report
directly (it cannot be spooled), exit 6 with a message naming the spool path and what to
do, and the direct report must carry an `agent.spool_errors` entry that the collector
counts in kiemke_agent_spool_errors_total. Once space is freed, reports are spooled again
and carry no error.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests
from conftest import missing_component, start_collector, stop_collector
from scrape_helpers import metrics_text
from test_e2e_agent import agent
from test_schema_contract import agent_conf

UNIT = "Liên đoàn Lao động huyện Lục Nam"


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 1 MiB tmpfs at tmp_path/state; yields (mount point, fill(), free())."""
    if os.geteuid() != 0:
        missing_component("mounting a tmpfs needs root")
    mnt = tmp_path / "state"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                           str(mnt)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        missing_component(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    filler = mnt / "filler.bin"

    def fill() -> None:
        with open(filler, "ab", buffering=0) as fh:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        fh.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
        with pytest.raises(OSError):  # not one more byte fits
            (mnt / "probe.bin").write_bytes(b"x")

    def free() -> None:
        filler.unlink()

    try:
        yield mnt, fill, free
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _metric(url: str, name: str) -> float:
    text = metrics_text(url, timeout=10)
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_full_disk_still_delivers(tmp_path: Path, full_disk, sqlite_url: str) -> None:
    mnt, fill, free = full_disk
    server = start_collector(sqlite_url, tmp_path / "collector", workers=1)
    try:
        token = server.create_token(server.create_unit(UNIT))
        conf = agent_conf(tmp_path, server=server.url)  # state_dir = tmp_path/state = mnt
        out = agent(conf, "enroll", "--server", server.url, f"--token={token}")
        assert out.returncode == 0, out.stderr
        dead = {"KIEMKE_SERVER": "http://127.0.0.1:9", "KIEMKE_RETRIES": "1"}
        for _ in range(2):
            assert agent(conf, "send", env=dead).returncode == 3
        spooled = sorted(p.name for p in (mnt / "spool").glob("*.json.gz"))
        assert len(spooled) == 2

        fill()
        out = agent(conf, "send")
        assert out.returncode == 6, (out.returncode, out.stdout, out.stderr)
        msg = out.stderr
        assert "cannot keep report" in msg and str(mnt / "spool") in msg, msg
        assert "No space left on device" in msg
        assert "accepted, after 2 spooled earlier" in msg, msg
        assert f"Free space on the disk that holds {mnt}" in msg
        assert list((mnt / "spool").glob("*.json.gz")) == []  # the spooled ones went out

        rows = requests.get(f"{server.url}/api/v1/machines", headers=server.admin_headers(),
                            timeout=10).json()["items"]
        assert len(rows) == 1
        machine = requests.get(f"{server.url}/api/v1/machines/{rows[0]['machine_id']}",
                               headers=server.admin_headers(), timeout=10).json()
        last = machine["report"]
        assert last["report_id"] not in "".join(spooled)  # the direct one is the latest
        errors = last["agent"]["spool_errors"]
        assert len(errors) == 1 and errors[0]["path"] == str(mnt / "spool")
        assert errors[0]["report_id"] == last["report_id"]
        assert "No space left on device" in errors[0]["message"]
        assert _metric(server.url, "kiemke_agent_spool_errors_total") == 1.0
        assert _metric(server.url, r'kiemke_reports_received_total\{reason="accepted",'
                                   r'result="accepted"\}') == 3.0

        # Space again: the next report is spooled, delivered, and carries no error.
        free()
        out = agent(conf, "send")
        assert out.returncode == 0, out.stderr
        assert _metric(server.url, "kiemke_agent_spool_errors_total") == 1.0
        machine = requests.get(f"{server.url}/api/v1/machines/{rows[0]['machine_id']}",
                               headers=server.admin_headers(), timeout=10).json()
        assert "agent" not in machine["report"]
    finally:
        stop_collector(server)


def test_full_disk_and_collector_down_says_the_report_is_lost(tmp_path: Path,
                                                              full_disk) -> None:
    mnt, fill, _ = full_disk
    conf = agent_conf(tmp_path)
    # Enrolled by hand: credentials for a collector that is not running.
    (mnt / "credentials.json").write_text(json.dumps({
        "server": "http://127.0.0.1:9", "agent_id": "a" * 32, "secret": "s" * 43,
        "machine_id": "0" * 32, "unit": {}, "enrolled_at": "2026-12-01T00:00:00Z"}))
    fill()
    out = agent(conf, "send")
    assert out.returncode == 6, (out.stdout, out.stderr)
    assert "could not be sent directly either" in out.stderr and "LOST" in out.stderr
    assert str(mnt / "spool") in out.stderr


def test_run_carries_a_lost_reports_spool_error_to_the_next_report(tmp_path: Path,
                                                                   full_disk) -> None:
    from test_agent_transport import _Collector

    from kiemke.agent.config import AgentConfig
    from kiemke.agent.scheduler import AgentService
    from kiemke.agent.state import Credentials, StateDir

    mnt, fill, free = full_disk
    server = _Collector([(503, {"error": "busy"}, {})])  # down for the first report only
    try:
        cfg = AgentConfig(server=server.url, state_dir=mnt, retries=1, timeout=5,
                          collectors_enabled=["identity"])
        state = StateDir(mnt)
        state.save_credentials(Credentials(server=server.url, agent_id="a1", secret="s" * 43,
                                           machine_id="0" * 32, unit={},
                                           enrolled_at="2026-12-01T00:00:00Z"))
        service = AgentService(cfg, state)
        fill()
        service.report_job()  # cannot spool, cannot send: lost, the error is remembered
        assert len(server.requests) == 1 and len(service.spool_errors) == 1
        lost = server.requests[0]["json"]["report_id"]
        service.report_job()  # cannot spool, sent directly with both errors
        sent = server.requests[1]["json"]
        assert [e["report_id"] for e in sent["agent"]["spool_errors"]] == [
            lost, sent["report_id"]]
        assert all(e["path"] == str(mnt / "spool") for e in sent["agent"]["spool_errors"])
        assert service.spool_errors == []
        free()
        service.report_job()  # spooled again, delivered from the spool, nothing to tell
        assert "agent" not in server.requests[2]["json"]
        assert list((mnt / "spool").glob("*.json.gz")) == []
    finally:
        server.close()
