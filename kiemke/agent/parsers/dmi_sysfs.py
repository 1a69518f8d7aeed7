"""SMBIOS strings as Linux exposes them in /sys/class/dmi/id (and dmidecode prints them).

Vendors leave placeholders in fields they did not fill; those are not facts and are
dropped here, once, for every source (sysfs, dmidecode, WMI).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from kiemke.agent.parsers.chassis import chassis_code

_JUNK = {
    "", "to be filled by o.e.m.", "to be filled by oem", "default string", "default",
    "system product name", "system manufacturer", "system version", "system serial number",
    "system name", "chassis serial number", "chassis manufacture", "chassis manufacturer",
    "chassis version", "base board serial number", "base board manufacturer",
    "base board product name", "base board version", "not specified", "not available",
    "not applicable", "not settable", "not present", "not installed", "none", "n/a", "na",
    "unknown", "invalid", "<bad index>", "<out of spec>", "oem", "o.e.m.", "o.e.m", "oem_serial",
    "type1productconfigid", "type1family", "type2 - board serial number", "sku", "serial",
    "123456789", "1234567890", "0123456789", "empty", "null", "no asset information",
    "no asset tag", "asset-1234567890", "tbd by oem", "to be filled by o.e.m",
    "x.x", "abcdefghijklmnopqrstuvwxyz", "no enclosure",
}
# Template words vendors leave ("Type2 - Board Product Name1", "OEM Serial Number").
_TEMPLATE = re.compile(r"^(type\d+\s*-|to be filled|oem serial|system serial|default string)",
                       re.IGNORECASE)
# All zeros, all F, all x, dots, dashes: blank EEPROM or a template value.
_BLANK = re.compile(r"^[0\s.:-]+$|^[f\s.:-]+$|^[x\s.:-]+$|^\*+$", re.IGNORECASE)
# IBM and Lenovo System x write "-[7870AC1]-": the value is inside the brackets.
_IBM_BRACKETS = re.compile(r"^-\[(.*)\]-$")


def clean(value: object) -> str | None:
    """A vendor string, or None when the field is a placeholder."""
    if value is None:
        return None
    text = str(value).replace("\x00", "").strip()
    bracketed = _IBM_BRACKETS.match(text)
    if bracketed:
        text = bracketed.group(1).strip()
    if text.lower() in _JUNK or _BLANK.match(text) or _TEMPLATE.match(text):
        return None
    return text[:512]


# SMBIOS: mm/dd/yyyy (some firmware pads the month to three digits: "001/22/2018").
_SLASHED = re.compile(r"^(?P<m>\d{1,3})/(?P<d>\d{1,2})/(?P<y>\d{4}|\d{2})$")
_DATE_FORMATS = (
    re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$"),
    re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"),  # CIM datetime prefix
)


def parse_bios_date(value: str | None, two_digit_years: bool = False) -> date | None:
    """A BIOS release date ("12/01/2011", "2011-12-01", "20111201..."), None when unusable.

    A two-digit year ("01/19/20") is read only when `two_digit_years` is set: SMBIOS
    before 2.3 allowed mm/dd/yy (19xx above 80, else 20xx). From 2.3 on the year has four
    digits, so two digits mean a field cut short ("01/19/2018" -> "01/19/20"), and
    guessing would give a wrong date: it is unknown instead.
    """
    text = clean(value)
    if not text:
        return None
    m = _SLASHED.match(text)
    if m is None:
        m = next((f.match(text) for f in _DATE_FORMATS if f.match(text)), None)
    if m is None:
        return None
    year = int(m.group("y"))
    if len(m.group("y")) == 2:
        if not two_digit_years:
            return None
        year += 1900 if year >= 80 else 2000
    try:
        found = date(year, int(m.group("m")), int(m.group("d")))
    except ValueError:
        return None
    # Before the first SMBIOS spec, or a firmware that never set its clock.
    return found if found.year >= 1990 else None


def cpu_name(value: object) -> str | None:
    """A processor name with its padding runs collapsed: "Intel(R) Xeon(R) CPU
    E5504  @ 2.00GHz" (SMBIOS and WMI pad the name to a fixed width)."""
    text = clean(value)
    return " ".join(text.split()) if text else None


def best_model(manufacturer: str | None, product: str | None, version: str | None) -> str | None:
    """Lenovo puts the machine type (1298A8G) in product and the name in version."""
    if manufacturer and manufacturer.lower().startswith("lenovo") and version \
            and not version.lower().startswith("lenovo product"):
        return version
    return product


def parse_dmi_id(files: Mapping[str, str | None]) -> dict[str, object]:
    """The contents of /sys/class/dmi/id/<name> files -> the hardware facts they hold.

    Missing or unreadable files (the serials are root-only) are absent from `files`.
    Placeholders fall back as in dmidecode: the serial from the system, else the chassis
    (Dell's service tag on some models), else the baseboard; make and model from the
    system, else the baseboard.
    """
    manufacturer = clean(files.get("sys_vendor")) or clean(files.get("board_vendor"))
    product = clean(files.get("product_name"))
    version = clean(files.get("product_version"))
    code = chassis_code(clean(files.get("chassis_type")))
    return {
        "manufacturer": manufacturer,
        "model": best_model(manufacturer, product, version) or clean(files.get("board_name")),
        "product_name": product,
        "serial": (clean(files.get("product_serial")) or clean(files.get("chassis_serial"))
                   or clean(files.get("board_serial"))),
        "chassis_type_code": code,
        "chassis_vendor": clean(files.get("chassis_vendor")),
        "board_vendor": clean(files.get("board_vendor")),
        "firmware_vendor": clean(files.get("bios_vendor")),
        "firmware_version": clean(files.get("bios_version")),
        "firmware_date": parse_bios_date(files.get("bios_date")),
    }
