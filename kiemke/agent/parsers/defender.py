"""Microsoft Defender Antivirus on Windows: root/Microsoft/Windows/Defender
MSFT_MpComputerStatus (documented at learn.microsoft.com, "MSFT_MpComputerStatus class")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kiemke.agent.parsers.av_common import parse_datetime

MP_PROPERTIES = ("AMServiceEnabled", "AntivirusEnabled", "RealTimeProtectionEnabled",
                 "AMRunningMode", "AntivirusSignatureLastUpdated", "AntivirusSignatureAge",
                 "AntivirusSignatureVersion", "AMProductVersion")


@dataclass(frozen=True)
class DefenderStatus:
    version: str | None
    running_mode: str | None
    state: str  # on | off | passive | unknown
    enabled: bool | None
    signatures_version: str | None
    signatures_at: datetime | None
    signature_age_days: int | None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int):
        return bool(value)
    return None


def _version(value: Any) -> str | None:
    """"0.0.0.0" is what Defender prints when it has never loaded that component."""
    text = str(value).strip() if value is not None else ""
    return text if text and text.strip("0.") else None


def parse_mp_computer_status(row: dict[str, Any]) -> DefenderStatus:
    service = _bool(row.get("AMServiceEnabled"))
    antivirus = _bool(row.get("AntivirusEnabled"))
    realtime = _bool(row.get("RealTimeProtectionEnabled"))
    mode = row.get("AMRunningMode")
    mode = str(mode).strip() if mode else None
    lowered = (mode or "").lower()
    enabled: bool | None
    if "passive" in lowered or "edr block" in lowered:
        # Passive / SxS passive / EDR block mode: another AV is primary, Defender does
        # not protect in real time, so it is not the machine's enabled antivirus.
        state, enabled = "passive", False
    elif lowered == "not running" or service is False or antivirus is False:
        state, enabled = "off", False
    elif service and antivirus:
        enabled = bool(realtime) if realtime is not None else None
        state = "on" if enabled else ("off" if enabled is False else "unknown")
    else:
        state, enabled = "unknown", None
    raw_at = row.get("AntivirusSignatureLastUpdated")
    signatures_at = parse_datetime(str(raw_at)) if raw_at else None
    age = row.get("AntivirusSignatureAge")
    try:
        age_int = int(age) if age is not None else None
    except (TypeError, ValueError):
        age_int = None
    if age_int is not None and (age_int < 0 or age_int >= 65535):
        age_int = None  # 65535: never updated
    version = _version(row.get("AntivirusSignatureVersion"))
    return DefenderStatus(
        version=_version(row.get("AMProductVersion")),
        running_mode=mode, state=state, enabled=enabled,
        signatures_version=version,
        signatures_at=signatures_at, signature_age_days=age_int)
