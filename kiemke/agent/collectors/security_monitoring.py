"""Section "security_monitoring": which known monitoring / EDR agents run here.

Plan 001 asks for "security-monitoring software" next to antivirus. The list of agents is
kiemke/agent/data/av_vendors.json ("monitoring") plus [security_monitoring] agents from
the agent config. Windows: service states (one Get-Service call). Linux: the process scan
shared with the antivirus collector, then files that show an installed but stopped agent.
Platform code: security_monitoring_linux.py / security_monitoring_windows.py.
"""

from __future__ import annotations

from typing import Any

from kiemke.agent.collectors.base import Collector, Context, read_platform, register
from kiemke.agent.parsers.av_vendors import Product

COLLECTOR = "security_monitoring"
MAX_AGENTS = 32


def agent_entry(product: Product, running: bool | None, detected_by: str) -> dict[str, Any]:
    return {"name": product.name[:256], "vendor": product.vendor, "running": running,
            "detected_by": detected_by}


@register
class SecurityMonitoringCollector(Collector):
    name = "security_monitoring"
    section = "security_monitoring"
    default_timeout = 10.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        reading = read_platform("security_monitoring", ctx, "security monitoring facts")
        section: dict[str, Any] = {"agents": list(reading.facts["agents"])[:MAX_AGENTS]}
        if reading.errors:
            section["errors"] = reading.errors[:32]
        return section
