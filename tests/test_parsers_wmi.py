"""kiemke.agent.parsers.wmi and the pure Windows fact builders, on real wmic dumps
(GLPI Agent resources, see tests/fixtures/SOURCES.md) and on CIM JSON captures."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kiemke.agent.collectors.base import CollectorError
from kiemke.agent.collectors.hardware_windows import QUERIES, disks_from, hardware_facts
from kiemke.agent.collectors.os_info_windows import os_facts
from kiemke.agent.parsers.errors import ParseError
from kiemke.agent.parsers.wmi import (
    as_bool,
    as_int,
    cim_datetime,
    first,
    normalise_cim,
    parse_wmic_list,
)
from kiemke.agent.windows import powershell
from kiemke.agent.windows.powershell import decode_batch, parse_cim_json

FIX = Path(__file__).parent / "fixtures" / "windows"
UTC = timezone.utc


def wmic(name: str) -> list[dict]:
    return parse_wmic_list((FIX / "wmi" / name).read_bytes())


def test_wmic_dump_is_utf16_with_bom() -> None:
    raw = (FIX / "wmi" / "proxmox-Win32_Bios.wmi").read_bytes()
    assert raw[:2] == b"\xff\xfe"
    rows = wmic("proxmox-Win32_Bios.wmi")
    assert len(rows) == 1
    bios = rows[0]
    assert bios["BIOSVersion"] == ["BOCHS  - 1"]
    assert bios["PrimaryBIOS"] is True and bios["SMBIOSPresent"] is False
    assert bios["Manufacturer"] is None  # empty in the dump
    assert cim_datetime(bios["ReleaseDate"]) == datetime(2014, 4, 1, tzinfo=UTC)


def test_wmic_operating_system_french_windows_7() -> None:
    (os_row,) = wmic("win7-sp1-x64-Win32_OperatingSystem.wmi")
    assert os_row["Caption"] == "Microsoft Windows 7 Professionnel"
    assert os_row["MUILanguages"] == ["fr-FR", "en-US"]
    # +120 minutes: local 15:37:55 is 13:37:55 UTC
    assert cim_datetime(os_row["InstallDate"]) == datetime(2013, 8, 13, 13, 37, 55, tzinfo=UTC)
    assert cim_datetime(os_row["LastBootUpTime"]) == datetime(2013, 8, 22, 18, 42, 18, 500000,
                                                              tzinfo=UTC)


def test_wmic_several_instances_are_split() -> None:
    # Same GLPI capture as the network engineer's fixture (blank lines inside instances).
    rows = parse_wmic_list((FIX / "network" / "7-Win32_NetworkAdapterConfiguration.wmi")
                           .read_bytes())
    assert len(rows) == 14
    assert [r["Index"] for r in rows] == [str(i) for i in range(14)]
    assert rows[0]["Caption"] == "[00000000] WAN Miniport (SSTP)"


def test_wmic_logical_disk_values_stay_text() -> None:
    (disk,) = wmic("win10-crypt-Win32_LogicalDisk.wmi")
    assert disk["Description"] == "Disque monté local"  # accents survive UTF-16 decoding
    assert as_int(disk["Size"]) == 510462619648
    assert disk["Compressed"] is False


@pytest.mark.parametrize("blob", [b"", b"\xff\xfe", "\ufeff\r\n\r\n".encode("utf-16-le")])
def test_wmic_empty_output_is_no_instances(blob: bytes) -> None:
    assert parse_wmic_list(blob) == []


def test_wmic_garbage_is_a_clear_error() -> None:
    with pytest.raises(ParseError) as err:
        parse_wmic_list("ERROR:\r\nDescription = Invalid class\r\n".encode("utf-16"))
    assert "Name=Value" in err.value.message


@pytest.mark.parametrize(("value", "expected"), [
    ("20140401000000.000000+000", datetime(2014, 4, 1, tzinfo=UTC)),
    ("20231114091320.000000+420", datetime(2023, 11, 14, 2, 13, 20, tzinfo=UTC)),
    ("20231113210000.000000-300", datetime(2023, 11, 14, 2, 0, tzinfo=UTC)),
    ("/Date(1396310400000)/", datetime(2014, 4, 1, tzinfo=UTC)),
    ("\\/Date(1396310400000)\\/", datetime(2014, 4, 1, tzinfo=UTC)),
    ("/Date(1396310400000+0700)/", datetime(2014, 4, 1, tzinfo=UTC)),
    ({"value": "/Date(1396310400000)/", "DateTime": "Tuesday, April 1, 2014 7:00:00 AM"},
     datetime(2014, 4, 1, tzinfo=UTC)),
    ("2014-04-01T07:00:00+07:00", datetime(2014, 4, 1, tzinfo=UTC)),
    ("2014-04-01T00:00:00.1234567Z", datetime(2014, 4, 1, 0, 0, 0, 123456, tzinfo=UTC)),
    ("", None), (None, None), ("garbage", None), ("00000000000000.000000+000", None),
    ("/Date(-62135596800000)/", None),  # DateTime.MinValue: "never"
    ("20141301000000.000000+000", None),  # month 13
])
def test_cim_datetime_forms(value: object, expected: datetime | None) -> None:
    assert cim_datetime(value) == expected


def test_normalise_drops_cim_bookkeeping_and_converts_dates() -> None:
    rows = parse_cim_json((FIX / "cim" / "root_cimv2__Win32_OperatingSystem.json")
                          .read_text("utf-8"))
    row = normalise_cim(rows[0])
    assert not {"CimClass", "CimInstanceProperties", "CimSystemProperties",
                "PSComputerName"} & set(row)
    assert row["InstallDate"] == datetime(2023, 11, 14, 2, 13, 20, tzinfo=UTC)
    assert row["Description"] is None  # "" from WMI is no value
    assert row["Organization"] == "Liên đoàn Lao động tỉnh Bắc Giang"


@pytest.mark.parametrize("text", ['{"Caption": "Microsoft Windows 11 Pro", "Vers',
                                  "Get-CimInstance : Invalid class", '"just a string"',
                                  "[1, 2]"])
def test_truncated_or_garbage_cim_json_is_a_clear_error(text: str) -> None:
    with pytest.raises(CollectorError) as err:
        parse_cim_json(text)
    assert err.value.kind == "failed"
    assert "JSON" in err.value.message


def test_empty_cim_output_is_no_instances() -> None:
    assert parse_cim_json("") == [] and parse_cim_json("\ufeff \r\n") == []
    assert first([]) == {}


def test_as_int_and_as_bool() -> None:
    assert as_int("17015767040") == 17015767040 and as_int(8.0) == 8
    assert as_int(True) is None and as_int("12 GB") is None
    assert as_bool("TRUE") is True and as_bool(False) is False and as_bool("x") is None


def test_decode_batch_errors_per_query() -> None:
    queries = {"cs": QUERIES["cs"], "disks": QUERIES["physical_disks"],
               "bat": QUERIES["battery"], "one": QUERIES["bios"]}
    data = {"cs": [{"Model": "OptiPlex 7090"}],
            "disks": {"__error__": "Invalid namespace "},
            "bat": {"__error__": "Access denied "},
            "one": {"Manufacturer": "Dell Inc."}}
    out = decode_batch(data, queries)
    assert out["cs"] == [{"Model": "OptiPlex 7090"}]
    assert isinstance(out["disks"], CollectorError) and out["disks"].kind == "unsupported"
    assert isinstance(out["bat"], CollectorError) and out["bat"].kind == "permission"
    assert out["one"] == [{"Manufacturer": "Dell Inc."}]


def test_os_facts_from_the_real_windows_7_dump() -> None:
    (row,) = wmic("win7-sp1-x64-Win32_OperatingSystem.wmi")
    facts, end = os_facts(normalise_cim(row), {})
    assert facts["name"] == "Microsoft Windows 7 Professionnel"
    assert facts["build"] == "7600" and facts["kernel"] == "6.1.7600"
    assert facts["edition"] == "Professional"  # OperatingSystemSKU 48
    assert facts["architecture"] == "x86"  # "32 bits"
    assert facts["install_date"] == "2013-08-13T13:37:55Z"
    # Build 7600 with ServicePackMajorVersion 0 is Windows 7 without SP1: its support
    # ended 2013-04-09, not with SP1's 2020-01-14 (issue 14, class 6).
    assert end is not None and end.isoformat() == "2013-04-09"


def test_hardware_facts_from_the_real_proxmox_bios_dump() -> None:
    (bios,) = wmic("proxmox-Win32_Bios.wmi")
    (cpu,) = wmic("7-Win32_Processor.wmi")
    results = {"bios": [bios], "cpu": [cpu],
               "cs": [{"Manufacturer": "QEMU", "Model": "Standard PC (i440FX + PIIX, 1996)",
                       "TotalPhysicalMemory": "2147012608"}],
               "memory": [], "enclosure": [{"ChassisTypes": [1]}]}
    facts, fw_date, battery = hardware_facts(results, firmware_type=1)
    assert facts["is_virtual"] is True and facts["hypervisor"] == "qemu"
    assert facts["chassis"] == "virtual" and facts["chassis_type_code"] == 1
    assert facts["firmware"] == {"vendor": None, "version": "BOCHS  - 1",
                                 "release_date": "2014-04-01", "mode": "bios"}
    assert fw_date is not None and fw_date.isoformat() == "2014-04-01" and battery is None
    assert facts["memory_bytes"] == 2147012608  # no Win32_PhysicalMemory: fallback
    assert facts["cpu"] == {"model": "Intel(R) Core(TM) i5-2300 CPU @ 2.80GHz",
                            "sockets": 1, "cores_physical": 4, "cores_logical": 4,
                            "max_mhz": 2801.0}


def test_hypervisor_present_alone_is_not_a_virtual_machine() -> None:
    cs = json.loads((FIX / "cim" / "root_cimv2__Win32_ComputerSystem.json").read_text("utf-8"))
    assert cs["HypervisorPresent"] is True  # VBS on a physical Dell
    facts, _, _ = hardware_facts({"cs": [cs]}, None)
    assert facts["is_virtual"] is False and facts["chassis"] == "unknown"


def test_disks_skip_usb_and_join_media_type() -> None:
    drives = parse_cim_json((FIX / "cim" / "root_cimv2__Win32_DiskDrive.json").read_text())
    physical = parse_cim_json((FIX / "cim" / "root_Microsoft_Windows_Storage__MSFT_PhysicalDisk"
                               ".json").read_text())
    disks = disks_from(drives, physical)
    assert [(d["name"], d["type"]) for d in disks] == [("PHYSICALDRIVE0", "nvme"),
                                                       ("PHYSICALDRIVE1", "hdd")]
    # Without the storage namespace (Windows 7): NVMe still known from the PNP id
    assert [d["type"] for d in disks_from(drives, [])] == ["nvme", "unknown"]


def test_cim_batch_runs_one_powershell_and_splits_results(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from kiemke.agent.windows import powershell
    scripts: list[str] = []

    def fake(script: str, timeout: float) -> str:
        scripts.append(script)
        return ('{"cs":[{"Model":"OptiPlex 7090"}],"physical_disks":{"__error__":'
                '"Invalid namespace "},"bios":[]}')

    monkeypatch.setattr(powershell, "_powershell", fake)
    queries = {k: QUERIES[k] for k in ("cs", "physical_disks", "bios")}
    out = powershell.cim_batch(queries)
    assert len(scripts) == 1
    assert "-Namespace 'root/Microsoft/Windows/Storage' -ClassName 'MSFT_PhysicalDisk'" \
        in scripts[0]
    assert "Select-Object Manufacturer,Model,SystemFamily" in scripts[0]
    assert out["cs"] == [{"Model": "OptiPlex 7090"}] and out["bios"] == []
    assert isinstance(out["physical_disks"], CollectorError)
    assert out["physical_disks"].kind == "unsupported"


def test_cim_query_names_a_missing_class(monkeypatch: pytest.MonkeyPatch) -> None:
    from kiemke.agent.windows import powershell

    def fails(script: str, timeout: float) -> str:
        raise CollectorError("failed", "powershell.exe exited with 1: Get-CimInstance : "
                             "Invalid class ")

    monkeypatch.setattr(powershell, "_powershell", fails)
    with pytest.raises(CollectorError) as err:
        powershell.cim_query("BatteryStaticData", "root/WMI")
    assert err.value.kind == "unsupported" and "root/WMI:BatteryStaticData" in err.value.message
    with pytest.raises(ValueError):
        powershell.cim_query("Win32_BIOS; Remove-Item C:\\")  # never spliced into a script


@pytest.mark.parametrize(("text", "expected"), [
    ("", []),
    ("\ufeff\r\n", []),
    ('"KES.12"', ["KES.12"]),  # ConvertTo-Json of a single name is a bare string
    ('["KES.12","AVP21.3"]', ["KES.12", "AVP21.3"]),
])
def test_string_list_shapes(text: str, expected: list[str]) -> None:
    assert powershell.parse_string_list(text, "Get-ChildItem") == expected


@pytest.mark.parametrize("text", ['["KES.12"', "Get-ChildItem : access denied", '{"a": 1}'])
def test_string_list_garbage_is_a_clear_error(text: str) -> None:
    with pytest.raises(CollectorError, match="Get-ChildItem returned") as err:
        powershell.parse_string_list(text, "Get-ChildItem")
    assert err.value.kind == "failed"
