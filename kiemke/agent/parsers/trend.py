"""Trend Micro Deep Security Agent / Vision One server protection: `dsa_query -c
GetComponentInfo` prints "Component.AM.mode: on" when anti-malware is on (Microsoft's
Defender for Cloud assessment, learn.microsoft.com "Assessment checks for endpoint
detection and response", names exactly this check for dsa_query.cmd on Windows; the
Linux agent ships the same tool as /opt/ds_agent/dsa_query). Apex One (Windows) is read
from Security Center and its services.
"""

from __future__ import annotations

import re

from kiemke.agent.parsers.av_common import ParseError, VendorStatus

_LINE = re.compile(r"^\s*(Component\.[A-Za-z0-9_.]+)\s*:\s*(.*?)\s*$", re.MULTILINE)


def parse_component_info(text: str) -> dict[str, str]:
    values = {m.group(1).lower(): m.group(2) for m in _LINE.finditer(text)}
    if not values:
        raise ParseError(f"not `dsa_query -c GetComponentInfo` output: "
                         f"{text.strip()[:80]!r}")
    return values


def dsa_status(text: str) -> VendorStatus:
    values = parse_component_info(text)
    status = VendorStatus(name="Trend Micro Deep Security Agent")
    mode = (values.get("component.am.mode") or "").lower()
    if mode == "on":
        status.enabled, status.state = True, "on"
    elif mode in ("off", "not-capable", "not capable"):
        status.enabled, status.state = False, "off"
    status.version = values.get("component.am.version") or None
    return status
