"""Windows network facts from real WMI captures (GLPI Agent resources, see
tests/fixtures/SOURCES.md) and CIM JSON built from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from kiemke.agent.collectors import network_windows
from kiemke.agent.collectors.base import Context
from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers import win_network
from kiemke.agent.parsers.wmi import parse_wmic_list
from kiemke.schema import load_schema

FIX = Path(__file__).parent / "fixtures" / "windows" / "network"


def wmic(name: str) -> list[dict[str, Any]]:
    return parse_wmic_list((FIX / name).read_bytes())


def cim(machine: str, cls: str) -> list[dict[str, Any]]:
    return json.loads((FIX / machine / f"{cls}.json").read_text(encoding="utf-8"))


def test_win10_wmic_capture() -> None:
    configs = wmic("10-Win32_NetworkAdapterConfiguration.wmi")
    assert win_network.default_gateway(configs) == {
        "address": "0.0.0.8", "interface": "Intel(R) PRO/1000 MT Desktop Adapter"}
    assert win_network.dns_servers(configs) == ["0.0.0.2", "0.0.0.3", "0.0.0.4"]
    ifaces = win_network.interfaces(configs)
    # Kernel debug, ISATAP and Teredo adapters carry no IP and no MAC: left out.
    assert [i["name"] for i in ifaces] == ["Intel(R) PRO/1000 MT Desktop Adapter"]
    assert ifaces[0]["mac"] == "08:00:27:37:a7:5d"
    assert ifaces[0]["up"] is True  # IP-enabled, no adapter row to say more
    assert ifaces[0]["addresses"] == [
        {"family": "ipv4", "address": "0.0.0.9", "prefixlen": 24},
        {"family": "ipv6", "address": "fe82::fe82:fe82:fe82:fe82", "prefixlen": 64}]


def test_win7_wmic_capture_french_names() -> None:
    configs = wmic("7-Win32_NetworkAdapterConfiguration.wmi")
    assert len(configs) == 14
    assert win_network.default_gateway(configs) == {
        "address": "192.168.0.254", "interface": "Realtek PCIe GBE Family Controller"}
    assert win_network.dns_servers(configs) == ["192.168.0.254"]
    names = [i["name"] for i in win_network.interfaces(configs)]
    assert names == ["Realtek PCIe GBE Family Controller"]


def test_win10_cim_json_joined_with_adapters() -> None:
    configs = cim("win10-intel-pro1000", "Win32_NetworkAdapterConfiguration")
    adapters = cim("win10-intel-pro1000", "Win32_NetworkAdapter")
    ifaces = win_network.interfaces(configs, adapters)
    assert ifaces == [{"name": "Ethernet", "mac": "08:00:27:37:a7:5d", "up": True,
                       "speed_mbps": 1000, "kind": "wired", "dhcp": None, "addresses": [
                           {"family": "ipv4", "address": "0.0.0.9", "prefixlen": 24},
                           {"family": "ipv6", "address": "fe82::fe82:fe82:fe82:fe82",
                            "prefixlen": 64}]}]
    assert win_network.default_gateway(configs, adapters) == {"address": "0.0.0.8",
                                                              "interface": "Ethernet"}


def test_win7_cim_json_bluetooth_and_diacritics() -> None:
    configs = cim("win7-realtek-gbe", "Win32_NetworkAdapterConfiguration")
    adapters = cim("win7-realtek-gbe", "Win32_NetworkAdapter")
    ifaces = {i["name"]: i for i in win_network.interfaces(configs, adapters)}
    assert set(ifaces) == {"Connexion au réseau local", "Connexion réseau Bluetooth"}
    lan = ifaces["Connexion au réseau local"]
    assert (lan["kind"], lan["up"], lan["speed_mbps"], lan["mac"]) == \
        ("wired", True, 100, "f4:6d:04:97:2d:3e")
    bt = ifaces["Connexion réseau Bluetooth"]
    # Speed 2^63-1 is Windows' "unknown"; status 7 is "media disconnected".
    assert (bt["up"], bt["speed_mbps"], bt["addresses"]) == (False, None, [])
    assert win_network.default_gateway(configs, adapters)["interface"] == \
        "Connexion au réseau local"


def test_kind_rules() -> None:
    def kind(**adapter: Any) -> str:
        return win_network._kind(adapter, {})

    assert kind(Name="Intel(R) Wi-Fi 6 AX201 160MHz", AdapterTypeId=0,
                PhysicalAdapter=True) == "wireless"
    assert kind(Name="Qualcomm Atheros AR9485", AdapterTypeId=9, PhysicalAdapter=True) \
        == "wireless"
    assert kind(Name="Hyper-V Virtual Ethernet Adapter", PhysicalAdapter=False) == "virtual"
    assert kind(Name="VirtualBox Host-Only Ethernet Adapter", PhysicalAdapter=True,
                PNPDeviceID="ROOT\\NET\\0000") == "virtual"
    assert kind(Name="Microsoft KM-TEST Loopback Adapter") == "loopback"
    assert kind(Name="Realtek PCIe GbE Family Controller", AdapterTypeId="0",
                PhysicalAdapter="TRUE") == "wired"
    assert kind(Name="Mystery adapter") == "other"


def test_gateway_lowest_metric_and_ipv4_first() -> None:
    configs = [
        {"Index": 1, "Description": "Wi-Fi", "IPEnabled": True, "IPConnectionMetric": 50,
         "DefaultIPGateway": ["10.0.0.1"]},
        {"Index": 2, "Description": "Ethernet", "IPEnabled": True, "IPConnectionMetric": 25,
         "DefaultIPGateway": ["fe80::1", "192.168.1.1"]},
        {"Index": 3, "Description": "Disabled", "IPEnabled": False, "IPConnectionMetric": 1,
         "DefaultIPGateway": ["172.16.0.1"]},
    ]
    assert win_network.default_gateway(configs) == {"address": "192.168.1.1",
                                                    "interface": "Ethernet"}
    assert win_network.default_gateway(configs[2:]) is None
    # Old PowerShell writes a one-element array as a plain string.
    assert win_network.dns_servers([{"IPEnabled": True, "DNSServerSearchOrder": "10.1.1.1"}]) \
        == ["10.1.1.1"]


def test_windows_collector_through_powershell_runner(monkeypatch: Any) -> None:
    # Only the PowerShell boundary is replaced: it returns the captured CIM JSON text.
    texts = {cls: (FIX / "win7-realtek-gbe" / f"{cls}.json").read_text(encoding="utf-8")
             for cls in ("Win32_NetworkAdapterConfiguration", "Win32_NetworkAdapter")}

    def fake_powershell(script: str, timeout: float) -> str:
        cls = "Win32_NetworkAdapterConfiguration" if "Configuration" in script \
            else "Win32_NetworkAdapter"
        return texts[cls]

    monkeypatch.setattr(network_windows.powershell, "_powershell", fake_powershell)
    reading = network_windows.read(Context(config=AgentConfig(), state_dir=Path("/nonexistent"),
                                           platform="windows"))
    assert reading.errors == []
    facts = reading.facts
    assert facts["default_gateway"] == {"address": "192.168.0.254",
                                        "interface": "Connexion au réseau local"}
    assert facts["dns_servers"] == ["192.168.0.254"]
    schema = load_schema()
    section = {**facts, "checks": {}}
    jsonschema.validate(section, {**schema["properties"]["network"], "$defs": schema["$defs"]})
