"""Symantec (Broadcom) Endpoint Protection for Linux: /opt/Symantec/symantec_antivirus/sav
`info -a` (Auto-Protect: Enabled | Disabled | Malfunctioning), `info -d` (definitions,
"12/15/2019 rev. 2", month first), `info -p` (product version) — commands from
Broadcom's SEP for Linux documentation ("sav command reference") as used by public
administration scripts. Windows: registry public-opstate values (see
antivirus_windows.py), as Microsoft's Defender for Cloud assessment documents them.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from kiemke.agent.parsers.av_common import ParseError, VendorStatus

_DEFS = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})\s*(?:rev\.?\s*(\d+))?", re.IGNORECASE)
_VERSION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+){1,})\s*$", re.MULTILINE)


def parse_autoprotect(text: str) -> tuple[bool | None, str]:
    word = text.strip().split()[0].lower() if text.strip() else ""
    if word == "enabled":
        return True, "on"
    if word == "disabled":
        return False, "off"
    if word == "malfunctioning":
        return None, "unknown"
    raise ParseError(f"not `sav info -a` output: {text.strip()[:80]!r}")


def parse_definitions(text: str) -> tuple[str, datetime]:
    m = _DEFS.search(text)
    if not m:
        raise ParseError(f"not `sav info -d` output: {text.strip()[:80]!r}")
    month, day, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
    try:
        when = datetime(year, month, day, tzinfo=timezone.utc)
    except ValueError as exc:
        raise ParseError(f"`sav info -d` date {m.group(0)!r} is not a date") from exc
    return m.group(0).strip(), when


def parse_product_version(text: str) -> str:
    m = _VERSION.search(text)
    if not m:
        raise ParseError(f"not `sav info -p` output: {text.strip()[:80]!r}")
    return m.group(1)


def sep_status(autoprotect: str | None, definitions: str | None, product: str | None
               ) -> VendorStatus:
    status = VendorStatus(name="Symantec Endpoint Protection")
    if product is not None:
        status.version = parse_product_version(product)
    if definitions is not None:
        status.signatures_version, status.signatures_at = parse_definitions(definitions)
    if autoprotect is not None:
        status.enabled, status.state = parse_autoprotect(autoprotect)
    return status
