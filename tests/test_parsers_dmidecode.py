"""dmidecode dumps (real, GLPI Agent resources) -> SMBIOS facts; the same machines laid out
as /sys/class/dmi/id must give the same facts through the agent's sysfs path."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from kiemke.agent.parsers.chassis import chassis_code, chassis_kind, detect_hypervisor
from kiemke.agent.parsers.dmi_sysfs import clean, parse_bios_date, parse_dmi_id
from kiemke.agent.parsers.dmidecode import dmidecode_facts, parse_dmidecode
from kiemke.agent.parsers.errors import ParseError

FIX = Path(__file__).parent / "fixtures" / "dmidecode"

EXPECTED = {
    "lenovo-thinkpad.txt": dict(manufacturer="LENOVO", model="ThinkPad Edge E320",
                                serial="LR9NKZ7", chassis_type_code=10,
                                firmware_vendor="LENOVO", firmware_version="8NET32WW (1.16 )",
                                firmware_date=date(2011, 12, 1), cores_physical=2,
                                cores_logical=4, cpu_max_mhz=2500.0, kind="laptop",
                                hypervisor=None),
    "dell-r640.txt": dict(manufacturer="Dell Inc.", model="PowerEdge R640", serial="2RJF153",
                          chassis_type_code=23, firmware_vendor="Dell Inc.",
                          firmware_version="2.6.4", firmware_date=date(2020, 4, 9),
                          cores_physical=16, cores_logical=32, cpu_max_mhz=4000.0,
                          kind="server", hypervisor=None),
    "surface-go-2.txt": dict(manufacturer="Microsoft Corporation", model="Surface Go 2",
                             serial="48368130c2f8", chassis_type_code=9,
                             firmware_vendor="Microsoft Corporation", firmware_version="1.0.05",
                             firmware_date=date(2020, 2, 7), cores_physical=None,
                             cores_logical=None, cpu_max_mhz=None, kind="laptop",
                             hypervisor=None),
    "vmware.txt": dict(manufacturer="VMware, Inc.", model="VMware Virtual Platform",
                       serial="VMware-50 0c 23 94 04 63 a1 3c-0d d4 f5 37 a6 bb f0 a6",
                       chassis_type_code=1, firmware_vendor="Phoenix Technologies LTD",
                       firmware_version="6.00", firmware_date=date(2008, 7, 22),
                       cores_physical=None, cores_logical=None, cpu_max_mhz=2133.0,
                       kind="virtual", hypervisor="vmware"),
    "rhel-6.3-esx-1vcpu.txt": dict(manufacturer="VMware, Inc.", model="VMware Virtual Platform",
                                   serial="VMware-56 4d 60 49 9d 7d 6e 8b-4a 41 7b 2d b1 47 ab a7",
                                   chassis_type_code=1,
                                   firmware_vendor="Phoenix Technologies LTD",
                                   firmware_version="6.00", firmware_date=date(2013, 7, 31),
                                   cores_physical=None, cores_logical=None,
                                   cpu_max_mhz=None,  # VMware's placeholder 30000 MHz dropped
                                   kind="virtual", hypervisor="vmware"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dmidecode_dump(name: str) -> None:
    facts = dmidecode_facts(parse_dmidecode((FIX / name).read_text("utf-8")))
    want = dict(EXPECTED[name])
    kind, hypervisor = want.pop("kind"), want.pop("hypervisor")
    for key, value in want.items():
        assert facts[key] == value, key
    found = detect_hypervisor(facts["manufacturer"], facts["product_name"],
                              facts["firmware_vendor"], facts["firmware_version"])
    assert found == hypervisor
    assert chassis_kind(facts["chassis_type_code"], found is not None) == kind


def test_lists_under_a_key_are_kept() -> None:
    structures = parse_dmidecode((FIX / "lenovo-thinkpad.txt").read_text("utf-8"))
    bios = next(s for s in structures if s["type"] == 0)
    assert bios["title"] == "BIOS Information"
    assert "PCI is supported" in bios["props"]["Characteristics"]


@pytest.mark.parametrize("text", ["", "garbage\nmore garbage", "# dmidecode 3.4\n"
                                  "/sys/firmware/dmi/tables/smbios_entry_point: Permission denied\n"
                                  "Scanning /dev/mem for entry point.\n"
                                  "/dev/mem: Permission denied\n"])
def test_empty_or_garbage_dump_is_a_clear_error(text: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_dmidecode(text)
    assert "SMBIOS" in err.value.message


def test_truncated_dump_keeps_what_was_complete() -> None:
    text = (FIX / "lenovo-thinkpad.txt").read_text("utf-8")
    cut = text[: text.index("Chassis Information") + 40]
    facts = dmidecode_facts(parse_dmidecode(cut))
    assert facts["serial"] == "LR9NKZ7" and facts["firmware_date"] == date(2011, 12, 1)


@pytest.mark.parametrize("junk", ["To be filled by O.E.M.", "To Be Filled By O.E.M.",
                                  "Default string", "System Serial Number", "Not Specified",
                                  "0", "00000000", "   ", "None", "<BAD INDEX>", "XXXXXXXX",
                                  "FFFFFFFF", "0000-0000-0000", None])
def test_placeholders_are_not_facts(junk: str | None) -> None:
    assert clean(junk) is None


def test_real_values_survive_cleaning() -> None:
    assert clean(" OptiPlex 7090 \x00") == "OptiPlex 7090"
    assert clean("Máy chủ Liên đoàn Lao động tỉnh Bắc Giang") == \
        "Máy chủ Liên đoàn Lao động tỉnh Bắc Giang"


@pytest.mark.parametrize(("text", "expected"), [
    ("12/01/2011", date(2011, 12, 1)), ("2021-04-13", date(2021, 4, 13)),
    ("001/22/2018", date(2018, 1, 22)),  # some firmware pads the month to three digits
    ("20140401000000.000000+000", date(2014, 4, 1)), ("13/45/2011", None),
    ("01/01/1980", None), ("Not Specified", None), (None, None),
    # Two-digit years: a date cut short on SMBIOS 2.3+ ("01/19/2018" -> "01/19/20") is
    # unknown, never a guessed 2020-01-19.
    ("04/09/20", None), ("01/15/99", None)])
def test_bios_dates(text: str | None, expected: date | None) -> None:
    assert parse_bios_date(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("04/09/20", date(2020, 4, 9)), ("01/15/99", date(1999, 1, 15))])
def test_two_digit_years_only_before_smbios_2_3(text: str, expected: date) -> None:
    assert parse_bios_date(text, two_digit_years=True) == expected


@pytest.mark.parametrize(("value", "code", "kind"), [
    (3, 3, "desktop"), ("Notebook", 10, "laptop"), ("All In One", 13, "all-in-one"),
    ("Rack Mount Chassis", 23, "server"), ("Mini PC", 35, "desktop"), ("Tablet", 30, "laptop"),
    ("Convertible", 31, "laptop"), ("Docking Station", 12, "other"), ("Unknown", 2, "unknown"),
    ("Other", 1, "other"), ("17", 17, "server"), (0x83, 0x83, "desktop")])
def test_chassis_codes(value: str | int, code: int, kind: str) -> None:
    assert chassis_code(value) == code
    assert chassis_kind(code) == kind
    assert chassis_kind(code, is_virtual=True) == "virtual"


@pytest.mark.parametrize(("strings", "hypervisor"), [
    (("innotek GmbH", "VirtualBox"), "virtualbox"),
    (("Microsoft Corporation", "Virtual Machine"), "hyperv"),
    (("QEMU", "Standard PC (Q35 + ICH9, 2009)"), "qemu"),
    (("Xen", "HVM domU"), "xen"), (("Amazon EC2", "m5.large"), "amazon"),
    (("Microsoft Corporation", "Surface Go 2"), None), (("Dell Inc.", "OptiPlex 7090"), None),
    ((None, ""), None)])
def test_hypervisor_strings(strings: tuple, hypervisor: str | None) -> None:
    assert detect_hypervisor(*strings) == hypervisor


def sysfs_files(name: str) -> dict[str, str]:
    """What the kernel would show in /sys/class/dmi/id for the machine of a dump."""
    structures = parse_dmidecode((FIX / name).read_text("utf-8"))
    props = {t: next((s["props"] for s in structures if s["type"] == t), {}) for t in (0, 1, 3)}
    code = chassis_code(props[3].get("Type"))
    return {"sys_vendor": props[1].get("Manufacturer", ""),
            "product_name": props[1].get("Product Name", ""),
            "product_version": props[1].get("Version", ""),
            "product_serial": props[1].get("Serial Number", ""),
            "chassis_type": str(code), "chassis_vendor": props[3].get("Manufacturer", ""),
            "bios_vendor": props[0].get("Vendor", ""), "bios_version": props[0].get("Version", ""),
            "bios_date": props[0].get("Release Date", "")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sysfs_and_dmidecode_agree(name: str) -> None:
    from_dump = dmidecode_facts(parse_dmidecode((FIX / name).read_text("utf-8")))
    from_sysfs = parse_dmi_id(sysfs_files(name))
    for key in ("manufacturer", "model", "serial", "chassis_type_code", "firmware_vendor",
                "firmware_version", "firmware_date"):
        assert from_sysfs[key] == from_dump[key], key
