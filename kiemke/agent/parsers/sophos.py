"""Sophos Anti-Virus for Linux (/opt/sophos-av): `savdstatus` and `savdstatus --version`.

Microsoft's Defender for Cloud endpoint-protection assessment (learn.microsoft.com,
"Assessment checks for endpoint detection and response") names these commands and the
status line "On-access scanning is running"; the version block ("Product version :",
"Virus data version :", "Released :") is the one `savscan --version` prints, as quoted
in the malice-plugins/sophos sources. The newer Sophos Protection for Linux
(/opt/sophos-spl) has no status command: it is detected by its processes only.
"""

from __future__ import annotations

import re
from datetime import datetime

from kiemke.agent.parsers.av_common import ParseError, VendorStatus, key_values, parse_datetime


def parse_savdstatus(text: str) -> tuple[bool, str]:
    """-> (enabled, state) from the one status sentence."""
    low = " ".join(text.lower().split())
    if "on-access scanning is running" in low:
        return True, "on"
    if ("on-access scanning is not running" in low or "is not running" in low
            or "inactive" in low):
        return False, "off"
    raise ParseError(f"not `savdstatus` output: {text.strip()[:80]!r}")


def parse_version(text: str) -> tuple[str, str | None, datetime | None]:
    """-> (product version, virus data version, release date of the virus data)."""
    info = key_values(text)
    product = info.get("product version")
    if not product:
        raise ParseError("`savdstatus --version` output has no 'Product version' line")
    released = info.get("released")
    when = parse_datetime(released) if released else None
    data = info.get("virus data version")
    if data:
        data = re.sub(r"\s+", " ", data)
    return product, data, when


def sophos_status(status_text: str | None, version_text: str) -> VendorStatus:
    product, data, released = parse_version(version_text)
    status = VendorStatus(name="Sophos Anti-Virus", version=product,
                          signatures_version=data, signatures_at=released)
    if status_text is not None:
        status.enabled, status.state = parse_savdstatus(status_text)
    return status
