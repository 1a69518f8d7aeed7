"""`make demo`: a collector on embedded SQLite, this machine enrolled, one real report.

Beside the real machine it loads a clearly labelled SIMULATED fleet (a few hundred
machines over three districts, thirteen months of daily history with drift:
kiemke/collector/reports/simulate.py) and prints the commands for this month's report
and this year's ranking.

Everything lives in ./demo-data, which is RESET on every run (deleted and created
again), so each demo starts from a clean database and a fresh enrolment. Network probes
of the demo agent target only the local collector (loopback). Ctrl-C stops the
collector cleanly.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import requests

from kiemke.agent.probe_policy import ALLOW_ENV

ROOT_UNIT = "Liên đoàn Lao động tỉnh Bắc Giang"
# Plan 000's unit targets apply to offices "from district level up": the demo machine
# belongs to the district federation, so its unit rules are evaluated too.
DISTRICT = "Liên đoàn Lao động huyện Lục Nam"
MARKER = ".kiemke-demo"


def _port(preferred: int = 8080) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]


def _fail(message: str) -> None:
    print(f"\nmake demo: {message}", file=sys.stderr)
    sys.exit(1)


class Demo:
    def __init__(self, data: Path) -> None:
        self.data = data.resolve()
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "KIEMKE_DATABASE_URL": f"sqlite:///{self.data / 'kiemke.db'}",
                    "KIEMKE_DATA_DIR": str(self.data / "collector")}
        self.env.pop("KIEMKE_CONFIG", None)
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.admin = ""
        self.password = ""
        self.simulated: dict[str, Any] = {}

    def collector(self, *args: str, stdin: str | None = None) -> str:
        out = subprocess.run([sys.executable, "-m", "kiemke.collector", *args],
                             env=self.env, capture_output=True, text=True, timeout=120,
                             input=stdin)
        if out.returncode != 0:
            _fail(f"kiemke-collector {' '.join(args)} failed:\n{out.stderr or out.stdout}")
        return out.stdout.strip()

    def agent(self, *args: str) -> subprocess.CompletedProcess:
        # The probe allow-list holds the demo agent to this machine even if its config
        # named anything else (kiemke/agent/probe_policy.py).
        return subprocess.run([sys.executable, "-m", "kiemke.agent", "--config",
                               str(self.data / "agent.conf"), *args],
                              env={**self.env, ALLOW_ENV: "127.0.0.0/8,::1"},
                              capture_output=True, text=True, timeout=300)

    def reset(self) -> None:
        if self.data.exists():
            if not (self.data / MARKER).exists() and any(self.data.iterdir()):
                _fail(f"{self.data} exists and was not made by the demo; move it away.")
            shutil.rmtree(self.data)
        (self.data / "collector").mkdir(parents=True)
        (self.data / MARKER).write_text("created by `make demo`; deleted on the next run\n")

    def start_collector(self) -> None:
        port = _port()
        self.url = f"http://127.0.0.1:{port}"
        log = open(self.data / "collector.log", "wb")  # noqa: SIM115 - child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kiemke.collector", "serve", "--bind",
             f"127.0.0.1:{port}", "--workers", "2"], env=self.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _fail("the collector stopped at start:\n"
                      + (self.data / "collector.log").read_text("utf-8", "replace")[-3000:])
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        _fail(f"the collector did not become ready; see {self.data / 'collector.log'}")

    def stop_collector(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def write_agent_config(self) -> None:
        # Probes only touch this machine: the collector's /healthz and "localhost".
        (self.data / "agent.conf").write_text(f"""# written by make demo
[agent]
server = {self.url}
unit = {DISTRICT}
state_dir = {self.data / 'agent-state'}
retries = 3
backoff_base = 0.5
timeout = 10

[network]
gateway_check = off
internet_probes = {self.url}/healthz
dns_names = localhost
dns_direct = false
probe_timeout = 1
check_collector = true
""", encoding="utf-8")

    def get(self, path: str) -> Any:
        resp = requests.get(self.url + path, timeout=10,
                            headers={"Authorization": f"Bearer {self.admin}"})
        return resp.json() if resp.status_code == 200 else None

    def run(self) -> None:
        print(f"kiemke demo: data in {self.data} (reset on every run)")
        self.reset()
        self.collector("db", "upgrade")
        root = self.collector("units", "add", ROOT_UNIT)
        district = self.collector("units", "add", DISTRICT, "--parent", root)
        token = self.collector("tokens", "create", "--unit", district, "--description",
                               "make demo")
        self.admin = self.collector("admin-tokens", "create", "demo")
        # A console login for this demo only (its database is reset on every run).
        self.password = secrets.token_urlsafe(9)
        self.collector("users", "add", "demo", "--role", "admin", "--display-name",
                       "Quản trị demo", "--password-stdin", stdin=self.password + "\n")
        print("loading a SIMULATED fleet with 13 months of daily history (about a minute) ...",
              flush=True)
        self.simulated = json.loads(self.collector("history", "simulate", "--days", "396")
                                    .splitlines()[-1])
        self.start_collector()
        try:
            self.write_agent_config()
            # --token=...: a secret may begin with '-' (argparse would take it for an option)
            enrol = self.agent("enroll", f"--server={self.url}", f"--token={token}")
            if enrol.returncode != 0:
                _fail(f"kiemke-agent enroll failed: {enrol.stderr}")
            sent = self.agent("send", "--full")
            if sent.returncode != 0:
                _fail(f"kiemke-agent send failed ({sent.returncode}): {sent.stderr}")
            creds = json.loads((self.data / "agent-state" / "credentials.json")
                               .read_text("utf-8"))
            self.summary(creds["machine_id"])
            print("\nServing in the foreground; press Ctrl-C to stop.")
            assert self.proc is not None
            self.proc.wait()
            _fail(f"the collector exited ({self.proc.returncode}); see "
                  f"{self.data / 'collector.log'}")
        except KeyboardInterrupt:
            print("\nstopping the collector ...")
        finally:
            self.stop_collector()

    def summary(self, machine_id: str) -> None:
        machine = self.get(f"/api/v1/machines/{machine_id}") or {}
        report = machine.get("report") or {}
        print("\n=== kiemke demo ===")
        print(f"machines reporting: {1 if machine else 0} (this machine), plus "
              f"{self.simulated.get('machines', 0)} SIMULATED under "
              f"{self.simulated.get('root')!r}")
        print(f"unit:               {(machine.get('unit') or {}).get('path')}")
        for line in describe_report(report):
            print(line)
        self.compliance(machine_id, machine)
        print("\nURLs")
        print(f"  web console              {self.url}/   (login: demo / {self.password})")
        print(f"  API (admin token below)  {self.url}/api/v1/machines")
        print(f"  OpenAPI                  {self.url}/api/v1/openapi.json")
        print(f"  Prometheus metrics       {self.url}/metrics")
        print(f"  health / readiness       {self.url}/healthz  {self.url}/readyz")
        print(f"  admin token              {self.admin}")
        print(f"  this machine (send the admin token as 'Authorization: Bearer <token>', "
              f"e.g. curl -H or wget --header):\n    {self.url}/api/v1/machines/{machine_id}")
        self.report_commands()

    def report_commands(self) -> None:
        """The commands for this month's report and this year's ranking (simulated fleet)."""
        from kiemke.collector.reports.periods import local_day, month
        from kiemke.collector.timeutil import utcnow

        today = local_day(utcnow(), "Asia/Ho_Chi_Minh")
        this_month = month(today.year, today.month).text
        previous = month(*((today.year, today.month - 1) if today.month > 1
                           else (today.year - 1, 12))).text
        root = self.simulated.get("root", ROOT_UNIT)
        exe = Path(sys.executable).parent / "kiemke-collector"
        cli = str(exe) if exe.exists() else f"{sys.executable} -m kiemke.collector"
        env = f"KIEMKE_DATABASE_URL={self.env['KIEMKE_DATABASE_URL']}"
        print("\nPeriod reports and ranking (SIMULATED fleet; days close at local midnight):")
        print(f"  this month, to date:  {env} {cli} report --unit '{root}' "
              f"--period {this_month} --format pdf -o bao-cao-{this_month}.pdf")
        print(f"  last month, complete: {env} {cli} report --unit '{root}' "
              f"--period {previous} --format xlsx -o bao-cao-{previous}.xlsx")
        print(f"  this year's ranking:  {env} {cli} ranking --parent '{root}' "
              f"--period {today.year} --format pdf -o xep-hang-{today.year}.pdf")
        print(f"  over HTTP (admin token): {self.url}/api/v1/rankings?parent="
              f"{urllib.parse.quote(root)}&period={today.year}&format=json")

    def compliance(self, machine_id: str, machine: dict[str, Any]) -> None:
        """This machine's result per rule, and its office's ratio against each target."""
        unit = machine.get("unit") or {}
        figures = self.get(f"/api/v1/compliance?unit={unit.get('id')}") or {"rules": []}
        by_rule = {r["rule"]: r for r in figures["rules"]}
        mine = {r["rule"]: r for r in machine.get("results") or []}
        print("\nrules (this machine's result; the office's compliance vs. the target):")
        for rule_id, fig in by_rule.items():
            ratio = "-" if fig.get("ratio") is None else f"{fig['ratio']:.0%}"
            result = mine.get(rule_id, {}).get("result", "(unit rule)")
            print(f"  {rule_id:<32} {result:<15} {ratio:>5} / target {fig['target']:.0%}"
                  f"  {fig['title']['en']}")
            reason = mine.get(rule_id, {}).get("reason")
            if reason and result in ("fail", "unknown"):
                print(f"  {'':<32} {'':<15} why: {reason}")


def describe_report(report: dict[str, Any]) -> list[str]:
    """A few key facts of a report, each with its error when it could not be read."""
    def err(section: dict[str, Any]) -> str:
        errors = section.get("errors") or []
        return f"not read ({errors[0]['message']})" if errors else "not read"

    ident = report.get("identity") or {}
    osr = report.get("os") or {}
    hw = report.get("hardware") or {}
    av = report.get("antivirus") or {}
    net = report.get("network") or {}
    cpu = hw.get("cpu") or {}
    lines = [f"hostname:           {ident.get('hostname')} (machine id {ident.get('machine_id')},"
             f" from {ident.get('machine_id_source')})"]
    lines.append("OS:                 " + (" ".join(str(x) for x in (
        osr.get("name"), osr.get("version")) if x) or err(osr))
        + ("" if osr.get("supported") is None else
           f", vendor support: {'yes' if osr['supported'] else 'ENDED'}"))
    if cpu or hw.get("memory_bytes"):
        mem = hw.get("memory_bytes")
        lines.append(f"CPU / RAM:          {cpu.get('model')} x{cpu.get('cores_logical')} / "
                     + (f"{mem / 2**30:.1f} GiB" if mem else "?"))
    else:
        lines.append(f"CPU / RAM:          {err(hw)}")
    products = av.get("products")
    if products:
        lines.append("antivirus:          " + ", ".join(
            f"{p['name']} ({p.get('state', 'unknown')})" for p in products))
    elif products == [] and not av.get("errors"):
        lines.append("antivirus:          none found")
    else:
        lines.append(f"antivirus:          {err(av)}")
    checks = net.get("checks") or {}
    if checks:
        lines.append("network checks:     " + ", ".join(
            f"{k} {'ok' if v.get('ok') else ('not run' if v.get('ok') is None else 'FAILED')}"
            for k, v in checks.items()))
    else:
        lines.append(f"network checks:     {err(net)}")
    return lines


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # Ctrl-C and `kill` both stop the collector cleanly, even when started in the
    # background (where a shell leaves SIGINT ignored).
    # SIGHUP too: closing the terminal (or ssh session) must not leave the collector,
    # which runs in its own session, serving.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    # Output goes out line by line even into a file or pipe (make demo > demo.log).
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    Demo(Path(os.environ.get("KIEMKE_DEMO_DIR", "demo-data"))).run()


if __name__ == "__main__":
    main()
