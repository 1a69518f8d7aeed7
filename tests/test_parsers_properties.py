"""Property tests: no parser raises anything but its documented error
(kiemke.agent.parsers.errors.ParseError), whatever it is given: random text, real
captures cut at any byte, UTF-16 of odd length, random CIM rows.

Bounded for the shared CI machine: a fixed example budget per test, no deadline
(timings there are noisy), derandomized so a failure reproduces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiemke.agent.parsers import (
    chassis,
    dhcp_lease,
    dmi_sysfs,
    dmidecode,
    lpstat,
    os_release,
    proc_net_route,
    resolv_conf,
    win_hardware,
    win_network,
    wmi,
)
from kiemke.agent.parsers.errors import ParseError

FIX = Path(__file__).parent / "fixtures"
PROFILE = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])
DUMPS = [p.read_text("utf-8") for p in sorted((FIX / "dmidecode").glob("*.txt"))] + \
    [p.read_text("utf-8") for p in sorted((FIX / "corpus" / "dmidecode").glob("*.txt"))]
WMIC = [p.read_bytes() for p in sorted((FIX / "corpus" / "wmi").glob("*.wmi"))]
LPSTAT = (FIX / "linux" / "lpstat" / "lpstat-dvlp-six-printers.txt").read_text("utf-8")
OS_RELEASE = (FIX / "linux" / "os" / "os-release-debian-12").read_text("utf-8")
ROUTE = (FIX / "linux" / "network" / "proc-net-route-two-defaults.txt").read_text("utf-8")

# Text that looks enough like each format to reach deep into the parsers.
dmi_like = st.lists(st.sampled_from([
    "Handle 0x0001, DMI type 4, 42 bytes", "Handle 0x0002", "\tDMI type 17, 27 bytes.",
    "Processor Information", "\tStatus: Populated, Idle", "\tCore Count: 8",
    "\tThread Count: x", "\tSize: 16 GB", "\tSize: No Module Installed",
    "\tRelease Date: 001/22/2018", "\tRelease Date: 01/19/20", "\t\tlist item",
    "SMBIOS 2.2 present.", "7 structures occupying 99 bytes.", "Table at 0x0.",
    "\tArray Handle: 0xZZ", "\tUse: Flash Memory", "\tInstalled Size: 256Mbyte", "",
    "\tType: Mini Tower", "\tSerial Number: To Be Filled By O.E.M."]), max_size=40)\
    .map("\n".join)


def only_parse_error(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ParseError as exc:
        assert str(exc).strip(), "a ParseError must say what is wrong"
        return None


@PROFILE
@given(st.one_of(st.text(), dmi_like))
def test_dmidecode_raises_only_parse_error(text: str) -> None:
    found = only_parse_error(dmidecode.read_dmidecode, text)
    if found is not None:
        facts, problem = found
        assert problem is None or isinstance(problem, str)
        assert facts["memory_bytes"] is None or facts["memory_bytes"] > 0


@PROFILE
@given(st.sampled_from(range(len(DUMPS))), st.floats(0, 1))
def test_a_real_dump_cut_anywhere_is_parsed_or_refused(index: int, where: float) -> None:
    text = DUMPS[index]
    only_parse_error(dmidecode.read_dmidecode, text[: int(len(text) * where)])


@PROFILE
@given(st.dictionaries(st.sampled_from(["sys_vendor", "product_name", "product_version",
                                        "product_serial", "chassis_type", "bios_date"]),
                       st.one_of(st.none(), st.text(max_size=40))))
def test_sysfs_dmi_never_raises(files: dict[str, str | None]) -> None:
    facts = dmi_sysfs.parse_dmi_id(files)
    assert set(facts) >= {"manufacturer", "serial", "firmware_date"}


@PROFILE
@given(st.one_of(st.none(), st.text(max_size=30), st.integers(-5, 300)), st.booleans())
def test_dates_and_chassis_never_raise(value: Any, two_digit: bool) -> None:
    text = value if isinstance(value, str) or value is None else str(value)
    dmi_sysfs.parse_bios_date(text, two_digit)
    chassis.chassis_kind(chassis.chassis_code(value))


@PROFILE
@given(st.binary(max_size=400))
def test_wmic_bytes_raise_only_parse_error(data: bytes) -> None:
    only_parse_error(wmi.parse_wmic_list, data)


@PROFILE
@given(st.sampled_from(range(len(WMIC))), st.floats(0, 1), st.booleans())
def test_real_wmic_dumps_cut_anywhere(index: int, where: float, odd: bool) -> None:
    data = WMIC[index]
    cut = int(len(data) * where)
    cut = cut | 1 if odd else cut & ~1  # odd-length UTF-16 included
    rows = only_parse_error(wmi.parse_wmic_list, data[:cut])
    if rows:
        # What was parsed feeds every consumer without any other error.
        win_network.interfaces(rows, rows)
        win_hardware.processor_facts(rows)
        win_hardware.memory_bytes(rows, rows[0])


cim_value = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.text(max_size=20),
                      st.lists(st.text(max_size=10), max_size=3),
                      st.sampled_from(["/Date(1396310400000)/", "20140401000000.000000+000",
                                       "2021-04-13T00:00:00Z", "TRUE", "9223372036854775807"]))
cim_row = st.dictionaries(st.sampled_from(
    ["Index", "Name", "Description", "MACAddress", "IPEnabled", "IPAddress", "IPSubnet",
     "DefaultIPGateway", "DNSServerSearchOrder", "PNPDeviceID", "PhysicalAdapter",
     "AdapterTypeId", "ServiceName", "DHCPEnabled", "DHCPServer", "DHCPLeaseObtained",
     "NumberOfCores", "NumberOfLogicalProcessors", "SocketDesignation", "CpuStatus",
     "ProcessorType", "MaxClockSpeed", "Capacity", "ReleaseDate", "SerialNumber",
     "ChassisTypes", "Manufacturer", "Model"]), cim_value, max_size=12)


@PROFILE
@given(st.lists(cim_row, max_size=6), st.lists(cim_row, max_size=6))
def test_cim_rows_never_raise(configs: list[dict[str, Any]],
                              adapters: list[dict[str, Any]]) -> None:
    rows = [wmi.normalise_cim(r) for r in configs]
    win_network.interfaces(rows, adapters)
    win_network.default_gateway(rows, adapters)
    win_network.dns_servers(rows)
    cpu = win_hardware.processor_facts(rows)
    assert cpu["cores_logical"] is None or cpu["cores_physical"] is None \
        or cpu["cores_logical"] >= cpu["cores_physical"]
    first = rows[0] if rows else {}
    win_hardware.system_facts(first, first, first, first)


@PROFILE
@given(st.one_of(st.text(), st.sampled_from([ROUTE[:n] for n in range(0, len(ROUTE), 37)])))
def test_proc_net_route_raises_only_parse_error(text: str) -> None:
    only_parse_error(proc_net_route.default_gateway, text)


@PROFILE
@given(st.text(), st.one_of(st.none(), st.text()))
def test_resolv_conf_never_raises(text: str, upstream: str | None) -> None:
    servers, _problem = resolv_conf.effective_servers(text, upstream)
    assert len(servers) <= 16 or all(isinstance(s, str) for s in servers)


@PROFILE
@given(st.one_of(st.text(), st.sampled_from([OS_RELEASE[:n] for n in range(len(OS_RELEASE))])))
def test_os_release_raises_only_parse_error(text: str) -> None:
    only_parse_error(os_release.parse_os_release, text)


@PROFILE
@given(st.one_of(st.text(), st.sampled_from([LPSTAT[:n] for n in range(0, len(LPSTAT), 11)])))
def test_lpstat_raises_only_parse_error(text: str) -> None:
    only_parse_error(lpstat.parse_lpstat, text)
    lpstat.lpstat_failure(text)
    lpstat.printers_conf_shared(text)
    lpstat.ppd_nickname(text)


@PROFILE
@given(st.text(), st.text(max_size=12))
def test_dhcp_leases_raise_only_parse_error(text: str, interface: str) -> None:
    only_parse_error(dhcp_lease.parse_networkd_lease, text, None)
    only_parse_error(dhcp_lease.parse_dhclient_leases, text, interface)


def test_odd_length_utf16_is_the_documented_error() -> None:
    data = "\ufeffName=Intel\r\n".encode("utf-16-le")
    try:
        wmi.parse_wmic_list(data[:-1])
    except ParseError as exc:
        assert "odd number of bytes" in str(exc)
    else:
        raise AssertionError("odd-length UTF-16 was accepted")
