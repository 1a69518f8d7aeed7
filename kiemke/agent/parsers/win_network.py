"""Windows network facts from Win32_NetworkAdapterConfiguration and Win32_NetworkAdapter.

Input is what `Get-CimInstance ... | ConvertTo-Json` gives (a list of dicts), or the
older `wmic ... /format:list` dumps read by parsers.wmi.parse_wmic_list (real captures in
tests/fixtures/windows/network/), where numbers and booleans arrive as text: every value
goes through wmi.as_int / wmi.as_bool. The two classes join on `Index`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from kiemke.agent.parsers.wmi import as_bool, as_int, cim_datetime

CONFIG_PROPERTIES = ("Index", "InterfaceIndex", "Description", "MACAddress", "IPEnabled",
                     "IPAddress", "IPSubnet", "DefaultIPGateway", "DNSServerSearchOrder",
                     "IPConnectionMetric", "SettingID", "ServiceName", "DHCPEnabled",
                     "DHCPServer", "DHCPLeaseObtained", "DHCPLeaseExpires")
ADAPTER_PROPERTIES = ("Index", "Name", "NetConnectionID", "MACAddress", "AdapterTypeId",
                      "PhysicalAdapter", "NetEnabled", "NetConnectionStatus", "Speed",
                      "PNPDeviceID", "ServiceName")

# Win32_NetworkAdapter.AdapterTypeId: 0 Ethernet 802.3, 9 Wireless.
_ADAPTER_TYPE_WIRED = 0
_ADAPTER_TYPE_WIRELESS = 9
_NET_CONNECTION_CONNECTED = 2
# Speed is uint64; Windows reports 2^63-1 when the link speed is unknown (disconnected).
_SPEED_UNKNOWN = 9223372036854775807
_WIRELESS_WORDS = re.compile(r"wi-?fi|wireless|wlan|802\.11|centrino .*(n|ac)|"
                             r"dual band|killer.*1[0-9]{3}", re.IGNORECASE)
_BLUETOOTH_WORDS = re.compile(r"bluetooth|personal area network|réseau personnel|\bpan\b",
                              re.IGNORECASE)
# Software adapters on the host: VPN, tunnels, Hyper-V/VMware/VirtualBox host-side
# adapters, kernel debug, Wi-Fi Direct. A guest's own NIC ("vmxnet3 Ethernet Adapter",
# "Intel(R) PRO/1000 MT Desktop Adapter" in VirtualBox) is hardware to that machine and is
# recognised by its PCI device id, not by these words.
_VIRTUAL_WORDS = re.compile(r"virtual (ethernet )?adapter|vethernet|hyper-v|host-only|"
                            r"vmnet|tap-|tap adapter|wan miniport|tunnel|isatap|teredo|6to4|"
                            r"vpn|kernel debug|wi-fi direct|ras async|"
                            r"pseudo-interface|npcap|fortinet|anyconnect|juniper|"
                            r"checkpoint|globalprotect|wireguard|openvpn|zerotier|tailscale",
                            re.IGNORECASE)
# Words of wired Ethernet controllers, for when only the configuration class is there.
_WIRED_WORDS = re.compile(r"ethernet|gigabit|\bgbe\b|\bgbit|fast ethernet|network connection|"
                          r"family controller|\bnic\b|\blan\b|netxtreme|pcnet|pro/1000|"
                          r"pro/100|82\d{3}|i21\d|i22\d|rtl81\d\d|usb.*(ethernet|lan)|"
                          r"vmxnet|hyper-v network adapter|dock", re.IGNORECASE)
# Windows driver service names (Win32_NetworkAdapter[Configuration].ServiceName).
_WIRELESS_SERVICES = re.compile(r"^(netw[a-z0-9]*|athw[a-z0-9]*|bcmwl[a-z0-9]*|"
                                r"rtwlan[a-z0-9]*|rtl8[0-9]{3}[a-z]*w|mrvl[a-z0-9]*|"
                                r"wlan|vwifimp|netr28x|qcamain[a-z0-9]*|mtkwl[a-z0-9]*)$",
                                re.IGNORECASE)
_WIRED_SERVICES = re.compile(r"^(e1[a-z0-9]*|e2[a-z0-9]*|rt[a-z0-9]*(64x|86x|ndis|x64|x86)?|"
                             r"rtl8023|rtl8167|rtl8169|b57[a-z0-9]*|bxnd[a-z0-9]*|ebdrv|"
                             r"l1c[a-z0-9]*|l1e[a-z0-9]*|yukon[a-z0-9]*|nvenet[a-z0-9]*|"
                             r"vmxnet[a-z0-9]*|netvsc|pcntpci5|ixgbe|ixn|i40e[a-z0-9]*|"
                             r"mlx[a-z0-9]*|ax88[a-z0-9]*|rtux64w10|rtucx|cdc_ncm|"
                             r"usbncm|kvnetvsc|netkvm|e1g[a-z0-9]*|ql[a-z0-9]*|q57[a-z0-9]*)$",
                             re.IGNORECASE)
_VIRTUAL_SERVICES = re.compile(r"^(vmsmp|vmsnpxyminiport|vmnetadapter|vboxnet[a-z0-9]*|"
                               r"tap[a-z0-9]*|rasl2tp|raspppoe|raspptp|rassstp|ndiswan|"
                               r"agilevpn|kdnic|tunnel|msloop|wintun|vpnva|netvsc_host)$",
                               re.IGNORECASE)
_BLUETOOTH_SERVICES = re.compile(r"^(bthpan|btwdndis)$", re.IGNORECASE)
MAX_INTERFACES = 64


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]  # ConvertTo-Json writes a one-element array as a scalar in old PowerShell


def _prefixlen(address: str, mask: Any) -> int | None:
    """IPSubnet holds a dotted mask for IPv4 and a prefix length ("64") for IPv6."""
    if mask is None:
        return None
    text = str(mask)
    if text.isdigit():
        return int(text)
    try:
        return ipaddress.ip_network(f"0.0.0.0/{text}").prefixlen if ":" not in address else None
    except ValueError:
        return None


def _addresses(config: dict[str, Any]) -> list[dict[str, Any]]:
    addrs = _list(config.get("IPAddress"))
    masks = _list(config.get("IPSubnet"))
    out: list[dict[str, Any]] = []
    for i, addr in enumerate(addrs):
        addr = str(addr)
        try:
            version = ipaddress.ip_address(addr.split("%")[0]).version
        except ValueError:
            continue
        out.append({"family": "ipv6" if version == 6 else "ipv4", "address": addr,
                    "prefixlen": _prefixlen(addr, masks[i] if i < len(masks) else None)})
    return out


def _kind(adapter: dict[str, Any], config: dict[str, Any]) -> str:
    """wired / wireless / bluetooth / virtual / loopback / other.

    Strongest evidence first: the bus the device sits on (PNPDeviceID: PCI\\ and USB\\
    are hardware, BTH\\ is Bluetooth, ROOT\\ and SWD\\ are software), then the driver
    service, then the adapter type, then the words of its name. With only the
    configuration class (no Win32_NetworkAdapter row) the service and the description
    decide, so a wired NIC is still wired.
    """
    name = " ".join(str(x) for x in (adapter.get("Name"), config.get("Description"),
                                     adapter.get("NetConnectionID")) if x)
    if "loopback" in name.lower():
        return "loopback"
    pnp = str(adapter.get("PNPDeviceID") or "").upper()
    service = str(adapter.get("ServiceName") or config.get("ServiceName") or "")
    physical = as_bool(adapter.get("PhysicalAdapter"))
    type_id = as_int(adapter.get("AdapterTypeId"))
    if pnp.startswith("BTH") or _BLUETOOTH_SERVICES.match(service) \
            or _BLUETOOTH_WORDS.search(name):
        return "bluetooth"
    hardware_bus = pnp.startswith(("PCI\\", "USB\\", "VMBUS\\", "ACPI\\"))
    if pnp.startswith(("ROOT\\", "SWD\\", "{")) or _VIRTUAL_SERVICES.match(service) \
            or (not hardware_bus and (physical is False or _VIRTUAL_WORDS.search(name))):
        return "virtual"
    if type_id == _ADAPTER_TYPE_WIRELESS or _WIRELESS_SERVICES.match(service) \
            or _WIRELESS_WORDS.search(name):
        return "wireless"
    if type_id == _ADAPTER_TYPE_WIRED or _WIRED_SERVICES.match(service) \
            or _WIRED_WORDS.search(name) or (hardware_bus and physical is not False):
        return "wired"
    return "other"


def dhcp_facts(config: dict[str, Any]) -> dict[str, Any] | None:
    """DHCP state of one adapter: enabled, the server that gave the lease, lease times
    (UTC ISO 8601). None when the configuration class says nothing about DHCP."""
    enabled = as_bool(config.get("DHCPEnabled"))
    if enabled is None and not any(config.get(k) for k in ("DHCPServer",
                                                          "DHCPLeaseObtained")):
        return None
    server = str(config.get("DHCPServer") or "").strip() or None
    if server in ("255.255.255.255", "0.0.0.0"):  # noqa: S104 - "no server yet" markers
        server = None
    out: dict[str, Any] = {"enabled": enabled, "server": server if enabled else None,
                           "lease_obtained": None, "lease_expires": None}
    if enabled:
        for key, field in (("DHCPLeaseObtained", "lease_obtained"),
                           ("DHCPLeaseExpires", "lease_expires")):
            when = cim_datetime(config.get(key))
            out[field] = when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
    return out


def _speed_mbps(adapter: dict[str, Any]) -> int | None:
    speed = as_int(adapter.get("Speed"))
    if speed is None or speed <= 0 or speed >= _SPEED_UNKNOWN:
        return None
    return speed // 1_000_000


def _up(adapter: dict[str, Any], config: dict[str, Any]) -> bool | None:
    enabled = as_bool(adapter.get("NetEnabled"))
    status = as_int(adapter.get("NetConnectionStatus"))
    if status is not None:
        return status == _NET_CONNECTION_CONNECTED and enabled is not False
    if enabled is not None:
        return enabled
    # Configuration only (no Win32_NetworkAdapter row): IP-enabled says it is in use.
    return True if as_bool(config.get("IPEnabled")) else None


def _mac(value: Any) -> str | None:
    return str(value).lower().replace("-", ":") if value else None


def _by_index(adapters: list[dict[str, Any]] | None) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for a in adapters or []:
        idx = as_int(a.get("Index"))
        if idx is not None:
            out[idx] = a
    return out


def _name(adapter: dict[str, Any], cfg: dict[str, Any]) -> str:
    """NetConnectionID ("Ethernet", "Wi-Fi") is what the user sees in Windows."""
    return str(adapter.get("NetConnectionID") or adapter.get("Name") or cfg.get("Description")
               or f"adapter {cfg.get('Index')}")


def interfaces(configs: list[dict[str, Any]],
               adapters: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Adapters that can carry traffic: IP-enabled, or physical with a MAC address.

    WAN miniports and other placeholders without IP are left out: a Windows PC has a
    dozen of them and they say nothing about its network. A filter-driver twin (the
    "... Miniport" / "... Filter" instance carrying the MAC address of a real adapter)
    is the same NIC seen twice: only the real adapter is listed.
    """
    by_index = _by_index(adapters)
    out: list[dict[str, Any]] = []
    seen: set[int | None] = set()
    for cfg in configs:
        idx = as_int(cfg.get("Index"))
        adapter = by_index.get(idx, {}) if idx is not None else {}
        seen.add(idx)
        mac = _mac(cfg.get("MACAddress") or adapter.get("MACAddress"))
        physical = as_bool(adapter.get("PhysicalAdapter")) is True
        if not as_bool(cfg.get("IPEnabled")) and not (mac and physical):
            continue
        out.append(_interface(adapter, cfg, mac))
    for idx, adapter in by_index.items():
        if idx not in seen and as_bool(adapter.get("PhysicalAdapter")) \
                and adapter.get("MACAddress"):
            out.append(_interface(adapter, {}, _mac(adapter.get("MACAddress"))))
    return _without_twins(out)[:MAX_INTERFACES]


_TWIN_WORDS = re.compile(r"miniport|filter|packet scheduler|lightweight|-0000$|qos",
                         re.IGNORECASE)


def _without_twins(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    real_macs = {i["mac"] for i in found if i["mac"] and not _TWIN_WORDS.search(i["_label"])}
    kept = [i for i in found if not (i["mac"] in real_macs and _TWIN_WORDS.search(i["_label"])
                                     and not i["addresses"])]
    for i in kept:
        del i["_label"]
    return kept


def _interface(adapter: dict[str, Any], cfg: dict[str, Any], mac: str | None) -> dict[str, Any]:
    label = " ".join(str(x) for x in (adapter.get("Name"), cfg.get("Description")) if x)
    return {"name": _name(adapter, cfg), "mac": mac, "up": _up(adapter, cfg),
            "speed_mbps": _speed_mbps(adapter), "kind": _kind(adapter, cfg),
            "dhcp": dhcp_facts(cfg), "addresses": _addresses(cfg), "_label": label}


def default_gateway(configs: list[dict[str, Any]],
                    adapters: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """The IPv4 default gateway of the IP-enabled adapter with the lowest interface metric
    (Windows' own choice); an IPv6-only gateway when no adapter has an IPv4 one."""
    by_index = _by_index(adapters)
    candidates: list[tuple[int, int, int, str, str]] = []
    for order, cfg in enumerate(configs):
        if as_bool(cfg.get("IPEnabled")) is False:
            continue
        metric = as_int(cfg.get("IPConnectionMetric"))
        idx = as_int(cfg.get("Index"))
        adapter = by_index.get(idx, {}) if idx is not None else {}
        for gw in _list(cfg.get("DefaultIPGateway")):
            gw = str(gw).strip()
            try:
                v6 = ipaddress.ip_address(gw.split("%")[0]).version == 6
            except ValueError:
                continue
            candidates.append((int(v6), metric if metric is not None else 9999, order, gw,
                               _name(adapter, cfg)))
    if not candidates:
        return None
    _, _, _, address, name = min(candidates)
    return {"address": address, "interface": name}


def dns_servers(configs: list[dict[str, Any]]) -> list[str]:
    """DNSServerSearchOrder of the IP-enabled adapters, in adapter order, without repeats."""
    servers: list[str] = []
    for cfg in configs:
        if as_bool(cfg.get("IPEnabled")) is False:
            continue
        for s in _list(cfg.get("DNSServerSearchOrder")):
            s = str(s).strip()
            if s and s not in servers:
                servers.append(s)
    return servers[:16]
