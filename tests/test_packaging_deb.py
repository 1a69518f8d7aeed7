"""`make deb`: the two Debian packages, inspected, installed on this machine and run.

The install test needs root and a Debian 12 system (CI): it installs both packages with
`apt-get install ./…deb`, checks the systemd units with `systemd-analyze verify`, runs
`kiemke-collector setup` non-interactively, starts the packaged collector and a private
nginx (own prefix, port and logs; the installed site file with only those and the upstream
rewritten: the machine's own nginx is not touched), reaches /healthz over TLS, enrols and
sends with the packaged agent through nginx, reinstalls (the upgrade path: `db upgrade`,
data kept), and purges both packages. ≈ 2 min on a quiet 2-core machine, most of it the build.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import requests
from conftest import IN_CI, REPO, free_port, missing_component

UNIT = "Liên đoàn Lao động tỉnh Bắc Giang"
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=180",
       "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
SECURITY_LIMITS = {"kiemke-agent.service": 2.5, "kiemke-collector.service": 1.5}


@pytest.fixture(scope="module")
def debs(built_wheel, tmp_path_factory) -> dict[str, Path]:
    if shutil.which("dpkg-deb") is None:
        missing_component("dpkg-deb is not installed (Debian package dpkg)")
    out = tmp_path_factory.mktemp("debs")
    subprocess.run([sys.executable, str(REPO / "deploy" / "build_packages.py"), "deb",
                    "--wheel", str(built_wheel), "--out", str(out)], check=True, timeout=900)
    found = {p.name.split("_")[0]: p for p in out.glob("*.deb")}
    assert set(found) == {"kiemke-agent", "kiemke-collector"}, found
    return found


def _dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=True,
                          timeout=120).stdout


def test_packages_name_version_dependencies_and_files(debs):
    from kiemke import __version__

    assert debs["kiemke-agent"].name == f"kiemke-agent_{__version__}_amd64.deb"
    assert debs["kiemke-collector"].name == f"kiemke-collector_{__version__}_amd64.deb"
    agent_info = _dpkg_deb("-I", str(debs["kiemke-agent"]))
    assert re.search(r"Depends: python3 \(>= 3\.11\), python3 \(<< 3\.12\)", agent_info)
    collector_info = _dpkg_deb("-I", str(debs["kiemke-collector"]))
    assert "nginx" in collector_info and "adduser" in collector_info
    agent_files = _dpkg_deb("-c", str(debs["kiemke-agent"]))
    for path in ("./usr/bin/kiemke-agent", "./etc/kiemke/agent.conf",
                 "./lib/systemd/system/kiemke-agent.service",
                 "./opt/kiemke/agent/lib/kiemke/agent/cli.py",
                 "./opt/kiemke/agent/lib/psutil/"):
        assert path in agent_files, path
    assert "/opt/kiemke/agent/lib/flask" not in agent_files  # the agent stays light
    conf = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(debs["kiemke-agent"])],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(conf)) as tar:
        member = tar.getmember("./etc/kiemke/agent.conf")
        text = tar.extractfile(member).read().decode("utf-8")
    # enroll stores the server; no example server may override it
    assert not re.search(r"(?m)^server\s*=", text) and "# server = " in text
    assert member.mode & 0o777 == 0o600
    files = _dpkg_deb("-c", str(debs["kiemke-collector"]))
    for path in ("./usr/bin/kiemke-collector", "./etc/kiemke/collector.env",
                 "./lib/systemd/system/kiemke-collector.service",
                 "./usr/share/kiemke-collector/nginx/kiemke-collector.conf",
                 "./opt/kiemke/collector/lib/kiemke/collector/migrations/versions/",
                 "./opt/kiemke/collector/lib/kiemke/rules/"):
        assert path in files, path
    # Every default rule file is an editable conffile under /etc/kiemke/rules.
    conffiles = subprocess.run(["dpkg-deb", "-f", str(debs["kiemke-collector"])],
                               capture_output=True, text=True).stdout  # control fields
    assert "Package: kiemke-collector" in conffiles
    extracted = Path(str(debs["kiemke-collector"]) + ".ctrl")
    subprocess.run(["dpkg-deb", "-e", str(debs["kiemke-collector"]), str(extracted)],
                   check=True)
    listed = (extracted / "conffiles").read_text().split()
    for rule in sorted(p.name for p in (REPO / "rules").glob("*.yml")):
        assert f"./etc/kiemke/rules/{rule}" in files and f"/etc/kiemke/rules/{rule}" in listed
    assert "/etc/kiemke/collector.env" in listed
    # Compiled code is for Debian 12's python3.11 (cp311 or the stable ABI), never another.
    sos = re.findall(r"\S+\.so(?:\.\d+)*\b", files)
    assert sos
    bad = [s for s in sos if ".cpython-" in s and ".cpython-311-" not in s]
    assert not bad, bad


def _exposure(unit: Path) -> float:
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    return float(match.group(1))


@pytest.mark.parametrize("unit", sorted(SECURITY_LIMITS))
def test_systemd_units_are_hardened(unit):
    if shutil.which("systemd-analyze") is None:
        missing_component("systemd-analyze is not installed (Debian package systemd)")
    path = REPO / "deploy" / unit
    text = path.read_text("utf-8")
    for directive in ("ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                      "CapabilityBoundingSet="):
        assert directive in text, directive
    score = _exposure(path)
    print(f"systemd-analyze security {unit}: {score}")
    assert score <= SECURITY_LIMITS[unit], f"{unit}: exposure {score}"


# ------------------------------------------------------------------ install on this machine

def _apt(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run([*APT, *args], capture_output=True, text=True, timeout=600, env=env)


def _purge() -> None:
    _apt("purge", "kiemke-agent", "kiemke-collector")
    for path in ("/var/lib/kiemke-collector", "/var/lib/kiemke"):
        shutil.rmtree(path, ignore_errors=True)


def _private_nginx(tmp: Path, site: str, https: int, upstream: int) -> subprocess.Popen:
    """nginx with its own prefix, port and logs, serving the installed site file."""
    for line in ("listen 443 ssl http2;", "server 127.0.0.1:8080;",
                 "/var/log/nginx/kiemke-collector.access.log",
                 "/var/log/nginx/kiemke-collector.error.log"):
        assert line in site, f"the site file changed: no {line!r}; update this test"
    site = (site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https} ssl http2;")
            .replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream};")
            .replace("/var/log/nginx/", f"{tmp}/"))
    (tmp / "site.conf").write_text(site, "utf-8")
    conf = tmp / "nginx.conf"
    conf.write_text(f"""worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 128; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
""", "utf-8")
    proc = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf), "-e",
                             str(tmp / "error.log"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    return proc


def _wait_https(url: str, ca: str, proc: subprocess.Popen, log: Path) -> requests.Response:
    deadline = time.monotonic() + 60
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {log.read_text('utf-8', 'replace')}")
        try:
            resp = requests.get(url, verify=ca, timeout=5)
            if resp.status_code == 200:
                return resp
            last = resp.status_code
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{url} not answering: {last}")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_install_setup_tls_enrol_upgrade_purge(debs, tmp_path):
    if os.geteuid() != 0 or shutil.which("apt-get") is None or shutil.which("nginx") is None:
        missing_component("installing the .deb needs root, apt-get and nginx (Debian 12)")
    if not IN_CI and Path("/usr/bin/kiemke-collector").exists():
        pytest.skip("kiemke-collector is installed on this machine; not touching it")
    _purge()
    collector = nginx = None
    try:
        started = time.monotonic()
        inst = _apt("install", str(debs["kiemke-agent"]), str(debs["kiemke-collector"]))
        install_seconds = time.monotonic() - started
        assert inst.returncode == 0, inst.stdout[-3000:] + inst.stderr[-3000:]
        print(f"apt-get install of both packages: {install_seconds:.1f} s")
        # postinst migrated the database as the kiemke user
        db = Path("/var/lib/kiemke-collector/kiemke.db")
        assert db.exists() and db.stat().st_uid == int(_id("-u")), inst.stdout[-2000:]
        env_file = Path("/etc/kiemke/collector.env")
        assert oct(env_file.stat().st_mode & 0o777) == "0o640"
        assert "KIEMKE_RULES_DIR=/etc/kiemke/rules" in env_file.read_text("utf-8")
        version = subprocess.run(["kiemke-agent", "--version"], capture_output=True,
                                 text=True, timeout=60)
        assert version.returncode == 0 and "kiemke-agent" in version.stdout
        verify = subprocess.run(["systemd-analyze", "verify",
                                 "/lib/systemd/system/kiemke-agent.service",
                                 "/lib/systemd/system/kiemke-collector.service"],
                                capture_output=True, text=True, timeout=120)
        assert verify.returncode == 0 and "kiemke" not in verify.stderr, verify.stderr

        setup = subprocess.run(["kiemke-collector", "setup", "--unit", UNIT,
                                "--hostname", "127.0.0.1"],
                               capture_output=True, text=True, timeout=300)
        assert setup.returncode == 0, setup.stderr
        password = setup.stdout.strip()  # the first admin user's, printed once
        assert re.fullmatch(r"[A-Za-z0-9]{20}", password), setup.stdout
        users = subprocess.run(["kiemke-collector", "users", "list"], capture_output=True,
                               text=True, timeout=120)
        assert re.search(r"^\d+\s+admin\s.*\badmin\b", users.stdout, re.M), users.stdout
        assert "https://127.0.0.1/" in setup.stderr and "tokens create" in setup.stderr
        site_path = Path("/etc/nginx/sites-available/kiemke-collector.conf")
        assert Path("/etc/nginx/sites-enabled/kiemke-collector.conf").resolve() == site_path
        site = site_path.read_text("utf-8")
        assert "server_name 127.0.0.1;" in site
        key = Path("/etc/kiemke/tls/collector.key")
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        again = subprocess.run(["kiemke-collector", "setup", "--unit", UNIT,
                                "--hostname", "127.0.0.1"],
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "already there" in again.stderr, again.stderr
        assert again.stdout.strip() == ""  # no second admin user

        port, https = free_port(), free_port()
        log = tmp_path / "collector.log"
        with open(log, "wb") as fh:  # the wrapper drops to the kiemke user by itself
            collector = subprocess.Popen(["kiemke-collector", "serve", "--bind",
                                          f"127.0.0.1:{port}", "--workers", "1"],
                                         stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        ngx_dir = tmp_path / "nginx"
        ngx_dir.mkdir()
        nginx = _private_nginx(ngx_dir, site, https, port)
        ca = "/etc/kiemke/tls/collector.crt"
        health = _wait_https(f"https://127.0.0.1:{https}/healthz", ca, nginx,
                             ngx_dir / "error.log")
        assert health.status_code == 200

        # The packaged agent enrols and reports through nginx over TLS.
        token = subprocess.run(["kiemke-collector", "tokens", "create", "--unit", UNIT],
                               capture_output=True, text=True, timeout=120)
        assert token.returncode == 0, token.stderr
        conf = tmp_path / "agent.conf"
        server = f"https://127.0.0.1:{https}"
        conf.write_text(f"[agent]\nserver = {server}\nstate_dir = {tmp_path / 'state'}\n"
                        f"ca_bundle = {ca}\nretries = 1\ntimeout = 10\n\n[network]\n"
                        "gateway_check = off\ninternet_probes = tcp://127.0.0.1:9\n"
                        "dns_names = localhost\nprobe_timeout = 0.5\n", "utf-8")
        enrol = subprocess.run(["kiemke-agent", "--config", str(conf), "enroll",
                                f"--server={server}", f"--token={token.stdout.strip()}"],
                               capture_output=True, text=True, timeout=120)
        assert enrol.returncode == 0, enrol.stderr
        assert UNIT in enrol.stdout
        sent = subprocess.run(["kiemke-agent", "--config", str(conf), "send"],
                              capture_output=True, text=True, timeout=180)
        assert sent.returncode == 0, sent.stderr
        read = subprocess.run(["kiemke-collector", "read-tokens", "create", "tests"],
                              capture_output=True, text=True, timeout=120)
        assert read.returncode == 0, read.stderr
        machines = requests.get(f"{server}/api/v1/machines", verify=ca, timeout=10,
                                headers={"Authorization": f"Bearer {read.stdout.strip()}"})
        assert machines.status_code == 200, machines.text
        assert UNIT in machines.text

        # Upgrade path: the same package again runs `db upgrade`, keeps data and config.
        _stop(collector)
        collector = None
        (Path("/etc/kiemke/rules") / "network.yml").write_text(
            (REPO / "rules" / "network.yml").read_text("utf-8") + "# local change\n", "utf-8")
        again = _apt("install", "--reinstall", str(debs["kiemke-collector"]))
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
        assert "is at revision" in again.stdout + again.stderr
        assert "# local change" in (Path("/etc/kiemke/rules") / "network.yml").read_text()
        units = subprocess.run(["kiemke-collector", "units", "list"], capture_output=True,
                               text=True, timeout=120)
        assert UNIT in units.stdout, units.stderr
    finally:
        _stop(nginx)
        _stop(collector)
        _purge()
    assert not Path("/etc/nginx/sites-enabled/kiemke-collector.conf").exists()
    assert not Path("/etc/nginx/sites-available/kiemke-collector.conf").exists()
    assert not Path("/usr/bin/kiemke-collector").exists()
    assert not Path("/opt/kiemke").exists()


def _id(flag: str) -> str:
    return subprocess.run(["id", flag, "kiemke"], capture_output=True, text=True,
                          check=True).stdout.strip()
