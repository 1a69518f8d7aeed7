"""Normalised identifiers for matching register rows to machines.

The same functions run on the register (CSV) and on the agents' reports, so that
" 7xk2p53 " in Excel matches "7XK2P53" from the firmware. Placeholder serials and tags
("To be filled by O.E.M.", "Default string", ...) never match anything: the agent's own
list of placeholders (kiemke.schema.identifiers) is the single source for them.
"""

from __future__ import annotations

from typing import Any

from kiemke.schema.identifiers import JUNK_SERIALS, normalize_serial


def serial_key(raw: str | None) -> str | None:
    """Upper-case serial without inner blanks, or None for a missing or placeholder one."""
    text = normalize_serial(raw)
    return "".join(text.split()).upper() if text else None


def tag_key(raw: str | None) -> str | None:
    """Case-folded asset tag with blanks collapsed, or None for a missing or placeholder one."""
    if not raw:
        return None
    text = " ".join(str(raw).split())
    if len(text) < 2 or text.casefold() in JUNK_SERIALS:
        return None
    return text.casefold()


def host_key(raw: str | None) -> str | None:
    """Short host name, case-folded: "PC-KeToan-01.ldld.local" -> "pc-ketoan-01"."""
    if not raw:
        return None
    text = str(raw).strip().split(".", 1)[0].strip()
    return text.casefold() or None


def report_keys(report: dict[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    """(serial_key, tag_key, host_key) of a v1 report."""
    report = report or {}
    identity = report.get("identity") or {}
    hardware = report.get("hardware") or {}
    return (serial_key(hardware.get("serial")), tag_key(identity.get("asset_tag")),
            host_key(identity.get("hostname")))
