"""SentinelOne Linux agent: `sentinelctl version` and `sentinelctl control status`
(capture from GLPI Agent resources/linux/antivirus/sentinelone-30.1.1.10; the
"Agent state      Enabled" table and "Agent version: X" lines as shown in public
installation guides for agent 23.x-25.x).

Builds differ: some print "Agent version: X", others "Agent version X", a bare
"Version: X" or "SentinelOne X"; the state is "Agent state      Enabled", "Agent state:
Disabled", the status tree of the 23.x/24.x builds ("Protection: enabled", "Agent
Operational State: enabled"; GLPI Agent resources/macos/antivirus/sentinelone-epp-24.1.2.7444-*)
or only "Agent is running" / "Agent is not running". The parser takes any of them and
raises ParseError only when the text says nothing about the agent at all.
"""

from __future__ import annotations

import re

from kiemke.agent.parsers.av_common import ParseError, VendorStatus

_VERSION = re.compile(r"^\s*(?:(?:Agent\s+)?version\s*:?|SentinelOne)\s+v?"
                      r"([0-9][0-9A-Za-z.\-_]*)\s*$", re.IGNORECASE | re.MULTILINE)
# "Protection: enabled" (what protects) is preferred to the agent's operational state.
_STATE = re.compile(r"^\s*(?:Protection|Agent\s+state|Agent\s+Operational\s+State)\s*:?\s+(\S+)",
                    re.IGNORECASE | re.MULTILINE)
_RUNNING = re.compile(r"^\s*Agent\s+is\s+(not\s+)?running", re.IGNORECASE | re.MULTILINE)
_STATES = {"enabled": True, "disabled": False}


def parse_sentinelctl(text: str) -> VendorStatus:
    """Either command's output (or both concatenated) -> version and agent state."""
    version_m = _VERSION.search(text)
    states = {m.group(0).split(":")[0].strip().lower().split()[0]: m for m in _STATE.finditer(text)}
    state_m = states.get("protection") or next(iter(states.values()), None)
    running_m = _RUNNING.search(text)
    if not version_m and not state_m and not running_m:
        raise ParseError("sentinelctl output has no agent version and no agent state")
    enabled: bool | None = None
    if state_m:
        enabled = _STATES.get(state_m.group(1).strip().lower())
    elif running_m and running_m.group(1):
        enabled = False  # "Agent is not running": nothing protects
    # "Agent is running" alone says nothing about protection (it may be disabled).
    state = {True: "on", False: "off"}.get(enabled, "unknown")  # type: ignore[arg-type]
    return VendorStatus(name="SentinelOne", version=version_m.group(1) if version_m else None,
                        enabled=enabled, state=state)
