"""Windows network facts: Win32_NetworkAdapterConfiguration (addresses, gateway, DNS)
joined with Win32_NetworkAdapter (link state, speed, physical or virtual)."""

from __future__ import annotations

from typing import Any

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.parsers import win_network
from kiemke.agent.windows import powershell

NAME = "network"


def read(ctx: Context) -> PlatformReading:
    errors: list[dict[str, str]] = []
    configs = powershell.cim_query("Win32_NetworkAdapterConfiguration",
                                   properties=win_network.CONFIG_PROPERTIES)
    try:
        adapters = powershell.cim_query("Win32_NetworkAdapter",
                                        properties=win_network.ADAPTER_PROPERTIES)
    except CollectorError as exc:
        # Addresses, gateway and DNS still come from the configuration class.
        adapters = []
        errors.append({"collector": NAME, "kind": exc.kind, "message":
                       f"Win32_NetworkAdapter: {exc.message}; link state and speed unknown"})
    facts: dict[str, Any] = {
        "interfaces": win_network.interfaces(configs, adapters),
        "default_gateway": win_network.default_gateway(configs, adapters),
        "dns_servers": win_network.dns_servers(configs),
    }
    return PlatformReading(facts=facts, errors=errors)
