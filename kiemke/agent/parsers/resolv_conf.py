"""resolv.conf: the DNS servers the system resolver asks.

When systemd-resolved manages DNS, /etc/resolv.conf names only its local stub
(127.0.0.53, or 127.0.0.54 for the proxy stub); the real upstream servers are in
/run/systemd/resolve/resolv.conf, which resolved writes in the same format.
"""

from __future__ import annotations

import ipaddress

RESOLV_CONF = "/etc/resolv.conf"
RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"
RESOLVED_STUBS = frozenset({"127.0.0.53", "127.0.0.54"})
MAX_SERVERS = 16  # the report's bound


def parse_nameservers(text: str) -> list[str]:
    """`nameserver ADDR` lines in order, duplicates and non-addresses dropped.

    glibc reads only the first three; all are listed because resolved and other
    resolvers use more, and the report should show what is configured.
    """
    servers: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        addr = fields[1]
        try:
            ipaddress.ip_address(addr.split("%", 1)[0])  # fe80::1%eth0 keeps its zone
        except ValueError:
            continue
        if addr not in servers:
            servers.append(addr)
    return servers[:MAX_SERVERS]


def uses_resolved_stub(servers: list[str]) -> bool:
    return bool(servers) and all(s in RESOLVED_STUBS for s in servers)


def effective_servers(resolv_text: str, upstream_text: str | None) -> tuple[list[str], str | None]:
    """(servers, problem): upstream servers when resolv.conf points at the resolved stub.

    `upstream_text` is /run/systemd/resolve/resolv.conf (None when absent). The problem
    text, when not None, says why the list may not be the real upstream servers.
    """
    servers = parse_nameservers(resolv_text)
    if not uses_resolved_stub(servers):
        return servers, None
    if upstream_text is None:
        return servers, (f"{RESOLV_CONF} points at the systemd-resolved stub but "
                         f"{RESOLVED_UPSTREAM} is missing, so the upstream DNS servers are "
                         "unknown; check `resolvectl status`")
    upstream = parse_nameservers(upstream_text)
    if not upstream:
        return servers, ("systemd-resolved has no upstream DNS server configured "
                         f"({RESOLVED_UPSTREAM} lists none); check `resolvectl status`")
    return upstream, None
