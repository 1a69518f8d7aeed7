"""SentinelOne Linux agent: `sentinelctl version` and `sentinelctl control status`
(SentinelOne Linux agent help; capture from GLPI Agent resources/linux/antivirus)."""

from __future__ import annotations

import re

from kiemke.agent.parsers.av_common import ParseError, VendorStatus


def parse_sentinelctl(text: str) -> VendorStatus:
    version = None
    m = re.search(r"^Agent version:\s*(\S+)", text, re.MULTILINE)
    if m:
        version = m.group(1)
    state_m = re.search(r"^Agent state\s+(\S+)", text, re.MULTILINE)
    if not version and not state_m:
        raise ParseError("sentinelctl output has neither 'Agent version' nor 'Agent state'")
    enabled = None
    if state_m:
        enabled = state_m.group(1).lower() == "enabled"
    return VendorStatus(name="SentinelOne", version=version, enabled=enabled,
                        state={True: "on", False: "off"}.get(enabled, "unknown"))  # type: ignore[arg-type]
