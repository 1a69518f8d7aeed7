"""Schema-valid agent reports with realistic data, for tests and benchmarks.

`make_report(machine_id=..., **overrides)` returns a fresh dict; each keyword names a
top-level key and is deep-merged (dicts merge, anything else replaces), so
`make_report(hardware={"memory_bytes": None})` changes one fact and keeps the rest.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timezone
from typing import Any

UNIT_NAME = "Liên đoàn Lao động tỉnh Bắc Giang"


def new_machine_id() -> str:
    """A random machine id in the agent's format (32 lowercase hex digits)."""
    return uuid.uuid4().hex


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def make_report(machine_id: str | None = None, hostname: str = "PC-KETOAN-01",
                **overrides: Any) -> dict[str, Any]:
    """A periodic report of a Windows 10 office desktop, about 3 KB as JSON."""
    report: dict[str, Any] = {
        "schema_version": 1,
        "report_id": str(uuid.uuid4()),
        "kind": "periodic",
        "collected_at": utc_now_iso(),
        "identity": {
            "machine_id": machine_id or new_machine_id(),
            "machine_id_source": "smbios_uuid",
            "hostname": hostname,
            "fqdn": f"{hostname.lower()}.ldld.bacgiang.gov.vn",
            "domain": "LDLD",
            "agent_version": "0.1.0",
            "platform": "windows",
            "unit": f"{UNIT_NAME} / Văn phòng",
            "asset_tag": "LĐLĐ-MT-2019-014",
        },
        "hardware": {
            "manufacturer": "Dell Inc.",
            "model": "OptiPlex 7070",
            "serial": "7XK2P53",
            "chassis": "desktop",
            "chassis_type_code": 3,
            "is_virtual": False,
            "hypervisor": None,
            "cpu": {"model": "Intel(R) Core(TM) i5-9500 CPU @ 3.00GHz", "cores_physical": 6,
                    "cores_logical": 6, "max_mhz": 3000.0},
            "memory_bytes": 8589934592,
            "disks": [{"name": "\\\\.\\PHYSICALDRIVE0", "model": "KXG60ZNV256G NVMe TOSHIBA 256GB",
                       "size_bytes": 256060514304, "type": "nvme"}],
            "firmware": {"vendor": "Dell Inc.", "version": "1.6.5",
                         "release_date": "2019-09-10", "mode": "uefi"},
            "manufacture_date": {
                "value": "2019-09-10", "estimated": True,
                "evidence": [{"source": "firmware_date", "date": "2019-09-10"},
                             {"source": "os_install_date", "date": "2019-11-02"}],
            },
        },
        "os": {
            "family": "windows",
            "name": "Microsoft Windows 10 Pro",
            "version": "10.0.19045",
            "build": "19045",
            "edition": "Professional",
            "architecture": "64-bit",
            "kernel": None,
            "install_date": "2019-11-02T03:14:07Z",
            "last_boot": "2024-05-06T00:41:22Z",
            "supported": False,
            "end_of_support": "2025-10-14",
        },
        "antivirus": {
            "products": [{
                "name": "Bkav Pro", "vendor": "Bkav", "version": "5.2.1",
                "enabled": True, "state": "on", "up_to_date": True,
                "signatures_version": "2024.05.06", "signatures_date": "2024-05-06T01:00:00Z",
                "signatures_age_days": 0.4, "licensed": True, "licence_expiry": "2025-03-31",
                "product_state": 266240, "detected_by": "securitycenter2",
            }, {
                "name": "Windows Defender", "vendor": "Microsoft", "version": "4.18.24030.9",
                "enabled": False, "state": "passive", "up_to_date": True,
                "signatures_version": "1.411.133.0", "signatures_date": "2024-05-05T22:10:00Z",
                "signatures_age_days": 0.5, "licensed": True, "licence_expiry": None,
                "product_state": 393472, "detected_by": "securitycenter2",
            }],
        },
        "security_monitoring": {
            "agents": [{"name": "Wazuh Agent", "vendor": "Wazuh", "running": True,
                        "detected_by": "service"}],
        },
        "network": {
            "interfaces": [{
                "name": "Ethernet", "mac": "8C:EC:4B:5A:11:0F", "up": True, "speed_mbps": 1000,
                "kind": "wired",
                "addresses": [{"family": "ipv4", "address": "10.20.1.45", "prefixlen": 24},
                              {"family": "ipv6", "address": "fe80::1c2d:3e4f:5a6b:7c8d",
                               "prefixlen": 64}],
            }],
            "default_gateway": {"address": "10.20.1.1", "interface": "Ethernet"},
            "dns_servers": ["10.20.1.2", "10.20.1.3"],
            "checks": {
                "gateway": {"ok": True, "latency_ms": 0.6, "error": None},
                "dns": {"ok": True, "latency_ms": 4.1, "error": None},
                "internet": {"ok": True, "latency_ms": 31.0, "error": None, "probes": [
                    {"target": "https://dichvucong.gov.vn", "method": "http", "ok": True,
                     "latency_ms": 31.0, "error": None}]},
                "collector": {"ok": True, "latency_ms": 2.3, "error": None},
            },
        },
        "printers": {
            "printers": [
                {"name": "HP LaserJet Pro M404dn - Phòng Kế toán",
                 "driver": "HP Universal Printing PCL 6",
                 "port": "IP_10.20.1.60", "network": True, "default": True, "shared": False,
                 "virtual": False},
                {"name": "Microsoft Print to PDF", "driver": "Microsoft Print To PDF",
                 "port": "PORTPROMPT:", "network": False, "default": False, "shared": False,
                 "virtual": True},
            ],
        },
    }
    return _deep_merge(report, overrides)


# The workplace sections (issue 13) of an office PC that passes the three workplace rules:
# a VNPT-CA signing certificate on a token, an official mailbox, a webcam, a microphone
# and Zoom. Merge into make_report(**WORKPLACE_PASS).
WORKPLACE_PASS: dict[str, Any] = {
    "signing": {
        "certificates": [{
            "store": "user", "ca": "vnpt-ca", "ca_kind": "public",
            "issuer": "VNPT Certification Authority", "issuer_org": "VNPT Group",
            "key_usage": ["digital_signature", "non_repudiation"], "can_sign": True,
            "not_before": "2025-03-01", "not_after": "2028-03-01", "state": "valid",
            "hardware_token": True, "subject_hash": "5f1c0a9e3b7d2468"}],
        "middleware": ["VNPT-CA Token Manager"],
    },
    "email": {"clients": [{"client": "outlook", "profiles": 1, "accounts": 2, "domains": [
        {"domain": "bacgiang.gov.vn", "accounts": 1}, {"domain": "gmail.com", "accounts": 1}]}]},
    "meeting": {"cameras": 1, "cameras_enabled": 1, "microphones": 1,
                "microphones_enabled": 1, "software": ["Zoom"]},
}
