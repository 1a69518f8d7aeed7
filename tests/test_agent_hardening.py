"""Issue 11 on the agent side, through the real CLI: plain http:// refused everywhere
unless [agent] allow_insecure_http, which then reaches a real collector on a non-loopback
address inside a network namespace this test creates (enrolling with a token that begins
with '-'); `collect` sends nothing; report text in NFC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unicodedata
import uuid
from pathlib import Path

from conftest import (
    REPO,
    collector_cmd,
    migrate,
    missing_component,
)
from netns import netns_problem
from probe_guard import allow_env
from sqlalchemy import create_engine, text
from test_e2e_agent import agent
from test_schema_contract import agent_conf

from kiemke.agent import probe_policy
from kiemke.agent.collectors.base import Context
from kiemke.agent.config import load_config
from kiemke.agent.report import build_report
from kiemke.collector.credentials import hash_secret, new_secret

UNIT = "Liên đoàn Lao động tỉnh Bắc Giang"
LAB = "http://10.20.0.5:8080"  # never contacted: refused before any packet


def test_generated_secrets_never_begin_with_a_dash() -> None:
    secrets = [new_secret() for _ in range(4000)]  # ~62 would begin with '-' by chance
    assert not [s for s in secrets if s.startswith("-")]
    assert all(len(s) == 43 for s in secrets) and len(set(secrets)) == len(secrets)
    assert sum(s.startswith("_") for s in secrets) > 20  # only '-' is avoided


def _fake_credentials(state: Path, server: str) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "credentials.json").write_text(json.dumps({
        "server": server, "agent_id": "a" * 32, "secret": "s" * 43, "machine_id": "0" * 32,
        "unit": {}, "enrolled_at": "2026-12-01T00:00:00Z"}), encoding="utf-8")


def test_plain_http_to_another_machine_is_refused_by_every_command(tmp_path: Path) -> None:
    conf = agent_conf(tmp_path, server=LAB)
    _fake_credentials(tmp_path / "state", LAB)
    for command in ("send", "run"):
        out = agent(conf, command)
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert f"[agent] server in {conf}" in out.stderr
        assert "allow_insecure_http = true" in out.stderr and "https://" in out.stderr
    assert list((tmp_path / "state").glob("spool/*.json.gz")) == []  # nothing collected
    # The server stored at enrolment is checked too when the config names none.
    conf.write_text(conf.read_text("utf-8").replace(f"server = {LAB}\n", ""), "utf-8")
    out = agent(conf, "send")
    assert out.returncode == 2 and "the server stored at enrolment" in out.stderr
    out = agent(conf, "enroll", "--server", LAB, "--token=x")
    assert out.returncode == 2 and "allow_insecure_http" in out.stderr
    out = agent(conf, "enroll", "--server", LAB, "--token=x", "--insecure")
    assert out.returncode == 2 and "--insecure is not enough" in out.stderr
    # collect --probes: the collector check says why instead of probing.
    out = agent(conf, "collect", "--probes", env={"KIEMKE_SERVER": LAB})
    assert out.returncode == 0, out.stderr
    check = json.loads(out.stdout)["network"]["checks"]["collector"]
    assert check["ok"] is False and check["probes"] == []
    assert "reports are not sent to this collector" in check["error"]


def test_allow_insecure_http_reaches_a_lab_collector_with_a_dash_token(
        tmp_path: Path, sqlite_url: str) -> None:
    problem = netns_problem()
    if problem:
        missing_component(problem)
    migrate(sqlite_url)
    env = {**os.environ, "KIEMKE_DATABASE_URL": sqlite_url,
           "KIEMKE_DATA_DIR": str(tmp_path / "collector"), "KIEMKE_MAINTENANCE_INTERVAL": "0"}

    def cli(*args: str) -> str:
        out = subprocess.run([*collector_cmd(), *args], env=env, capture_output=True,
                             text=True, timeout=60, cwd=REPO, check=True)
        return out.stdout.strip()

    cli("tokens", "create", "--unit", cli("units", "add", UNIT))
    # A token from an older collector (one in 64 of the URL-safe ones) begins with '-':
    # `--token -Xy...` must still be read as the token, not as an option.
    token = "-" + new_secret()[1:]
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE enrollment_tokens SET token_hash = :h"),
                     {"h": hash_secret(token)})
    engine.dispose()
    ns, addr = f"kk{uuid.uuid4().hex[:8]}l", "10.214.0.1"
    url = f"http://{addr}:8080"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        # A veth pair with both ends in the namespace: a non-loopback address on this
        # "machine" (no dummy interfaces on every kernel).
        for args in (["link", "set", "lo", "up"],
                     ["link", "add", "lab0", "type", "veth", "peer", "name", "lab1"],
                     ["addr", "add", f"{addr}/24", "dev", "lab0"],
                     ["link", "set", "lab0", "up"], ["link", "set", "lab1", "up"]):
            subprocess.run(["ip", "-n", ns, *args], check=True)
        log = open(tmp_path / "collector.log", "wb")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *collector_cmd(), "serve",
                                 "--bind", f"{addr}:8080", "--workers", "1"], env=env,
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        conf = agent_conf(tmp_path, server=url)
        conf.write_text(conf.read_text("utf-8").replace(
            "[agent]\n", "[agent]\nallow_insecure_http = true\n"), "utf-8")
        lab_env = allow_env("10.214.0.0/24")

        def in_ns(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m",
                                   "kiemke.agent", "--config", str(conf), *args],
                                  capture_output=True, text=True, timeout=120, cwd=REPO,
                                  env={**os.environ, **lab_env})

        deadline = time.monotonic() + 30
        while True:  # enrol as soon as the collector listens
            out = in_ns("enroll", "--server", url, "--token", token)
            if out.returncode != 3 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert out.returncode == 0, (out.stderr, (tmp_path / "collector.log").read_text())
        assert "expected one argument" not in out.stderr and UNIT in out.stdout
        sent = in_ns("send")
        assert sent.returncode == 0, sent.stderr
        assert f"delivered to {url}" in sent.stdout
        report = json.loads(in_ns("collect", "--probes").stdout)
        assert report["network"]["checks"]["collector"]["ok"] is True
    finally:
        if proc is not None:
            proc.terminate()  # `ip netns exec` execs: this is the collector itself
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=5)
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_collect_sends_nothing_unless_asked(tmp_path: Path) -> None:
    guard_log = tmp_path / "guard.log"
    conf = agent_conf(tmp_path, server="https://192.0.2.10:8443")
    conf.write_text(conf.read_text("utf-8").replace(
        "internet_probes = tcp://127.0.0.1:9", "internet_probes = https://www.gov.vn")
        .replace("dns_names = localhost", "dns_names = www.gov.vn\ndns_direct = true"),
        "utf-8")
    env = {probe_policy.GUARD_LOG_ENV: str(guard_log)}
    out = agent(conf, "collect", env=env)
    assert out.returncode == 0, out.stderr
    checks = json.loads(out.stdout)["network"]["checks"]
    for name in ("gateway", "dns", "internet", "collector"):
        assert checks[name]["ok"] is None and checks[name]["probes"] == []
        assert "`kiemke-agent collect` sends nothing" in checks[name]["error"]
    assert not guard_log.exists()  # not one probe was even attempted
    out = agent(conf, "collect", "--probes", env=env)  # the same config, probes asked for
    assert out.returncode == 0 and guard_log.read_text("utf-8").count("refused") >= 3


def test_report_text_is_nfc(tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", UNIT)
    assert nfd != UNIT
    conf = tmp_path / "agent.conf"
    conf.write_text(f"[agent]\nunit = {nfd}\nstate_dir = {tmp_path / 'state'}\n"
                    "[collectors]\nenabled = identity\n", encoding="utf-8")
    cfg = load_config(conf, env={})
    assert cfg.unit == UNIT
    cfg.unit = nfd  # as if set by code: the report is normalised all the same
    report = build_report(cfg, "periodic", Context(config=cfg, state_dir=tmp_path / "state"))
    assert report["identity"]["unit"] == UNIT
    body = json.dumps(report, ensure_ascii=False)
    assert unicodedata.is_normalized("NFC", body)


def test_allow_insecure_http_setting_and_environment(tmp_path: Path) -> None:
    conf = tmp_path / "agent.conf"
    conf.write_text("[agent]\nallow_insecure_http = yes\n", encoding="utf-8")
    assert load_config(conf, env={}).allow_insecure_http is True
    assert load_config(tmp_path / "none.conf", env={}).allow_insecure_http is False
    for name in ("KIEMKE_ALLOW_INSECURE_HTTP", "KIEMKE_AGENT_ALLOW_INSECURE_HTTP"):
        assert load_config(tmp_path / "none.conf", env={name: "true"}).allow_insecure_http
    both = {"KIEMKE_ALLOW_INSECURE_HTTP": "true", "KIEMKE_AGENT_ALLOW_INSECURE_HTTP": "false"}
    assert load_config(tmp_path / "none.conf", env=both).allow_insecure_http is False
