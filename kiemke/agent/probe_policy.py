"""An allow-list for every address the agent contacts (probes and the collector).

Off unless KIEMKE_PROBE_ALLOW is set (read at every check). Then every probe (TCP,
HTTP, ICMP, direct DNS query), every name the system resolver is asked to resolve, and
every request to the collector must stay inside the listed networks. Anything else is
refused before a packet is sent: the refusal raises `ProbeRefused`, is logged, and is
appended to the file named by KIEMKE_PROBE_GUARD_LOG, which the test session checks
after every test (tests/probe_guard.py). The demo and the
benchmarks set it too. docs/agent-network-probes.md, "Allow-list".

Value: networks or addresses, comma separated, e.g. `127.0.0.0/8, ::1, 10.213.0.0/24`.

Resolving a name: a name listed in the hosts file is answered without DNS and is
allowed; any other name would ask the DNS servers of resolv.conf, so it is allowed only
when every one of them is inside the list and is not a loopback address (a resolver on
loopback, such as systemd-resolved's 127.0.0.53, forwards the question elsewhere).
The addresses a name resolves to must be inside the list as well.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

ALLOW_ENV = "KIEMKE_PROBE_ALLOW"
GUARD_LOG_ENV = "KIEMKE_PROBE_GUARD_LOG"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

class ProbeRefused(Exception):
    """A destination outside the allow-list: nothing was sent."""


def parse_networks(text: str) -> tuple[Network, ...]:
    nets: list[Network] = []
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if item:
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError as exc:
                raise ValueError(f"{ALLOW_ENV}: {item!r} is not an address or network "
                                 "(use e.g. 127.0.0.0/8, ::1)") from exc
    return tuple(nets)


def allowed() -> tuple[Network, ...] | None:
    """The networks allowed now, or None when there is no allow-list (production)."""
    text = os.environ.get(ALLOW_ENV, "").strip()
    return parse_networks(text) if text else None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def _inside(addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
            nets: tuple[Network, ...]) -> bool:
    return any(addr.version == n.version and addr in n for n in nets)


def _refuse(what: str, why: str, nets: tuple[Network, ...]) -> ProbeRefused:
    listed = ", ".join(str(n) for n in nets)
    message = (f"kiemke probe guard: refused {what}: {why} (allowed: {ALLOW_ENV}={listed}). "
               "Nothing was sent.")
    log.error("%s", message)
    path = os.environ.get(GUARD_LOG_ENV)
    if path:
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                         f"pid {os.getpid()} {' '.join(sys.argv)[:300]}: {message}\n")
        except OSError:
            pass  # the raised error still fails the caller
    return ProbeRefused(message)


def hosts_file() -> Path:
    if sys.platform.startswith("win"):
        root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        return Path(root) / "System32" / "drivers" / "etc" / "hosts"
    return Path("/etc/hosts")


def hosts_file_names(path: Path | None = None) -> dict[str, list[str]]:
    """Name (lower case) -> addresses listed in the hosts file."""
    names: dict[str, list[str]] = {}
    try:
        text = (path or hosts_file()).read_text("utf-8", "replace")
    except OSError:
        return names
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and _address(fields[0]) is not None:
            for name in fields[1:]:
                names.setdefault(name.lower().rstrip("."), []).append(fields[0])
    return names


def resolv_conf_servers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    from kiemke.agent.parsers.resolv_conf import parse_nameservers

    try:
        return parse_nameservers(path.read_text("utf-8", "replace"))
    except OSError:
        return []


def resolves_locally(name: str) -> bool:
    """True when the system resolver answers `name` from the hosts file (no DNS)."""
    return name.lower().rstrip(".") in hosts_file_names()


def check_address(address: str, what: str) -> None:
    """Refuse an IP address outside the allow-list (no-op without one)."""
    nets = allowed()
    if nets is None:
        return
    addr = _address(address)
    if addr is None:
        raise _refuse(what, f"{address!r} is not an IP address", nets)
    if not _inside(addr, nets):
        raise _refuse(what, f"{address} is not in the allowed networks", nets)


def check_resolution(name: str, what: str) -> None:
    """Refuse resolving `name` when that would ask a DNS server outside the list."""
    nets = allowed()
    if nets is None or _address(name) is not None:
        return
    try:
        name.encode("idna")
    except UnicodeError:
        return  # not a host name: getaddrinfo refuses it before asking anyone
    listed = hosts_file_names().get(name.lower().rstrip("."))
    if listed:
        for addr in listed:
            check_address(addr, f"{what} ({name} is {addr} in {hosts_file()})")
        return
    if sys.platform.startswith("win"):
        raise _refuse(what, f"resolving {name} would ask the DNS servers of the network "
                      "adapters; only names in the hosts file are allowed", nets)
    servers = resolv_conf_servers()
    bad = [s for s in servers if (a := _address(s)) is None or a.is_loopback
           or not _inside(a, nets)]
    if not servers or bad:
        asked = ", ".join(bad) or "(no nameserver in /etc/resolv.conf: glibc asks 127.0.0.1)"
        raise _refuse(what, f"resolving {name} would ask the DNS server(s) {asked}, not in "
                      "the allowed networks (a name outside the hosts file needs every DNS "
                      "server inside them, and not on loopback)", nets)


def check_host(host: str, what: str) -> None:
    """Refuse a host (address or name) unless it and every address it has are allowed.

    A name is resolved here (after check_resolution) so its addresses can be checked
    before the caller connects.
    """
    nets = allowed()
    if nets is None:
        return
    if _address(host) is not None:
        check_address(host, what)
        return
    check_resolution(host, what)
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return  # it does not resolve: the caller's own attempt fails the same way, sends nothing
    for info in infos:
        check_address(str(info[4][0]), f"{what} ({host} is {info[4][0]})")
