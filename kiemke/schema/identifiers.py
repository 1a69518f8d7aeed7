"""Identifier normalisation shared by the agent and the collector.

The agent derives machine ids from hardware serials; the collector matches the asset
register's serials and tags to the reports' (kiemke.collector.assets.identifiers). Both
must agree on what a placeholder serial is and how a serial is cleaned, so the one list
and the one function live here, beside the report schema, imported by both sides.
"""

from __future__ import annotations

# Serial placeholders seen in the field ("To be filled by O.E.M." and friends).
JUNK_SERIALS = frozenset({
    "to be filled by o.e.m.", "to be filled by oem", "default string", "system serial number",
    "chassis serial number", "not specified", "not applicable", "not available", "none",
    "null", "n/a", "na", "oem", "o.e.m.", "invalid", "unknown", "empty", "serial",
    "0123456789", "123456789", "1234567890", "1234567", "12345678", "system product name",
    "base board serial number", "not settable", "not present", "no asset tag", "tbd by oem",
    "<bad index>", "default", "sn", "xxxxxxxxxx",
})


def normalize_serial(raw: str | None) -> str | None:
    """The serial stripped, or None for a missing or placeholder one."""
    if not raw:
        return None
    spaced = " ".join(raw.split())
    text = spaced.strip(". ")  # Dell pads service tags with dots: ".2RJF153.CN..."
    if len(text) < 3 or spaced.lower() in JUNK_SERIALS or text.lower() in JUNK_SERIALS:
        return None
    compact = text.replace("-", "").replace(" ", "")
    if len(set(compact.lower())) <= 1:  # "0000000", "XXXXXXXX", "--------"
        return None
    return text
