"""/proc/net/route: the kernel's IPv4 routing table, as text.

Columns are tab-separated with a header line; addresses are little-endian hex
(`010200C0` is 192.0.2.1). The default route has Destination and Mask 00000000 and the
RTF_GATEWAY flag; the lowest metric wins, as in the kernel's own choice.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from kiemke.agent.parsers.errors import ParseError

RTF_UP = 0x0001
RTF_GATEWAY = 0x0002
ANY = "0.0.0.0"  # noqa: S104 - the default route's destination, not a bind address
_NEEDED = ("Iface", "Destination", "Gateway", "Flags", "Metric", "Mask")


@dataclass(frozen=True)
class Route:
    interface: str
    destination: str
    gateway: str
    flags: int
    metric: int
    mask: str


def _hex_ip(value: str) -> str:
    if len(value) != 8:
        raise ValueError(value)
    return socket.inet_ntoa(struct.pack("<I", int(value, 16)))


def parse_routes(text: str) -> list[Route]:
    """All well-formed rows. Malformed rows (truncated reads) are skipped; a missing or
    wrong header raises ParseError because then nothing in the text can be trusted."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ParseError("is empty (no header line)", source="/proc/net/route")
    header = lines[0].split()
    if any(col not in header for col in _NEEDED):
        raise ParseError(f"has an unexpected header {lines[0].strip()[:80]!r}",
                         source="/proc/net/route")
    idx = {col: header.index(col) for col in _NEEDED}
    routes: list[Route] = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < len(header) - 2 or len(fields) <= max(idx.values()):
            continue
        try:
            routes.append(Route(
                interface=fields[idx["Iface"]],
                destination=_hex_ip(fields[idx["Destination"]]),
                gateway=_hex_ip(fields[idx["Gateway"]]),
                flags=int(fields[idx["Flags"]], 16),
                metric=int(fields[idx["Metric"]]),
                mask=_hex_ip(fields[idx["Mask"]]),
            ))
        except ValueError:
            continue
    return routes


def default_gateway(text: str) -> dict[str, str] | None:
    """{"address", "interface"} of the active IPv4 default route, None when there is none."""
    candidates = [r for r in parse_routes(text)
                  if r.destination == ANY and r.mask == ANY
                  and r.flags & RTF_UP and r.flags & RTF_GATEWAY]
    if not candidates:
        return None
    best = min(candidates, key=lambda r: r.metric)
    return {"address": best.gateway, "interface": best.interface}
