"""DHCP leases on Linux -> the interface's `dhcp` facts.

Two formats:
- systemd-networkd's /run/systemd/netif/leases/<ifindex>, also written by NetworkManager's
  internal DHCP client as /var/lib/NetworkManager/internal-<uuid>-<iface>.lease:
  KEY=VALUE lines (ADDRESS, SERVER_ADDRESS, LIFETIME in seconds, ...). The lease was
  obtained when the file was written (its mtime).
- ISC dhclient's dhclient*.leases: `lease { interface "eth0"; option
  dhcp-server-identifier 192.168.1.1; expire 4 2026/11/26 10:00:00; }` blocks, times in
  UTC; the last block for an interface is the current lease.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from kiemke.agent.parsers.errors import ParseError

_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
_BLOCK = re.compile(r"lease\s*\{(?P<body>.*?)\}", re.DOTALL)
_INTERFACE = re.compile(r'^\s*interface\s+"(?P<v>[^"]+)"\s*;', re.MULTILINE)
_SERVER = re.compile(r"^\s*option\s+dhcp-server-identifier\s+(?P<v>[0-9a-fA-F.:]+)\s*;",
                     re.MULTILINE)
_EXPIRE = re.compile(r"^\s*expire\s+\d\s+(?P<v>\d{4}/\d{2}/\d{2}\s+\d{2}:\d{2}:\d{2})\s*;",
                     re.MULTILINE)


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def parse_networkd_lease(text: str, written: datetime | None = None) -> dict[str, Any]:
    """The `dhcp` facts from a networkd/NetworkManager lease file; `written` is its
    mtime (the moment the lease was obtained or renewed)."""
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not _KEY.match(key):
            raise ParseError(f"is not KEY=VALUE: {line[:80]!r}", source="DHCP lease file",
                             line=lineno)
        values[key] = value.strip()
    if "ADDRESS" not in values:
        raise ParseError("has no ADDRESS line", source="DHCP lease file")
    lifetime = values.get("LIFETIME", "")
    expires = written + timedelta(seconds=int(lifetime)) \
        if written is not None and lifetime.isdigit() else None
    return {"enabled": True, "server": values.get("SERVER_ADDRESS") or None,
            "lease_obtained": _iso(written), "lease_expires": _iso(expires)}


def parse_dhclient_leases(text: str, interface: str) -> dict[str, Any] | None:
    """The `dhcp` facts of `interface` from an ISC dhclient leases file; None when the
    file holds no lease for it."""
    if "lease" not in text and text.strip():
        raise ParseError("holds no lease block", source="dhclient leases file")
    found: dict[str, Any] | None = None
    for block in _BLOCK.finditer(text):
        body = block.group("body")
        name = _INTERFACE.search(body)
        if name is None or name.group("v") != interface:
            continue
        server = _SERVER.search(body)
        expire = _EXPIRE.search(body)
        expires = None
        if expire:
            try:
                expires = datetime.strptime(expire.group("v"), "%Y/%m/%d %H:%M:%S").replace(
                    tzinfo=timezone.utc)
            except ValueError:
                expires = None
        found = {"enabled": True, "server": server.group("v") if server else None,
                 "lease_obtained": None, "lease_expires": _iso(expires)}
    return found
