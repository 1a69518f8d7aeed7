"""Network section on this machine (checked against iproute2 and resolv.conf) and the
active checks against real servers on loopback. No traffic leaves 127.0.0.1 here: the
checks are configured off or aimed at loopback; tests/test_netns_network.py covers real
routing inside network namespaces."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from netns import serve_dns

from kiemke.agent import probes
from kiemke.agent.collectors.base import Context
from kiemke.agent.collectors.network import NetworkCollector, run_checks, server_endpoint
from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers import resolv_conf
from kiemke.schema import load_schema

UNIT = "Liên đoàn Lao động tỉnh Bắc Giang"


def network_schema() -> dict[str, Any]:
    schema = load_schema()
    return {**schema["properties"]["network"], "$defs": schema["$defs"]}


def quiet_config(**kw: Any) -> AgentConfig:
    """No server, no probes: collecting sends nothing anywhere."""
    return AgentConfig(server=None, unit=UNIT, gateway_check="off", internet_probes=[],
                       dns_names=[], check_collector=True, **kw)


@pytest.fixture(scope="module")
def local_section(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = quiet_config()
    return NetworkCollector().collect(Context(config=cfg,
                                              state_dir=tmp_path_factory.mktemp("state")))


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


# ------------------------------------------------------------------ this machine's facts

def test_local_section_matches_schema(local_section: dict[str, Any]) -> None:
    jsonschema.validate(local_section, network_schema())
    assert [local_section["checks"][k]["ok"] for k in ("gateway", "dns", "internet",
                                                       "collector")] == [None] * 4
    assert all(local_section["checks"][k]["probes"] == [] for k in local_section["checks"])


def test_interfaces_match_ip_link(local_section: dict[str, Any]) -> None:
    expected: dict[str, tuple[str | None, bool]] = {}
    for line in ip("-o", "link").splitlines():
        # "2: eth0@if5: <BROADCAST,...,UP,LOWER_UP> ... link/ether 02:.. brd ..."
        name = line.split(":", 2)[1].strip().split("@", 1)[0]
        flags = line.split("<", 1)[1].split(">", 1)[0].split(",")
        fields = line.split()
        mac = fields[fields.index("link/ether") + 1] if "link/ether" in fields else None
        expected[name] = (mac, "UP" in flags)
    got = {i["name"]: (i["mac"], i["up"]) for i in local_section["interfaces"]}
    assert got == expected
    kinds = {i["name"]: i["kind"] for i in local_section["interfaces"]}
    assert kinds["lo"] == "loopback"


def test_addresses_match_ip_addr(local_section: dict[str, Any]) -> None:
    for iface in local_section["interfaces"]:
        out = ip("-o", "-4", "addr", "show", "dev", iface["name"])
        want = sorted(f.split()[3] for f in out.splitlines())
        have = sorted(f"{a['address']}/{a['prefixlen']}" for a in iface["addresses"]
                      if a["family"] == "ipv4")
        assert have == want, iface["name"]


def test_default_gateway_matches_ip_route(local_section: dict[str, Any]) -> None:
    out = ip("-4", "route", "show", "default").split()
    if not out:
        assert local_section["default_gateway"] is None or ":" in \
            local_section["default_gateway"]["address"]
        return
    assert local_section["default_gateway"] == {"address": out[out.index("via") + 1],
                                                "interface": out[out.index("dev") + 1]}


def test_dns_servers_match_resolv_conf(local_section: dict[str, Any]) -> None:
    servers: list[str] = []
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
    if servers and all(s in resolv_conf.RESOLVED_STUBS for s in servers) \
            and Path(resolv_conf.RESOLVED_UPSTREAM).exists():
        servers = [ln.split()[1] for ln in Path(resolv_conf.RESOLVED_UPSTREAM).read_text()
                   .splitlines() if ln.startswith("nameserver ")]
    assert local_section["dns_servers"] == list(dict.fromkeys(servers))[:16]


# ------------------------------------------------------------------ probes on loopback

class _Handler(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self.send_response(503 if self.path.startswith("/proxy-error") else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    zone = {"kiemke.ldld-bacgiang.test": "127.0.0.1"}
    threading.Thread(target=serve_dns, args=("", 0, zone, sock, False), daemon=True).start()
    yield sock.getsockname()[1]
    sock.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tcp_probe(http_port: int) -> None:
    good = probes.tcp("127.0.0.1", http_port, 1.0)
    assert good.ok and good.latency_ms is not None and good.answers == ("127.0.0.1",)
    port = closed_port()
    refused = probes.tcp("127.0.0.1", port, 1.0)
    assert not refused.ok and f"nothing listens on port {port}" in refused.error
    reach = probes.tcp("127.0.0.1", port, 1.0, refused_is_reachable=True)
    assert reach.ok and "reachable" in reach.error


def test_http_probe(http_port: int) -> None:
    assert probes.http(f"http://127.0.0.1:{http_port}/", 1.0).ok
    bad = probes.http(f"http://127.0.0.1:{http_port}/proxy-error", 1.0)
    assert not bad.ok and bad.error == "HTTP 503 from the server or a proxy"
    tls = probes.http(f"https://127.0.0.1:{http_port}/", 1.0)
    assert not tls.ok and tls.method == "http"
    assert probes.http("ftp://example.test/", 1.0).error == "not an http:// or https:// URL"


def test_dns_query_server(dns_port: int) -> None:
    ok = probes.query_server("127.0.0.1", "kiemke.ldld-bacgiang.test", 1.0, port=dns_port)
    assert ok.ok and ok.answers == ("127.0.0.1",)
    assert ok.target == "kiemke.ldld-bacgiang.test@127.0.0.1"
    nx = probes.query_server("127.0.0.1", "khong-co.test", 1.0, port=dns_port)
    assert not nx.ok and "NXDOMAIN" in nx.error
    dead = probes.query_server("127.0.0.1", "kiemke.ldld-bacgiang.test", 1.0,
                               port=closed_udp_port())
    assert not dead.ok and "does not answer" in dead.error


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dns_silent_server_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        start = time.monotonic()
        p = probes.query_server("127.0.0.1", "a.test", 0.3, port=silent.getsockname()[1])
        assert not p.ok and "timed out" in p.error
        assert time.monotonic() - start < 5


def test_dns_parse_rejects_bad_answers() -> None:
    q = probes.build_query("a.test", 7)
    with pytest.raises(probes.DnsError):
        probes.parse_response(q[:5], 7)
    with pytest.raises(probes.DnsError, match="does not match"):
        probes.parse_response(q, 7)  # a query is not an answer (QR bit clear)
    with pytest.raises(probes.DnsError, match="not a valid host name"):
        probes.build_query("a..test", 1)


def test_system_resolver() -> None:
    assert probes.resolve_system("localhost", 2.0).ok
    bad = probes.resolve_system("khong-hop-le..", 2.0)
    assert not bad.ok and "cannot resolve" in bad.error


def test_run_all_bounds_a_hung_probe() -> None:
    def hang() -> probes.Probe:
        time.sleep(3)
        return probes.Probe("x", "tcp", True)

    fb = probes.Probe("x", "tcp", False, None, "no answer within 0.2 s")
    start = time.monotonic()
    out = probes.run_all([hang, lambda: probes.Probe("y", "tcp", True)],
                         [fb, fb], 0.2)
    assert time.monotonic() - start < 2
    assert [p.ok for p in out] == [False, True] and out[0].error == "no answer within 0.2 s"


# ------------------------------------------------------------------ checks on loopback

def test_run_checks_all_configured(http_port: int) -> None:
    cfg = AgentConfig(server=f"http://127.0.0.1:{http_port}", unit=UNIT,
                      gateway_check=f"tcp:{http_port}", dns_names=["localhost"],
                      internet_probes=[f"http://127.0.0.1:{http_port}/",
                                       f"tcp://127.0.0.1:{closed_port()}", "gopher://x"],
                      probe_timeout=1.0)
    checks = run_checks(cfg, {"address": "127.0.0.1", "interface": "lo"}, [])
    jsonschema.validate({"checks": checks}, network_schema())
    assert checks["gateway"]["ok"] is True
    assert checks["collector"]["ok"] is True
    assert checks["dns"]["ok"] is True and checks["dns"]["probes"][0]["target"] == "localhost"
    assert checks["internet"]["ok"] is True  # one working path is enough
    assert [p["ok"] for p in checks["internet"]["probes"]] == [True, False]
    assert "gopher://x" in checks["internet"]["error"]


def test_run_checks_defaults_and_errors() -> None:
    cfg = AgentConfig(server=None, gateway_check="tcp:abc")
    checks = run_checks(cfg, None, [])
    assert checks["gateway"]["ok"] is None and "tcp:PORT" in checks["gateway"]["error"]
    assert checks["collector"] == {"ok": None, "latency_ms": None, "probes": [],
                                   "error": "no collector configured ([agent] server)"}
    assert checks["internet"]["error"] == \
        "no Internet probe configured (set [network] internet_probes)"
    no_gw = run_checks(AgentConfig(gateway_check="icmp"), None, [])["gateway"]
    assert no_gw["ok"] is False and no_gw["error"] == "this machine has no default gateway"


def test_collector_down_is_reported(http_port: int) -> None:
    port = closed_port()
    cfg = AgentConfig(server=f"https://127.0.0.1:{port}", probe_timeout=1.0)
    c = run_checks(cfg, None, [])["collector"]
    assert c["ok"] is False and f"nothing listens on port {port}" in c["error"]


def test_internet_inferred_only_from_a_public_collector() -> None:
    from kiemke.agent.collectors.network import _internet_check

    public = probes.Probe("kiemke.bacgiang.gov.vn:443", "tcp", True, 12.5,
                          answers=("203.113.131.10",))
    lan = probes.Probe("kiemke.lan:443", "tcp", True, 1.0, answers=("192.168.1.5",))
    down = probes.Probe("kiemke.bacgiang.gov.vn:443", "tcp", False, None, "no answer")
    inferred = _internet_check([], [], [public])
    assert inferred["ok"] is True and inferred["latency_ms"] == 12.5
    assert "203.113.131.10" in inferred["error"]
    assert _internet_check([], [], [lan])["ok"] is None
    assert _internet_check([], [], [down])["ok"] is None


def test_default_dns_name_is_the_collector_host() -> None:
    assert server_endpoint("https://kiemke.bacgiang.gov.vn") == ("kiemke.bacgiang.gov.vn", 443)
    assert server_endpoint("http://[::1]:8080/") == ("::1", 8080)
    assert server_endpoint("http://host:notaport") is None
    cfg = AgentConfig(server="http://localhost:9", check_collector=False, probe_timeout=1.0)
    checks = run_checks(cfg, None, [])
    assert checks["dns"]["ok"] is True
    assert [p["target"] for p in checks["dns"]["probes"]] == ["localhost"]
    assert checks["collector"]["ok"] is None
