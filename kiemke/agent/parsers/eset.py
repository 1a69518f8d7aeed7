"""ESET Endpoint Antivirus for Linux (/opt/eset/eea): `upd --version`, `upd --list-modules`,
`lic --status` (ESET online help, "ESET Endpoint Antivirus for Linux 12 — command line";
outputs as captured in GLPI Agent's resources/linux/antivirus/eea-12.0.13.0-*). Windows:
the license file %ProgramData%/ESET/ESET Security/License/license.lf."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

from kiemke.agent.parsers.av_common import ParseError, key_values, parse_date


def parse_upd_version(text: str) -> str:
    m = re.search(r"\(eea\)\s*([0-9][0-9.]*)", text)
    if not m:
        raise ParseError(f"not `upd --version` output: {text.strip()[:80]!r}")
    return m.group(1)


def parse_list_modules(text: str) -> tuple[str, datetime] | None:
    """Detection engine module (EM002): ("31832 (20250909)", its date) or None."""
    for line in text.splitlines():
        m = re.match(r"^EM002\s+([0-9.]+)\s*\((\d{8})\)", line.strip())
        if m:
            day = datetime.strptime(m.group(2), "%Y%m%d").replace(tzinfo=timezone.utc)
            return f"{m.group(1)} ({m.group(2)})", day
    return None


def parse_lic_status(text: str) -> tuple[bool | None, date | None]:
    info = key_values(text)
    if not info:
        raise ParseError("`lic --status` printed nothing readable")
    status = (info.get("status") or "").lower()
    licensed = None
    if status:
        licensed = status == "activated"
    return licensed, parse_date(info.get("license validity"))


def parse_license_lf(data: bytes) -> date | None:
    """EXPIRATION_DATE of ACTIVE_PRODUCT in license.lf (signed XML, usually UTF-16)."""
    # "replace": a file cut short can leave an odd number of UTF-16 bytes.
    text = data.decode("utf-16", "replace") if data[:2] in (b"\xff\xfe", b"\xfe\xff") \
        else data.decode("utf-8", "replace")
    m = re.search(r"<ACTIVE_PRODUCT\b[^>]*\bEXPIRATION_DATE=\"([^\"]+)\"", text)
    return parse_date(m.group(1)) if m else None
