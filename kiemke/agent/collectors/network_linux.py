"""Linux network facts: netifaces + psutil for interfaces, /proc/net/route for the
default gateway (cross-checked with netifaces), resolv.conf for DNS servers."""

from __future__ import annotations

import contextlib
import ipaddress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import netifaces
import psutil

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.parsers import dhcp_lease, proc_net_route, resolv_conf
from kiemke.agent.parsers.errors import ParseError

SYS_CLASS_NET = Path("/sys/class/net")
PROC_NET_ROUTE = Path("/proc/net/route")
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
NAME = "network"


def _uevent(base: Path) -> str:
    try:
        return (base / "uevent").read_text("utf-8", "replace")
    except OSError:
        return ""


def interface_kind(name: str, sys_class_net: Path = SYS_CLASS_NET) -> str:
    """wireless / bluetooth / virtual / loopback / wired / other, from sysfs.

    A device without a `device` link is not backed by hardware (bridge, veth, tun,
    docker0, ifb): virtual. Wireless devices have `wireless/` or `phy80211`.
    """
    base = sys_class_net / name
    try:
        arp_type = int((base / "type").read_text().strip())
    except (OSError, ValueError):
        arp_type = None
    if arp_type == ARPHRD_LOOPBACK or name == "lo":
        return "loopback"
    if (base / "wireless").exists() or (base / "phy80211").exists():
        return "wireless"
    if "DEVTYPE=bluetooth" in _uevent(base) or name.startswith("bnep"):
        return "bluetooth"  # a Bluetooth PAN link, not the LAN
    if not (base / "device").exists():
        return "virtual"
    if arp_type == ARPHRD_ETHER:
        return "wired"
    return "other"


NETWORKD_LEASES = Path("/run/systemd/netif/leases")
NM_LEASES = Path("/var/lib/NetworkManager")
DHCLIENT_LEASES = (Path("/var/lib/dhcp"), Path("/var/lib/dhclient"))


def dhcp_state(name: str, sys_class_net: Path = SYS_CLASS_NET,
               networkd: Path = NETWORKD_LEASES, nm: Path = NM_LEASES,
               dhclient: tuple[Path, ...] = DHCLIENT_LEASES) -> dict[str, Any] | None:
    """The interface's DHCP lease from systemd-networkd, NetworkManager's internal client
    or ISC dhclient; None when no lease is found (a static address, or a DHCP client
    kiemke does not know: unknown, not "off")."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError):
        candidates.append(networkd / (sys_class_net / name / "ifindex").read_text().strip())
    with contextlib.suppress(OSError):
        candidates += sorted(nm.glob(f"internal-*-{name}.lease"))
    for path in candidates:
        try:
            text = path.read_text("utf-8", "replace")
            written = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
            return dhcp_lease.parse_networkd_lease(text, written)
        except (OSError, ParseError):
            continue
    for directory in dhclient:
        try:
            files = sorted(directory.glob("dhclient*.lease*"))
        except OSError:
            continue
        for path in files:
            try:
                found = dhcp_lease.parse_dhclient_leases(path.read_text("utf-8", "replace"),
                                                         name)
            except (OSError, ParseError):
                continue
            if found:
                return found
    return None


def _prefixlen(netmask: str | None) -> int | None:
    """netifaces gives "255.255.255.0" for IPv4 and "ffff:ffff:ffff:ffff::/64" for IPv6."""
    if not netmask:
        return None
    if "/" in netmask:
        tail = netmask.rsplit("/", 1)[1]
        return int(tail) if tail.isdigit() else None
    try:
        return ipaddress.ip_network(f"0.0.0.0/{netmask}").prefixlen
    except ValueError:
        return None


def interfaces(sys_class_net: Path = SYS_CLASS_NET) -> list[dict[str, Any]]:
    stats = psutil.net_if_stats()
    out: list[dict[str, Any]] = []
    for name in netifaces.interfaces():
        addrs = netifaces.ifaddresses(name)
        link = addrs.get(netifaces.AF_LINK, [{}])
        mac = (link[0].get("addr") or None) if link else None
        if mac in ("00:00:00:00:00:00", ""):
            mac = None
        addresses: list[dict[str, Any]] = []
        for fam, label in ((netifaces.AF_INET, "ipv4"), (netifaces.AF_INET6, "ipv6")):
            for a in addrs.get(fam, []):
                if not a.get("addr"):
                    continue
                addresses.append({"family": label, "address": a["addr"].split("%", 1)[0],
                                  "prefixlen": _prefixlen(a.get("netmask"))})
        st = stats.get(name)
        out.append({
            "name": name,
            "mac": mac,
            "up": st.isup if st else None,
            "speed_mbps": st.speed if st and st.speed > 0 else None,  # 0: unknown (virtual)
            "kind": interface_kind(name, sys_class_net),
            "dhcp": dhcp_state(name, sys_class_net) if addresses else None,
            "addresses": addresses,
        })
    return out[:64]


def default_gateway(errors: list[dict[str, str]],
                    route_file: Path = PROC_NET_ROUTE) -> dict[str, str] | None:
    """IPv4 default route from /proc/net/route; netifaces for a cross-check and for an
    IPv6-only network. A disagreement is reported, the kernel table wins."""
    from_proc: dict[str, str] | None = None
    proc_ok = False
    try:
        from_proc = proc_net_route.default_gateway(route_file.read_text("utf-8", "replace"))
        proc_ok = True
    except (OSError, ParseError) as exc:
        errors.append({"collector": NAME, "kind": "failed",
                       "message": f"cannot read {route_file}: {exc}; the default gateway "
                                  "comes from netifaces alone"})
    try:
        gateways: dict[Any, Any] = dict(netifaces.gateways())
        nif: dict[Any, Any] = gateways.get("default") or {}
    except Exception as exc:  # noqa: BLE001 - netifaces raises plain errors on odd systems
        nif = {}
        errors.append({"collector": NAME, "kind": "failed",
                       "message": f"netifaces cannot list gateways: {exc}"})
    nif4 = nif.get(netifaces.AF_INET)
    if from_proc:
        if nif4 and nif4[0] != from_proc["address"]:
            errors.append({"collector": NAME, "kind": "failed", "message": (
                f"{route_file} says the default gateway is {from_proc['address']} but "
                f"netifaces says {nif4[0]}; reporting {from_proc['address']}")})
        return from_proc
    if nif4 and not proc_ok:
        return {"address": nif4[0], "interface": nif4[1]}
    nif6 = nif.get(netifaces.AF_INET6)
    if nif6:
        return {"address": str(nif6[0]).split("%", 1)[0], "interface": nif6[1]}
    return None


def dns_servers(errors: list[dict[str, str]],
                resolv_path: Path = Path(resolv_conf.RESOLV_CONF),
                upstream_path: Path = Path(resolv_conf.RESOLVED_UPSTREAM)) -> list[str]:
    try:
        text = resolv_path.read_text("utf-8", "replace")
    except FileNotFoundError:
        errors.append({"collector": NAME, "kind": "not_found",
                       "message": f"{resolv_path} does not exist: no DNS server is configured"})
        return []
    except OSError as exc:
        errors.append({"collector": NAME, "kind": "permission" if isinstance(
            exc, PermissionError) else "failed", "message": f"cannot read {resolv_path}: {exc}"})
        return []
    upstream: str | None = None
    if resolv_conf.uses_resolved_stub(resolv_conf.parse_nameservers(text)):
        try:
            upstream = upstream_path.read_text("utf-8", "replace")
        except OSError:
            upstream = None
    servers, problem = resolv_conf.effective_servers(text, upstream)
    if problem:
        errors.append({"collector": NAME, "kind": "failed", "message": problem})
    return servers


def read(ctx: Context) -> PlatformReading:
    errors: list[dict[str, str]] = []
    try:
        ifaces = interfaces()
    except (OSError, ValueError) as exc:
        raise CollectorError("failed", f"cannot list network interfaces: {exc}") from exc
    facts: dict[str, Any] = {
        "interfaces": ifaces,
        "default_gateway": default_gateway(errors),
        "dns_servers": dns_servers(errors),
    }
    return PlatformReading(facts=facts, errors=errors)
