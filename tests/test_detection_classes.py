"""Issue 14's classes, one test each on the rule itself (the corpus tests them on real
captures): CPU sockets and counts on Windows, NIC kinds, Miniport twins, DHCP, OS
support per service pack / update revision / server channel."""

from __future__ import annotations

import os
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from kiemke.agent.collectors import network_linux
from kiemke.agent.collectors.os_info import windows_end_of_support
from kiemke.agent.parsers import dhcp_lease, win_hardware, win_network
from kiemke.agent.parsers.errors import ParseError


def cpu(**kw: object) -> dict[str, object]:
    return {"Name": "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "ProcessorType": 3,
            "CpuStatus": 1, "MaxClockSpeed": 2401, **kw}


def test_two_sockets_two_models_are_counted_and_named() -> None:
    rows = [cpu(SocketDesignation="CPU1", NumberOfCores=14, NumberOfLogicalProcessors=28),
            cpu(Name="Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz", SocketDesignation="CPU2",
                NumberOfCores=14, NumberOfLogicalProcessors=28, CpuStatus=4)]  # idle
    facts = win_hardware.processor_facts(rows)
    assert facts == {"model": "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz + "
                              "Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz",
                     "sockets": 2, "cores_physical": 28, "cores_logical": 56,
                     "max_mhz": 2401.0}


def test_pre_kb932370_instances_are_logical_processors() -> None:
    # Server 2003 without the hotfix: one instance per logical processor, no core count.
    rows = [cpu(SocketDesignation=s, DeviceID=f"CPU{i}")
            for i, s in enumerate(["Proc 1", "Proc 1", "Proc 2", "Proc 2"])]
    facts = win_hardware.processor_facts(rows)
    assert (facts["sockets"], facts["cores_physical"], facts["cores_logical"]) == (2, None, 4)


def test_contradicting_vm_counts_are_unknown_and_disabled_sockets_left_out() -> None:
    facts = win_hardware.processor_facts([cpu(NumberOfCores=4, NumberOfLogicalProcessors=2)])
    assert (facts["sockets"], facts["cores_physical"], facts["cores_logical"]) == (1, None, None)
    disabled = win_hardware.processor_facts([cpu(NumberOfCores=2, NumberOfLogicalProcessors=2),
                                             cpu(NumberOfCores=2, NumberOfLogicalProcessors=2,
                                                 CpuStatus=3)])
    assert disabled["sockets"] == 1 and disabled["cores_physical"] == 2


@pytest.mark.parametrize(("adapter", "kind"), [
    ({"Name": "Realtek USB GbE Family Controller", "PNPDeviceID": "USB\\VID_0BDA&PID_8153\\0",
      "ServiceName": "rtux64w10", "PhysicalAdapter": True}, "wired"),
    ({"Name": "Dell Universal Dock D6000", "PNPDeviceID": "USB\\VID_17E9&PID_6006\\1",
      "ServiceName": "DisplayLinkEth", "PhysicalAdapter": True}, "wired"),
    ({"Name": "vmxnet3 Ethernet Adapter", "PNPDeviceID": "PCI\\VEN_15AD&DEV_07B0\\FF",
      "ServiceName": "vmxnet3ndis6", "PhysicalAdapter": True}, "wired"),
    ({"Name": "Microsoft Hyper-V Network Adapter", "PNPDeviceID": "VMBUS\\{F8615163}\\x",
      "ServiceName": "netvsc", "PhysicalAdapter": True}, "wired"),
    ({"Name": "VMware Virtual Ethernet Adapter for VMnet8", "PNPDeviceID": "ROOT\\VMWARE\\0001",
      "ServiceName": "VMnetAdapter", "PhysicalAdapter": True}, "virtual"),
    ({"Name": "Hyper-V Virtual Ethernet Adapter", "PNPDeviceID": "ROOT\\VMS_MP\\0000",
      "ServiceName": "VMSMP", "PhysicalAdapter": True}, "virtual"),
    ({"Name": "Bluetooth Device (Personal Area Network)", "PNPDeviceID": "BTH\\MS_BTHPAN\\7",
      "ServiceName": "BthPan", "PhysicalAdapter": True, "AdapterTypeId": 0}, "bluetooth"),
    ({"Name": "Intel(R) Wi-Fi 6E AX211 160MHz", "PNPDeviceID": "PCI\\VEN_8086&DEV_51F0\\3",
      "ServiceName": "Netwtw10", "PhysicalAdapter": True, "AdapterTypeId": 0}, "wireless"),
])
def test_adapter_kinds(adapter: dict[str, object], kind: str) -> None:
    assert win_network._kind(adapter, {}) == kind


@pytest.mark.parametrize(("config", "kind"), [
    ({"Description": "Intel(R) Ethernet Connection (7) I219-LM", "ServiceName": "e1dexpress"},
     "wired"),
    ({"Description": "Realtek PCIe GbE Family Controller", "ServiceName": "rt640x64"}, "wired"),
    ({"Description": "Intel(R) Dual Band Wireless-AC 8265", "ServiceName": "Netwtw04"},
     "wireless"),
    ({"Description": "WAN Miniport (IP)", "ServiceName": "NdisWan"}, "virtual"),
])
def test_configuration_class_alone_still_gives_the_kind(config: dict[str, object],
                                                         kind: str) -> None:
    assert win_network._kind({}, config) == kind


def test_miniport_twin_is_not_a_second_adapter() -> None:
    configs = [{"Index": 1, "Description": "Intel(R) 82579LM Gigabit Network Connection",
                "IPEnabled": True, "MACAddress": "00:11:22:33:44:55",
                "IPAddress": ["10.1.2.3"], "IPSubnet": ["255.255.255.0"]},
               {"Index": 9, "Description": "Intel(R) 82579LM Gigabit Network Connection - "
                "QoS Packet Scheduler-0000", "IPEnabled": False,
                "MACAddress": "00:11:22:33:44:55"}]
    adapters = [{"Index": 1, "Name": configs[0]["Description"], "PhysicalAdapter": True,
                 "PNPDeviceID": "PCI\\VEN_8086&DEV_1502\\3", "MACAddress": "00:11:22:33:44:55"},
                {"Index": 9, "Name": configs[1]["Description"], "PhysicalAdapter": True,
                 "PNPDeviceID": "PCI\\VEN_8086&DEV_1502\\3", "MACAddress": "00:11:22:33:44:55"}]
    found = win_network.interfaces(configs, adapters)
    assert [i["name"] for i in found] == ["Intel(R) 82579LM Gigabit Network Connection"]


def test_windows_dhcp_lease() -> None:
    dhcp = win_network.dhcp_facts({"DHCPEnabled": True, "DHCPServer": "10.0.0.1",
                                   "DHCPLeaseObtained": "20261130080000.000000+420",
                                   "DHCPLeaseExpires": "20261201080000.000000+420"})
    assert dhcp == {"enabled": True, "server": "10.0.0.1",
                    "lease_obtained": "2026-11-30T01:00:00Z",
                    "lease_expires": "2026-12-01T01:00:00Z"}
    static = win_network.dhcp_facts({"DHCPEnabled": False, "DHCPServer": "255.255.255.255"})
    assert static == {"enabled": False, "server": None, "lease_obtained": None,
                      "lease_expires": None}
    assert win_network.dhcp_facts({}) is None  # nothing said: unknown


NETWORKD = "# This is private data. Do not parse.\nADDRESS=192.168.1.23\nNETMASK=255.255.255.0\n" \
    "ROUTER=192.168.1.1\nSERVER_ADDRESS=192.168.1.1\nLIFETIME=86400\nDNS=192.168.1.1\n"
DHCLIENT = 'lease {\n  interface "enp3s0";\n  fixed-address 10.0.0.5;\n' \
    "  option dhcp-server-identifier 10.0.0.1;\n  renew 1 2026/11/30 10:00:00;\n" \
    "  expire 2 2026/12/01 08:00:00;\n}\n"


def test_linux_dhcp_leases(tmp_path: Path) -> None:
    # WRITTEN in the formats systemd-networkd (sd-dhcp-lease.c) and ISC dhclient
    # (dhclient.leases(5)) write; values invented.
    written = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    assert dhcp_lease.parse_networkd_lease(NETWORKD, written) == {
        "enabled": True, "server": "192.168.1.1", "lease_obtained": "2026-11-30T08:00:00Z",
        "lease_expires": "2026-12-01T08:00:00Z"}
    assert dhcp_lease.parse_dhclient_leases(DHCLIENT, "enp3s0") == {
        "enabled": True, "server": "10.0.0.1", "lease_obtained": None,
        "lease_expires": "2026-12-01T08:00:00Z"}
    assert dhcp_lease.parse_dhclient_leases(DHCLIENT, "wlan0") is None
    with pytest.raises(ParseError):
        dhcp_lease.parse_networkd_lease("garbage line\n")
    # The collector finds the lease by interface index, as systemd-networkd names it.
    sys_net, leases = tmp_path / "net", tmp_path / "leases"
    (sys_net / "enp3s0").mkdir(parents=True)
    (sys_net / "enp3s0" / "ifindex").write_text("2\n")
    leases.mkdir()
    (leases / "2").write_text(NETWORKD)
    os.utime(leases / "2", (written.timestamp(), written.timestamp()))
    state = network_linux.dhcp_state("enp3s0", sys_net, leases, tmp_path / "nm", ())
    assert state is not None and state["server"] == "192.168.1.1"
    assert state["lease_expires"] == "2026-12-01T08:00:00Z"
    assert network_linux.dhcp_state("eth9", sys_net, leases, tmp_path / "nm", ()) is None


@pytest.mark.parametrize(("args", "end"), [
    ((7600, False, "Professional", 0), date(2013, 4, 9)),  # Windows 7 without SP1
    ((7601, False, "Professional", 1), date(2020, 1, 14)),
    ((7600, True, "ServerStandard", 0), date(2013, 4, 9)),  # 2008 R2 RTM
    ((6001, True, "ServerStandard", 1), date(2011, 7, 12)),  # 2008 SP1
    ((2600, False, None, 2), date(2010, 7, 13)), ((2600, False, None, 3), date(2014, 4, 8)),
    ((2600, False, None, None), None),  # XP without its service pack: unknown
    ((3790, True, None, 1), date(2009, 4, 14)), ((3790, True, None, 2), date(2015, 7, 14)),
    ((19045, False, "Professional", 0), date(2025, 10, 14)),
    ((22631, False, "Enterprise", 0), date(2026, 11, 10)),
    ((22631, False, "Professional", 0), date(2025, 11, 11)),
    ((17763, False, "EnterpriseS", 0), date(2029, 1, 9)),  # LTSC 2019
])
def test_support_dates_per_service_pack_and_edition(args: tuple, end: date | None) -> None:
    assert windows_end_of_support(*args)[0] == end


def test_windows_81_update_and_server_channels() -> None:
    assert windows_end_of_support(9600, False, "Professional", 0, 16384)[0] == date(2014, 6, 10)
    assert windows_end_of_support(9600, False, "Professional", 0, 20778)[0] == date(2023, 1, 10)
    sac = windows_end_of_support(17763, True, "ServerDatacenter", 0, 1,
                                 "Microsoft Windows Server Datacenter")
    ltsc = windows_end_of_support(17763, True, "ServerDatacenter", 0, 1,
                                  "Microsoft Windows Server 2019 Datacenter")
    assert sac[0] == date(2020, 11, 10) and ltsc[0] == date(2029, 1, 9)
