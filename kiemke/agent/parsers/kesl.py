"""Kaspersky Endpoint Security for Linux: `kesl-control --app-info` (Kaspersky online
help, KES for Linux 12.0, article 246692 "Viewing application information"). Dates are
printed in UTC."""

from __future__ import annotations

from datetime import datetime, timezone

from kiemke.agent.parsers.av_common import (
    ParseError,
    VendorStatus,
    key_values,
    parse_date,
    parse_datetime,
)


def parse_app_info(text: str, now: datetime | None = None) -> VendorStatus:
    info = key_values(text)
    version = info.get("version")
    if not version:
        raise ParseError("kesl-control --app-info output has no Version line")
    expiry = parse_date(info.get("license expiration date"))
    lic_info = (info.get("license information") or "").lower()
    licensed: bool | None = None
    if expiry is not None:
        today = (now or datetime.now(timezone.utc)).date()
        licensed = expiry >= today
    elif "no key" in lic_info or "not installed" in lic_info or "expired" in lic_info:
        licensed = False
    # "File Threat Protection: Started | Stopped | Not running": the on-access component.
    ftp = (info.get("file threat protection") or "").lower()
    state = "on" if ftp == "started" else ("off" if ftp in ("stopped", "not running") else None)
    return VendorStatus(
        name=info.get("name") or "Kaspersky Endpoint Security for Linux",
        version=version.split()[0], state=state,
        enabled={"on": True, "off": False}.get(state or ""),
        signatures_at=parse_datetime(info.get("last release date of databases")),
        licensed=licensed, licence_expiry=expiry)
