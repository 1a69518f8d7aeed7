"""Bitdefender Endpoint Security Tools for Linux: `bduitool get ps` (Bitdefender
GravityZone help, "bduitool command line"; capture from GLPI Agent resources).
Windows: HKLM/SOFTWARE/BitDefender/Install SurveyDataInfo (JSON with days_left)."""

from __future__ import annotations

import json
from datetime import date, timedelta

from kiemke.agent.parsers.av_common import ParseError, VendorStatus, key_values, parse_datetime


def parse_get_ps(text: str) -> VendorStatus:
    info = key_values(text)
    version = info.get("product version")
    if not version:
        raise ParseError("bduitool get ps output has no 'Product version' line")
    antimalware = (info.get("antimalware status") or "").lower()
    enabled = {"on": True, "off": False}.get(antimalware)
    new_content = (info.get("new security content available") or "").lower()
    up_to_date = {"no": True, "yes": False}.get(new_content)
    return VendorStatus(
        name="Bitdefender Endpoint Security Tools", version=version,
        enabled=enabled, state={True: "on", False: "off"}.get(enabled, "unknown"),  # type: ignore[arg-type]
        up_to_date=up_to_date,
        signatures_version=info.get("engines version"),
        signatures_at=parse_datetime(info.get("last security content update")))


def parse_survey_data(value: str, today: date) -> date | None:
    """SurveyDataInfo registry value -> licence expiry (today + days_left)."""
    try:
        data = json.loads(value)
        days = int(data["days_left"])
    except (ValueError, TypeError, KeyError):
        return None
    return today + timedelta(days=days)

