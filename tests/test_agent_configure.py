"""`kiemke-agent configure` (what installers call) and enrolment at the first start of `run`.

The first-start test runs a real collector and a real `kiemke-agent run` process; the
agent's probes name only loopback. ≈ 15 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from test_schema_contract import agent_conf

from kiemke.agent.configure import set_ini_values

UNIT = "Liên đoàn Lao động tỉnh Bắc Giang"


def agent(conf: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiemke.agent", "--config", str(conf), *args],
                          capture_output=True, text=True, encoding="utf-8", timeout=120,
                          cwd=REPO)


def test_set_ini_values_keeps_comments_and_other_keys():
    text = ("# pushed by GPO\n[agent]\nserver = https://old.example\n# interval = 60\n"
            "timeout = 15\n\n[antivirus]\nmax_signature_age_days = 3\n")
    out = set_ini_values(text, {("agent", "server"): "https://kiemke.bacgiang.gov.vn",
                                ("agent", "interval"): "1800",
                                ("network", "dns_names"): "localhost"})
    assert out.splitlines() == [
        "# pushed by GPO", "[agent]", "server = https://kiemke.bacgiang.gov.vn",
        "# interval = 60", "timeout = 15", "interval = 1800", "", "[antivirus]",
        "max_signature_age_days = 3", "", "[network]", "dns_names = localhost"]


def test_configure_writes_given_settings_and_keeps_the_rest(tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text(f"[agent]\nstate_dir = {tmp_path / 'state'}\ntimeout = 7\n", "utf-8")
    token = "-Xy7" + "a" * 39  # a secret that begins with '-' (issue 11): --token=... form
    out = agent(conf, "configure", "--server=https://kiemke.bacgiang.gov.vn",
                f"--unit={UNIT}", "--interval=1800", "--internet-probes=tcp://127.0.0.1:9",
                "--dns-names=localhost", "--gateway-check=off", "--proxy=", "--ca-bundle=",
                "--allow-insecure-http=true",
                f"--token={token}")
    assert out.returncode == 0, out.stderr
    text = conf.read_text("utf-8")
    assert "server = https://kiemke.bacgiang.gov.vn" in text and f"unit = {UNIT}" in text
    assert "timeout = 7" in text and "internet_probes = tcp://127.0.0.1:9" in text
    assert "allow_insecure_http = true" in text  # the MSI's ALLOW_HTTP (lab networks)
    assert "proxy" not in text and "ca_bundle" not in text  # empty: left alone
    assert token not in text and token not in out.stdout + out.stderr
    saved = tmp_path / "state" / "enroll-token"
    assert saved.read_text("utf-8").strip() == token
    assert saved.stat().st_mode & 0o777 == 0o600 and conf.stat().st_mode & 0o777 == 0o600
    # An upgrade passes every property empty: nothing changes.
    before = conf.read_bytes()
    again = agent(conf, "configure", "--server=", "--unit=", "--interval=", "--token=")
    assert again.returncode == 0 and "unchanged" in again.stdout
    assert conf.read_bytes() == before and saved.exists()


def test_configure_refuses_a_value_the_agent_cannot_use(tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text(f"[agent]\nstate_dir = {tmp_path / 'state'}\n", "utf-8")
    out = agent(conf, "configure", "--interval=hourly")
    assert out.returncode != 0
    assert str(conf) in out.stderr and "interval" in out.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the agent is the subject
def test_run_enrols_at_first_start_with_the_installer_token(collector_server, tmp_path):
    server = collector_server
    unit = server.create_unit(UNIT)
    token = server.create_token(unit)
    conf = agent_conf(tmp_path, server=server.url)
    text = conf.read_text("utf-8").replace("[agent]\n", "[agent]\nstart_delay_max = 0\n"
                                           "jitter = 0\ninterval = 3600\n", 1)
    conf.write_text(text, "utf-8")
    out = agent(conf, "configure", f"--token={token}")
    assert out.returncode == 0, out.stderr
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "kiemke.agent", "--config", str(conf), "run"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, encoding="utf-8",
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                (state / "credentials.json").exists()
                and json.loads((state / "status.json").read_text("utf-8")
                               if (state / "status.json").exists() else "{}")
                .get("last_success_at")):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert (state / "credentials.json").exists(), err
    assert not (state / "enroll-token").exists()  # used once, then deleted
    assert token not in err
    status = agent(conf, "status", "--json")
    data = json.loads(status.stdout)
    assert data["enrolled"] and data["unit"] == UNIT and data["last_success_at"], data
