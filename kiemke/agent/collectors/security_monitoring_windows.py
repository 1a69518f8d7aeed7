"""Security-monitoring agents on Windows: one Get-Service call for every known service
name. Without the service list nothing can be said: no agents, and an error (unknown,
not absent)."""

from __future__ import annotations

from kiemke.agent.collectors.antivirus import vendor_table
from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.collectors.security_monitoring import COLLECTOR, agent_entry
from kiemke.agent.parsers.av_vendors import all_names
from kiemke.agent.windows import powershell


def read(ctx: Context) -> PlatformReading:
    agents = vendor_table(ctx).monitoring
    try:
        rows = powershell.services(all_names(agents, "win_services"))
    except CollectorError as exc:
        return PlatformReading(facts={"agents": []}, errors=[CollectorError(
            exc.kind, f"Windows services could not be listed: {exc.message}").entry(COLLECTOR)])
    by_name = {str(r.get("Name", "")).lower(): r for r in rows}
    found = []
    for product in agents:
        hits = [by_name[s.lower()] for s in product.win_services if s.lower() in by_name]
        if hits:
            running = any(str(r.get("Status", "")).lower() == "running" for r in hits)
            found.append(agent_entry(product, running, "service"))
    return PlatformReading(facts={"agents": found})
