"""CrowdStrike Falcon sensor for Linux: `/opt/CrowdStrike/falconctl -g --version
--rfm-state` (output forms from CrowdStrike's Linux sensor deployment guides as quoted in
public scripts, Red Hat insights-core `parsers/falconctl.py` test data and the macadmins
osquery-extension crowdstrike_falcon tests):

    version = 7.29.18202.0
    rfm-state=false.
    cid="79391c24...", aid="f3edc954...", version = 7.29.18202.0
    rfm-state is not set,

RFM (Reduced Functionality Mode, e.g. on an unsupported kernel) means the sensor does
not prevent: the product is reported off. Falcon has no local signatures or licence
facts (cloud-managed): those stay unknown.
"""

from __future__ import annotations

import re

from kiemke.agent.parsers.av_common import ParseError, VendorStatus

_PAIR = re.compile(r'^([a-z][a-z-]*)\s*=\s*"?([^"]*?)"?$', re.IGNORECASE)
_UNSET = re.compile(r"^([a-z][a-z-]*) is not set$", re.IGNORECASE)


def parse_falconctl(text: str) -> dict[str, str | None]:
    """Lower-cased key -> value (None for "X is not set")."""
    out: dict[str, str | None] = {}
    for piece in re.split(r"[,\n]", text):
        piece = piece.strip().rstrip(".").strip()
        m = _PAIR.match(piece)
        if m:
            out.setdefault(m.group(1).lower(), m.group(2).strip() or None)
            continue
        m = _UNSET.match(piece)
        if m:
            out.setdefault(m.group(1).lower(), None)
    if "version" not in out and "rfm-state" not in out:
        raise ParseError(f"not `falconctl -g --version --rfm-state` output: "
                         f"{text.strip()[:80]!r}")
    return out


def falcon_status(text: str, sensor_running: bool | None) -> VendorStatus:
    values = parse_falconctl(text)
    rfm = {"true": True, "false": False}.get((values.get("rfm-state") or "").lower())
    status = VendorStatus(name="CrowdStrike Falcon", version=values.get("version"))
    if rfm is True or sensor_running is False:
        status.enabled, status.state = False, "off"
    elif rfm is False and sensor_running:
        status.enabled, status.state = True, "on"
    return status
