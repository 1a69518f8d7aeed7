"""Section "security_monitoring": which known monitoring / EDR agents run here.

Plan 001 asks for "security-monitoring software" next to antivirus. The list of agents is
kiemke/agent/data/av_vendors.json ("monitoring") plus [security_monitoring] agents from
the agent config. Windows: service states (one Get-Service call). Linux: the process scan
shared with the antivirus collector, then files that show an installed but stopped agent.
"""

from __future__ import annotations

import os
from typing import Any

from kiemke.agent.collectors.antivirus import vendor_table
from kiemke.agent.collectors.base import Collector, CollectorError, Context, register
from kiemke.agent.parsers.av_vendors import Product, all_names

COLLECTOR = "security_monitoring"


def _agent(product: Product, running: bool | None, detected_by: str) -> dict[str, Any]:
    return {"name": product.name[:256], "vendor": product.vendor, "running": running,
            "detected_by": detected_by}


def collect_windows(agents: tuple[Product, ...]) -> dict[str, Any]:
    from kiemke.agent.windows import powershell

    wanted = all_names(agents, "win_services")
    try:
        rows = powershell.services(wanted)
    except CollectorError as exc:
        # Unknown, not absent: without the service list nothing can be said.
        return {"agents": [], "errors": [CollectorError(
            exc.kind, f"Windows services could not be listed: {exc.message}").entry(COLLECTOR)]}
    by_name = {str(r.get("Name", "")).lower(): r for r in rows}
    found = []
    for product in agents:
        hits = [by_name[s.lower()] for s in product.win_services if s.lower() in by_name]
        if hits:
            running = any(str(r.get("Status", "")).lower() == "running" for r in hits)
            found.append(_agent(product, running, "service"))
    return {"agents": found[:32]}


def collect_linux(agents: tuple[Product, ...], names: frozenset[str]) -> dict[str, Any]:
    from kiemke.agent.collectors.antivirus_linux import unit_active

    found = []
    for product in agents:
        if any(p.lower() in names for p in product.linux_processes):
            found.append(_agent(product, True, "process"))
            continue
        active = next((a for a in (unit_active(u) for u in product.linux_units)
                       if a is not None), None)
        if active:
            found.append(_agent(product, True, "service"))
        elif any(os.path.exists(f) for f in product.linux_files) or active is False:
            # Installed (its files are there) but not running: a fact the rules need.
            found.append(_agent(product, False, "file"))
    return {"agents": found[:32]}


@register
class SecurityMonitoringCollector(Collector):
    name = "security_monitoring"
    section = "security_monitoring"
    default_timeout = 10.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        agents = vendor_table(ctx).monitoring
        if ctx.platform == "windows":
            return collect_windows(agents)
        if ctx.platform == "linux":
            from kiemke.agent.collectors.antivirus_linux import process_names
            return collect_linux(agents, process_names(ctx.now))
        raise CollectorError("unsupported",
                             f"security monitoring facts are not collected on {ctx.platform}")
