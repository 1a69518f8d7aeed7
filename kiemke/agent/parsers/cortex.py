"""Palo Alto Networks Cortex XDR agent for Linux: `/opt/traps/bin/cytool info`,
`cytool info query` and `cytool runtime query` (real outputs in GLPI Agent
resources/linux/antivirus/cortex-xdr-8.2.1.120305-*; GLPI Agent Linux/AntiVirus/Cortex.pm
reads the same three commands).

`runtime query` lists the agent's processes with their status; `pmd` is the protection
module daemon, so its status is the protection state the vendor tool reports. Cortex
content versions carry no date: signature age stays unknown.
"""

from __future__ import annotations

import re

from kiemke.agent.parsers.av_common import ParseError, VendorStatus

_INFO_VERSION = re.compile(r"^\s*Cortex XDR\b.*?\b([0-9]+(?:\.[0-9]+){2,})\s*$",
                           re.IGNORECASE | re.MULTILINE)
_CONTENT = re.compile(r"^\s*Content Version:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_ROW = re.compile(r"^\s*(\S+)\s+(\d+|-|N/A)\s+(\S+)\s+(\S+)(?:\s+(\S.*))?$")
PROTECTION_DAEMON = "pmd"


def parse_info(text: str) -> str:
    m = _INFO_VERSION.search(text)
    if not m:
        raise ParseError(f"not `cytool info` output: {text.strip()[:80]!r}")
    return m.group(1)


def parse_info_query(text: str) -> str:
    m = _CONTENT.search(text)
    if not m:
        raise ParseError("`cytool info query` output has no 'Content Version' line")
    return m.group(1)


def parse_runtime_query(text: str) -> dict[str, str]:
    """Process name -> status ("running", "stopped", ...), lower-cased."""
    rows: dict[str, str] = {}
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not re.match(r"^\s*Name\s+PID\s+User\s+Status", lines[0], re.IGNORECASE):
        raise ParseError("`cytool runtime query` output has no Name/PID/User/Status header")
    for line in lines[1:]:
        m = _ROW.match(line)
        if m:
            rows.setdefault(m.group(1).lower(), m.group(4).lower())
    return rows


def cortex_status(info: str, info_query: str | None, runtime: str | None) -> VendorStatus:
    status = VendorStatus(name="Cortex XDR", version=parse_info(info))
    if info_query is not None:
        status.signatures_version = parse_info_query(info_query)
    if runtime is not None:
        pmd = parse_runtime_query(runtime).get(PROTECTION_DAEMON)
        if pmd == "running":
            status.enabled, status.state = True, "on"
        elif pmd is not None:
            status.enabled, status.state = False, "off"
    return status
