"""Security-monitoring agents on Linux: the process scan shared with the antivirus
collector, systemd units for entries ending in .service, files for installed but stopped
agents."""

from __future__ import annotations

import os
from typing import Any

from kiemke.agent.collectors.antivirus import vendor_table
from kiemke.agent.collectors.antivirus_linux import process_names, unit_active
from kiemke.agent.collectors.base import Context, PlatformReading
from kiemke.agent.collectors.security_monitoring import agent_entry
from kiemke.agent.parsers.av_vendors import Product


def agents_found(agents: tuple[Product, ...], names: frozenset[str]) -> list[dict[str, Any]]:
    found = []
    for product in agents:
        if any(p.lower() in names for p in product.linux_processes):
            found.append(agent_entry(product, True, "process"))
            continue
        active = next((a for a in (unit_active(u) for u in product.linux_units)
                       if a is not None), None)
        if active:
            found.append(agent_entry(product, True, "service"))
        elif any(os.path.exists(f) for f in product.linux_files) or active is False:
            # Installed (its files are there) but not running: a fact the rules need.
            found.append(agent_entry(product, False, "file"))
    return found


def read(ctx: Context) -> PlatformReading:
    agents = vendor_table(ctx).monitoring
    return PlatformReading(facts={"agents": agents_found(agents, process_names(ctx.now))})
