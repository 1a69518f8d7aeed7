"""Network checks against a real network built from namespaces (see tests/netns.py).

The collector runs inside the client namespace as a separate process, with a config
whose probes name only addresses that exist inside the test's namespaces.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns import (
    COLLECTOR_NAME,
    COLLECTOR_PORT,
    INTERNET_HOST,
    INTERNET_NAME,
    LAN_CLIENT,
    LAN_GATEWAY,
    Topology,
    netns_problem,
)

pytestmark = pytest.mark.netns

PROBE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def _netns_ok() -> None:
    problem = netns_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem} (CI=true: network namespaces are required)", pytrace=False)
        pytest.skip(problem)


@pytest.fixture
def topo(_netns_ok: None) -> Iterator[Topology]:
    topology = Topology.create()
    try:
        yield topology
    finally:
        topology.close()


def config(server: str, *, gateway_check: str = f"tcp:{COLLECTOR_PORT}",
           internet: str = f"http://{INTERNET_HOST}/, tcp://{INTERNET_HOST}:80",
           dns_names: str = "", dns_direct: bool = True) -> str:
    # A lab network: the collector is plain http:// inside the namespaces.
    return (f"[agent]\nserver = {server}\nunit = Liên đoàn Lao động tỉnh Bắc Giang\n"
            "allow_insecure_http = true\n"
            f"[network]\ngateway_check = {gateway_check}\ninternet_probes = {internet}\n"
            f"dns_names = {dns_names}\ndns_direct = {str(dns_direct).lower()}\n"
            f"probe_timeout = {PROBE_TIMEOUT}\n")


def test_all_good(topo: Topology, tmp_path: Path) -> None:
    # The collector is given by name: the DNS check resolves it by default.
    section, wall = topo.collect(config(
        f"https://{COLLECTOR_NAME}:{COLLECTOR_PORT}",
        internet=f"http://{INTERNET_NAME}/, tcp://{INTERNET_HOST}:80"), tmp_path)
    print(f"all good: {wall:.2f} s")
    assert section["default_gateway"] == {"address": LAN_GATEWAY, "interface": "kc0"}
    assert section["dns_servers"] == [LAN_GATEWAY]
    kc0 = next(i for i in section["interfaces"] if i["name"] == "kc0")
    assert kc0["kind"] == "virtual" and kc0["up"] is True
    assert {"family": "ipv4", "address": LAN_CLIENT, "prefixlen": 24} in kc0["addresses"]
    checks = section["checks"]
    assert checks["gateway"]["ok"] is True
    assert checks["gateway"]["probes"][0]["target"] == f"{LAN_GATEWAY}:{COLLECTOR_PORT}"
    assert checks["dns"]["ok"] is True and checks["dns"]["error"] is None
    assert [(p["target"], p["ok"]) for p in checks["dns"]["probes"]] == [
        (COLLECTOR_NAME, True), (f"{COLLECTOR_NAME}@{LAN_GATEWAY}", True)]
    assert checks["internet"]["ok"] is True and checks["internet"]["error"] is None
    assert [p["ok"] for p in checks["internet"]["probes"]] == [True, True]
    assert checks["collector"]["ok"] is True
    for name in ("gateway", "dns", "internet", "collector"):
        assert checks[name]["latency_ms"] is not None and checks[name]["latency_ms"] >= 0


def test_dns_servers_are_asked_directly_only_with_dns_direct(topo: Topology,
                                                             tmp_path: Path) -> None:
    section, _ = topo.collect(config(f"https://{COLLECTOR_NAME}:{COLLECTOR_PORT}",
                                     dns_direct=False), tmp_path)
    dns = section["checks"]["dns"]
    assert dns["ok"] is True
    # Only the system resolver was used: no question went to 10.213.0.1 directly.
    assert [(p["target"], p["ok"]) for p in dns["probes"]] == [(COLLECTOR_NAME, True)]


def test_insecure_collector_url_is_reported_not_probed(topo: Topology, tmp_path: Path) -> None:
    text = config(f"http://{LAN_GATEWAY}:{COLLECTOR_PORT}").replace(
        "allow_insecure_http = true\n", "")
    collector = topo.collect(text, tmp_path)[0]["checks"]["collector"]
    assert collector["ok"] is False and collector["probes"] == []
    assert "reports are not sent to this collector" in collector["error"]
    assert "allow_insecure_http = true" in collector["error"]


def test_gateway_refused_port_still_proves_reachability(topo: Topology, tmp_path: Path) -> None:
    section, _ = topo.collect(config(f"http://{LAN_GATEWAY}:{COLLECTOR_PORT}",
                                     gateway_check="tcp:81"), tmp_path)
    gw = section["checks"]["gateway"]
    assert gw["ok"] is True
    assert "refused" in gw["probes"][0]["error"] and "reachable" in gw["probes"][0]["error"]


def test_icmp_gateway_check(topo: Topology, tmp_path: Path) -> None:
    section, _ = topo.collect(config(f"http://{LAN_GATEWAY}:{COLLECTOR_PORT}",
                                     gateway_check="icmp"), tmp_path)
    gw = section["checks"]["gateway"]
    assert gw["probes"][0]["method"] == "icmp"
    if "not installed" in (gw["probes"][0]["error"] or ""):
        pytest.fail("ping is missing: install iputils-ping (deploy/install-test-deps.sh)")
    assert gw["ok"] is True, gw


def test_gateway_unreachable(topo: Topology, tmp_path: Path) -> None:
    # The gateway stops answering on the LAN: its address is gone, ARP gets no reply.
    topo.run(topo.gateway, "ip", "addr", "flush", "dev", "kg0")
    section, wall = topo.collect(config(f"http://{LAN_GATEWAY}:{COLLECTOR_PORT}"), tmp_path)
    print(f"gateway unreachable: {wall:.2f} s")
    checks = section["checks"]
    assert section["default_gateway"]["address"] == LAN_GATEWAY  # configured, not answering
    assert checks["gateway"]["ok"] is False
    assert f"default gateway {LAN_GATEWAY} does not answer" in checks["gateway"]["error"]
    assert checks["internet"]["ok"] is False
    assert checks["collector"]["ok"] is False


def test_dns_broken(topo: Topology, tmp_path: Path) -> None:
    topo.stop("dns")
    section, _ = topo.collect(config(f"http://{LAN_GATEWAY}:{COLLECTOR_PORT}",
                                     dns_names=COLLECTOR_NAME), tmp_path)
    checks = section["checks"]
    assert checks["dns"]["ok"] is False
    assert f"cannot resolve {COLLECTOR_NAME}" in checks["dns"]["error"] \
        or f"no answer for {COLLECTOR_NAME}" in checks["dns"]["error"]
    assert f"DNS server {LAN_GATEWAY} does not answer" in checks["dns"]["error"]
    # Everything addressed by IP still works: the report pins the fault on DNS.
    assert checks["gateway"]["ok"] is True
    assert checks["internet"]["ok"] is True
    assert checks["collector"]["ok"] is True


def test_dns_unknown_name_is_nxdomain(topo: Topology, tmp_path: Path) -> None:
    section, _ = topo.collect(config(f"http://{LAN_GATEWAY}:{COLLECTOR_PORT}",
                                     dns_names="khong-ton-tai.test"), tmp_path)
    dns = section["checks"]["dns"]
    assert dns["ok"] is False
    assert "NXDOMAIN" in dns["probes"][1]["error"]


def test_internet_down_lan_up(topo: Topology, tmp_path: Path) -> None:
    topo.run(topo.gateway, "ip", "link", "set", "kg1", "down")
    section, _ = topo.collect(config(f"http://{COLLECTOR_NAME}:{COLLECTOR_PORT}"), tmp_path)
    checks = section["checks"]
    assert checks["internet"]["ok"] is False
    assert checks["internet"]["error"].startswith("no Internet probe answered")
    assert [p["ok"] for p in checks["internet"]["probes"]] == [False, False]
    assert checks["gateway"]["ok"] is True
    assert checks["dns"]["ok"] is True
    assert checks["collector"]["ok"] is True


def test_everything_down_is_bounded(topo: Topology, tmp_path: Path) -> None:
    # The client's only link loses its peer: nothing answers, every probe must give up.
    topo.run(topo.gateway, "ip", "link", "set", "kg0", "down")
    section, wall = topo.collect(config(f"http://{COLLECTOR_NAME}:{COLLECTOR_PORT}",
                                        internet=f"http://{INTERNET_NAME}/, "
                                                 f"https://{INTERNET_HOST}/, "
                                                 f"tcp://{INTERNET_HOST}:443"), tmp_path)
    print(f"everything down: {wall:.2f} s (budget {PROBE_TIMEOUT + 1:.1f} s + process start)")
    checks = section["checks"]
    assert [checks[k]["ok"] for k in ("gateway", "dns", "internet", "collector")] == \
        [False, False, False, False]
    assert all(p["ok"] is False for k in checks for p in checks[k]["probes"])
    assert wall < 10  # sanity bound only; the timing goal is in bench/
