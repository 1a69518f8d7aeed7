"""Idle and slow clients must not starve healthy agents (issue 11, defect 1).

With 300 idle + 50 slowloris connections held open, healthy agents' reports are accepted
with p99 <= 1 s (the budget in ARCHITECTURE.md) and /healthz answers:
(a) against the collector alone (gunicorn with kiemke's buffered worker, 2 workers), and
(b) through the shipped nginx configuration (deploy/nginx/kiemke-collector.conf) in a real
    nginx from Debian, with a self-signed certificate made by openssl here.
Each measurement runs 4 s without and 12 s with the hostile connections; the file takes
about 60-100 s. The figures are printed (-s), the p99 without hostile connections in the
same run beside them. The hostile connections come from a process of their own
(tests/slow_clients.py), so that their work (reopening 50 TLS connections each time
nginx's header timeout closes them) is not done by the process that measures.
Measured on the shared 2-core test machine at load 12-20 (five runs): report p99 77-203
ms with the hostile connections, 125-694 ms without them in the same runs: the tail is
the machine's load, not the hostile connections; the earlier 1.03 s was one run at load
18. The assertion is the 1 s budget itself.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import REPO, free_port, missing_component, start_collector, stop_collector
from reports import make_report
from slow_clients import AgentFigures, HostileConnections, enroll, healthy_agents

IDLE, SLOWLORIS = 300, 50
SECONDS = 12.0
FLOOR_SECONDS = 4.0  # the same agents first, without hostile connections
P99_BUDGET = 1.0
NGINX_CONF = REPO / "deploy" / "nginx" / "kiemke-collector.conf"


def _check(figures: AgentFigures, where: str, hostile_mean_open: float,
           floor: AgentFigures) -> None:
    report_p99 = figures.p99(figures.report_latencies)
    health_p99 = figures.p99(figures.health_latencies)
    floor_p99 = floor.p99(floor.report_latencies)
    budget = P99_BUDGET
    print(f"\n{where}: {len(figures.report_latencies)} reports, p99 {report_p99 * 1000:.1f} ms"
          f" (without hostile connections {floor_p99 * 1000:.1f} ms);"
          f" {len(figures.health_latencies)} /healthz, p99 {health_p99 * 1000:.1f} ms;"
          f" statuses {figures.statuses}; hostile connections open on average "
          f"{hostile_mean_open:.0f}")
    assert not figures.errors, figures.errors[:5]
    bad = {k: v for k, v in figures.statuses.items() if k not in ("report 202", "healthz 200")}
    assert not bad, f"{where}: unexpected answers {bad}"
    assert len(figures.report_latencies) >= 50, f"{where}: too few reports went through"
    assert report_p99 <= budget, f"{where}: report p99 {report_p99:.3f} s > {budget:.3f} s"
    assert health_p99 <= budget, f"{where}: /healthz p99 {health_p99:.3f} s > {budget:.3f} s"
    # The pressure really was there: nearly all hostile connections open throughout.
    assert hostile_mean_open >= 0.9 * (IDLE + SLOWLORIS)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory):
    # One collector (and one nginx) for the whole file: starting them is most of its time.
    path = tmp_path_factory.mktemp("slow")
    server = start_collector(f"sqlite:///{path / 'kiemke.db'}", path / "collector", workers=2)
    server.env["KIEMKE_TEST_UNIT"] = str(server.create_unit("LĐLĐ huyện Lục Ngạn"))
    try:
        yield server
    finally:
        stop_collector(server)


def _agents(server, url: str, count: int, verify=True) -> list[tuple[str, str]]:
    token = server.create_token(server.env["KIEMKE_TEST_UNIT"])
    return enroll(url, token, count, verify=verify)


def test_idle_and_slowloris_connections_do_not_starve_agents(collector) -> None:
    agents = _agents(collector, collector.url, 4)
    port = int(collector.url.rsplit(":", 1)[1])
    floor = healthy_agents(collector.url, agents, FLOOR_SECONDS)
    hostile = HostileConnections("127.0.0.1", port, IDLE, SLOWLORIS).start()
    try:
        time.sleep(1.0)
        figures = healthy_agents(collector.url, agents, SECONDS)
    finally:
        held = hostile.stop()
    _check(figures, "collector alone", held.mean_open, floor)
    # The slowloris heads never completed, so the collector answered each with 408 after
    # its head timeout and closed it (then the attacker reconnected).
    assert held.closed_by_server >= SLOWLORIS


def _raw_exchange(port: int, payload: bytes, wait: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(payload)
        out = b""
        deadline = time.monotonic() + wait
        while out.count(b"HTTP/1.1 ") < 2 and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            out += data
    return out


def test_over_limit_bodies_are_413_and_the_connection_stays_usable(collector) -> None:
    """A 413 (Content-Length or chunked over the limit) is answered in the JSON error
    format and the next request on the same keep-alive connection is served."""
    port = int(collector.url.rsplit(":", 1)[1])
    big = b"x" * (1024 * 1024 + 10)
    follow = b"GET /healthz HTTP/1.1\r\nHost: kiemke\r\n\r\n"
    sized = (b"POST /api/v1/reports HTTP/1.1\r\nHost: kiemke\r\nContent-Type: "
             b"application/json\r\nContent-Length: %d\r\n\r\n" % len(big)) + big + follow
    chunks = b"".join(b"%x\r\n%s\r\n" % (65536, big[:65536]) for _ in range(17)) + b"0\r\n\r\n"
    chunked = (b"POST /api/v1/reports HTTP/1.1\r\nHost: kiemke\r\nContent-Type: "
               b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n") + chunks + follow
    for payload in (sized, chunked):
        out = _raw_exchange(port, payload)
        first, _, rest = out.partition(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 413"), out[:300]
        assert b'"error": "body_too_large"' in rest and b'"field": "body"' in rest
        assert b"HTTP/1.1 200 OK" in rest and b'"status":"ok"' in rest, out[-400:]


def test_too_long_request_line_or_header_is_a_json_414_or_431(collector) -> None:
    """gunicorn's parser limits (request line 4094 bytes, header field 8190) answer in
    the collector's JSON error format naming the part, not with a closed connection."""
    port = int(collector.url.rsplit(":", 1)[1])
    long_line = b"GET /healthz?x=%s HTTP/1.1\r\nHost: kiemke\r\n\r\n" % (b"a" * 5000)
    long_header = b"GET /healthz HTTP/1.1\r\nHost: kiemke\r\nX-Long: %s\r\n\r\n" % (b"a" * 9000)
    for payload, status, field in ((long_line, b"414", "path"), (long_header, b"431", "headers")):
        out = _raw_exchange(port, payload)
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 " + status), out[:300]
        assert b"Content-Type: application/json" in head, head
        assert json.loads(body)["field"] == field, body


# --------------------------------------------------------------------------- nginx

@dataclass
class Nginx:
    url: str
    port: int
    cert: Path
    prefix: Path
    process: subprocess.Popen

    def log(self) -> str:
        path = self.prefix / "logs" / "error.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""


def _nginx_config(prefix: Path, port: int, upstream: str, cert: Path, key: Path,
                  temp_dir: Path | None = None) -> Path:
    """The shipped file, with only the listen port, certificate paths, upstream address
    and log paths changed, inside a minimal nginx.conf for a private instance."""
    text = NGINX_CONF.read_text("utf-8")
    replacements = [
        (r"listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;"),
        (r"server 127\.0\.0\.1:8080;", f"server {upstream};"),
        (r"/etc/ssl/kiemke/fullchain\.pem", str(cert)),
        (r"/etc/ssl/kiemke/privkey\.pem", str(key)),
        (r"/var/log/nginx/kiemke-collector\.access\.log", str(prefix / "logs" / "access.log")),
        (r"/var/log/nginx/kiemke-collector\.error\.log", str(prefix / "logs" / "error.log")),
    ]
    for pattern, new in replacements:
        text, count = re.subn(pattern, new, text)
        assert count == 1, f"{NGINX_CONF} no longer has {pattern!r} once"
    (prefix / "conf.d").mkdir()
    (prefix / "conf.d" / "kiemke-collector.conf").write_text(text, "utf-8")
    if temp_dir is None:  # under the prefix: unreachable for nobody inside pytest's 0700 dir
        temp_dir = prefix / "temp"
        temp_dir.mkdir(mode=0o777)
        temp_dir.chmod(0o777)
    temp = temp_dir
    main = prefix / "nginx.conf"
    main.write_text(f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 2048; }}
http {{
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {prefix}/conf.d/kiemke-collector.conf;
}}
""", "utf-8")
    return main


@pytest.fixture(scope="module")
def nginx(collector, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                       else None)
    if binary is None or shutil.which("openssl") is None:
        missing_component("nginx and openssl are needed (deploy/install-test-deps.sh)")
    prefix = tmp_path_factory.mktemp("nginx") / "nginx"
    (prefix / "logs").mkdir(parents=True)
    cert, key = prefix / "cert.pem", prefix / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    upstream = collector.url.removeprefix("http://")
    # nginx's temporary files (client_body_temp_path, proxy_temp_path) are written by its
    # worker processes, which run as nobody: outside pytest's private (0700) directory,
    # as /var/lib/nginx is in a real installation.
    temp_dir = Path(tempfile.mkdtemp(prefix="kiemke-nginx-temp-"))
    temp_dir.chmod(0o777)
    conf = _nginx_config(prefix, port, upstream, cert, key, temp_dir)
    test = subprocess.run([binary, "-t", "-p", str(prefix), "-c", str(conf)],
                          capture_output=True, text=True, timeout=30)
    assert test.returncode == 0, f"nginx -t refused the shipped config:\n{test.stderr}"
    process = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf),
                                "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    server = Nginx(f"https://127.0.0.1:{port}", port, cert, prefix, process)
    deadline = time.monotonic() + 15
    while True:
        try:
            if requests.get(f"{server.url}/healthz", verify=str(cert), timeout=2).ok:
                break
        except requests.RequestException:
            pass
        assert process.poll() is None and time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    try:
        yield server
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_through_nginx_idle_and_slowloris_do_not_starve_agents(collector, nginx) -> None:
    agents = _agents(collector, nginx.url, 4, verify=str(nginx.cert))
    floor = healthy_agents(nginx.url, agents, FLOOR_SECONDS, verify=str(nginx.cert))
    hostile = HostileConnections("127.0.0.1", nginx.port, IDLE, SLOWLORIS, tls=True).start()
    try:
        time.sleep(1.0)
        figures = healthy_agents(nginx.url, agents, SECONDS, verify=str(nginx.cert))
    finally:
        held = hostile.stop()
    _check(figures, "through nginx", held.mean_open, floor)
    assert held.closed_by_server >= SLOWLORIS  # client_header_timeout closed them


def test_nginx_refuses_an_over_limit_chunked_body_with_413(collector, nginx) -> None:
    """A chunked body passing client_max_body_size is answered with the site's JSON 413,
    and neither it nor a chunked body of exactly the limit is spilled to a temporary file
    (client_body_buffer_size is larger than the limit: with both equal, nginx 1.22 wrote
    the full buffer to client_body_temp_path before it saw the next chunk was too many,
    and answered 500 where that directory was not writable)."""
    verify = str(nginx.cert)
    _machine_id, authorization = _agents(collector, nginx.url, 1, verify=verify)[0]

    def chunks(count: int) -> Iterator[bytes]:
        for _ in range(count):
            yield b"x" * 65536

    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    resp = requests.post(f"{nginx.url}/api/v1/reports", data=chunks(20), verify=verify,
                         timeout=10, headers=headers)
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "body_too_large" and resp.json()["field"] == "body"
    # 16 x 64 KiB = the limit: passed on to the collector, which reads it (not JSON: 400)
    resp = requests.post(f"{nginx.url}/api/v1/reports", data=chunks(16), verify=verify,
                         timeout=10, headers=headers)
    assert resp.status_code == 400 and resp.json()["error"] == "malformed_json", resp.text
    assert "buffered to a temporary file" not in nginx.log(), nginx.log()[-2000:]


def test_nginx_limits_bodies_and_enrolment_rate(collector, nginx) -> None:
    verify = str(nginx.cert)
    agents = _agents(collector, nginx.url, 1, verify=verify)
    machine_id, authorization = agents[0]
    big = {"padding": "x" * (1024 * 1024)}
    resp = requests.post(f"{nginx.url}/api/v1/reports", json=big, verify=verify, timeout=10,
                         headers={"Authorization": authorization})
    assert resp.status_code == 413
    assert resp.json()["error"] == "body_too_large" and resp.json()["field"] == "body"

    # Enrolment: the burst passes to the collector (which refuses the wrong token), then
    # the per-address limit answers 429 with Retry-After, in the collector's format.
    statuses = []
    with requests.Session() as session:
        for _ in range(90):
            resp = session.post(f"{nginx.url}/api/v1/enroll", verify=verify, timeout=10,
                                json={"token": "wrong", "machine_id": "0" * 32,
                                      "hostname": "PC-01"})
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                limited = resp
    assert statuses[:50] == [401] * 50, statuses
    assert statuses.count(429) >= 20, statuses
    assert limited.headers["Retry-After"] == "60"
    assert limited.json()["error"] == "rate_limited"
    # Reports are not rate limited: an agent still gets through.
    ok = requests.post(f"{nginx.url}/api/v1/reports", verify=verify, timeout=10,
                       json=make_report(machine_id=machine_id),
                       headers={"Authorization": authorization})
    assert ok.status_code == 202, ok.text


def test_nginx_answers_503_with_retry_after_when_the_collector_is_down(collector,
                                                                       nginx) -> None:
    """Last in this file: it stops the shared collector."""
    stop_collector(collector)
    resp = requests.get(f"{nginx.url}/api/v1/units", verify=str(nginx.cert), timeout=15)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "30"
    assert resp.json()["error"] == "collector_unavailable"
