"""Pure parsers of the network section: /proc/net/route and resolv.conf.

Captures in tests/fixtures/linux/network/ (sources in tests/fixtures/SOURCES.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kiemke.agent.collectors import network_linux
from kiemke.agent.parsers import proc_net_route, resolv_conf
from kiemke.agent.parsers.errors import ParseError

FIX = Path(__file__).parent / "fixtures" / "linux" / "network"


def read(name: str) -> str:
    return (FIX / name).read_text(encoding="utf-8")


def test_route_container_capture() -> None:
    text = read("proc-net-route-container.txt")
    assert proc_net_route.default_gateway(text) == {"address": "192.0.2.1", "interface": "eth0"}
    routes = proc_net_route.parse_routes(text)
    assert [(r.destination, r.mask, r.gateway) for r in routes] == [
        ("0.0.0.0", "0.0.0.0", "192.0.2.1"), ("192.0.2.0", "255.255.255.0", "0.0.0.0")]


def test_route_two_defaults_lowest_metric_wins_matches_ip_route() -> None:
    text = read("proc-net-route-two-defaults.txt")
    # `ip route show default` from the same namespace lists the route the kernel uses first.
    first = read("ip-route-default-two-defaults.txt").splitlines()[0].split()
    expected = {"address": first[2], "interface": first[4]}
    assert proc_net_route.default_gateway(text) == expected == \
        {"address": "192.168.1.1", "interface": "enp3s0"}
    # Order in the file does not matter, the metric does.
    lines = text.splitlines()
    swapped = "\n".join([lines[0], lines[2], lines[1], *lines[3:]])
    assert proc_net_route.default_gateway(swapped) == expected


def test_route_no_default() -> None:
    text = read("proc-net-route-no-default.txt")
    assert proc_net_route.default_gateway(text) is None
    assert len(proc_net_route.parse_routes(text)) == 3


def test_route_down_or_not_gateway_is_ignored() -> None:
    head = read("proc-net-route-container.txt").splitlines()[0]
    down = f"{head}\neth0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"
    assert proc_net_route.default_gateway(down) is None


@pytest.mark.parametrize("text", ["", "\n\n", "\x00\x01\x02garbage\xff",
                                  "Destination Gateway\n00000000 010200C0\n"])
def test_route_garbage_raises(text: str) -> None:
    with pytest.raises(ParseError):
        proc_net_route.default_gateway(text)


def test_route_truncated_rows_are_skipped() -> None:
    text = read("proc-net-route-two-defaults.txt")
    lines = text.splitlines()
    # The first default row is cut in the middle (a short read), a row has bad hex.
    cut = "\n".join([lines[0], lines[1][:20], lines[2].replace("01000A0A", "ZZ000A0A"),
                     *lines[3:]])
    assert proc_net_route.default_gateway(cut) is None
    cut2 = "\n".join([lines[0], lines[1][:20], *lines[2:]])
    assert proc_net_route.default_gateway(cut2) == {"address": "10.10.0.1",
                                                     "interface": "wlp2s0"}


def test_resolv_plain_file() -> None:
    servers = resolv_conf.parse_nameservers(read("resolv.conf-networkmanager"))
    # Comments dropped, duplicates once, order kept, IPv6 kept.
    assert servers == ["192.168.10.1", "8.8.8.8", "2001:4860:4860::8888"]
    assert resolv_conf.effective_servers(read("resolv.conf-networkmanager"), None) == \
        (servers, None)


def test_resolv_systemd_resolved_stub_uses_upstream() -> None:
    stub = read("resolv.conf-systemd-resolved-stub")
    assert resolv_conf.parse_nameservers(stub) == ["127.0.0.53"]
    servers, problem = resolv_conf.effective_servers(
        stub, read("resolv.conf-systemd-resolved-upstream"))
    assert servers == ["192.168.1.1", "203.113.131.1", "fe80::1%enp3s0"]
    assert problem is None


def test_resolv_stub_without_upstream_file_says_so() -> None:
    servers, problem = resolv_conf.effective_servers(read("resolv.conf-systemd-resolved-stub"),
                                                     None)
    assert servers == ["127.0.0.53"]
    assert problem is not None and "resolvectl status" in problem
    servers, problem = resolv_conf.effective_servers(
        read("resolv.conf-systemd-resolved-stub"), "# no servers yet\nsearch .\n")
    assert servers == ["127.0.0.53"] and "no upstream DNS server" in problem


@pytest.mark.parametrize("text", ["", "\x00\xff\xfe garbage", "nameserver\n",
                                  "nameserver not-an-ip\n", "nameserv 10.0.0.1\n",
                                  "search example.org\noptions ndots:2\n"])
def test_resolv_garbage_gives_no_servers(text: str) -> None:
    assert resolv_conf.parse_nameservers(text) == []


def test_resolv_truncated_keeps_complete_lines() -> None:
    text = read("resolv.conf-networkmanager")
    cut = text[:text.index("8.8.8.8") + 3]  # "nameserver 8.8" at the end: not an address
    assert resolv_conf.parse_nameservers(cut) == ["192.168.10.1"]


def test_resolv_bound_to_16() -> None:
    text = "".join(f"nameserver 10.0.0.{i}\n" for i in range(1, 40))
    assert len(resolv_conf.parse_nameservers(text)) == 16


def test_linux_dns_servers_follow_the_stub(tmp_path: Path) -> None:
    etc = tmp_path / "resolv.conf"
    run = tmp_path / "run-resolv.conf"
    etc.write_text(read("resolv.conf-systemd-resolved-stub"), encoding="utf-8")
    run.write_text(read("resolv.conf-systemd-resolved-upstream"), encoding="utf-8")
    errors: list[dict[str, str]] = []
    assert network_linux.dns_servers(errors, etc, run) == \
        ["192.168.1.1", "203.113.131.1", "fe80::1%enp3s0"]
    assert errors == []
    run.unlink()
    assert network_linux.dns_servers(errors, etc, run) == ["127.0.0.53"]
    assert errors[0]["kind"] == "failed" and "systemd-resolved" in errors[0]["message"]


def test_linux_dns_servers_missing_file_is_an_error_not_absence(tmp_path: Path) -> None:
    errors: list[dict[str, str]] = []
    assert network_linux.dns_servers(errors, tmp_path / "nope", tmp_path / "nope2") == []
    assert errors == [{"collector": "network", "kind": "not_found",
                       "message": f"{tmp_path / 'nope'} does not exist: no DNS server is "
                                  "configured"}]


def test_linux_gateway_garbage_route_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "route"
    bad.write_bytes(b"\x00\x00garbage")
    errors: list[dict[str, str]] = []
    network_linux.default_gateway(errors, bad)
    assert errors and f"cannot read {bad}" in errors[0]["message"]


def test_interface_kind_from_sysfs(tmp_path: Path) -> None:
    def dev(name: str, arp: int, *, device: bool, wireless: bool = False) -> None:
        d = tmp_path / name
        d.mkdir()
        (d / "type").write_text(f"{arp}\n")
        if device:
            (d / "device").mkdir()
        if wireless:
            (d / "phy80211").mkdir()

    dev("lo", 772, device=False)
    dev("enp3s0", 1, device=True)
    dev("wlp2s0", 1, device=True, wireless=True)
    dev("docker0", 1, device=False)
    dev("wwan0", 65534, device=True)
    kinds = {n: network_linux.interface_kind(n, tmp_path)
             for n in ("lo", "enp3s0", "wlp2s0", "docker0", "wwan0")}
    assert kinds == {"lo": "loopback", "enp3s0": "wired", "wlp2s0": "wireless",
                     "docker0": "virtual", "wwan0": "other"}
