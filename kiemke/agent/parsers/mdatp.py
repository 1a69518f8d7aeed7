"""Microsoft Defender for Endpoint on Linux: `mdatp health --output json`
(learn.microsoft.com, "Microsoft Defender for Endpoint on Linux: health" / mdatp CLI)."""

from __future__ import annotations

import json
from typing import Any

from kiemke.agent.parsers.av_common import ParseError, VendorStatus, from_epoch


def _value(field: Any) -> Any:
    # Managed settings are objects {"value": ..., "isManaged": ...}; older builds print bare values.
    return field.get("value") if isinstance(field, dict) else field


def parse_mdatp_health(text: str) -> VendorStatus:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"mdatp health output is not JSON: {exc}") from exc
    if not isinstance(data, dict) or "appVersion" not in data:
        raise ParseError("mdatp health output has no appVersion")
    passive = _value(data.get("passiveModeEnabled"))
    realtime = _value(data.get("realTimeProtectionEnabled"))
    if passive is True:
        state, enabled = "passive", False
    elif realtime is True:
        state, enabled = "on", True
    elif realtime is False:
        state, enabled = "off", False
    else:
        state, enabled = "unknown", None
    status = data.get("definitionsStatus")
    status_type = status.get("$type") if isinstance(status, dict) else status
    up_to_date = None
    if isinstance(status_type, str):
        up_to_date = status_type == "upToDate"
    expiry = from_epoch(data.get("productExpiration"))
    licensed = data.get("licensed") if isinstance(data.get("licensed"), bool) else None
    return VendorStatus(
        name="Microsoft Defender for Endpoint", version=str(data["appVersion"]),
        enabled=enabled, state=state, up_to_date=up_to_date,
        signatures_version=data.get("definitionsVersion") or None,
        signatures_at=from_epoch(data.get("definitionsUpdated")),
        licensed=licensed, licence_expiry=expiry.date() if expiry else None)
