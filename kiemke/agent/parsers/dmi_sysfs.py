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
    "chassis serial number", "chassis manufacture", "chassis version",
    "base board serial number", "not specified", "not available", "not applicable",
    "none", "n/a", "na", "unknown", "invalid", "<bad index>", "<out of spec>", "oem",
    "o.e.m.", "o.e.m", "type1productconfigid", "type1family", "sku", "serial",
    "123456789", "1234567890", "0123456789", "empty", "null", "no asset information",
    "no asset tag", "asset-1234567890", "tbd by oem", "to be filled by o.e.m",
}
# All zeros, all F, all x, dots, dashes: blank EEPROM or a template value.
_BLANK = re.compile(r"^[0\s.:-]+$|^[f\s.:-]+$|^[x\s.:-]+$|^\*+$", re.IGNORECASE)


def clean(value: object) -> str | None:
    """A vendor string, or None when the field is a placeholder."""
    if value is None:
        return None
    text = str(value).replace("\x00", "").strip()
    if text.lower() in _JUNK or _BLANK.match(text):
        return None
    return text[:512]


_DATE_FORMATS = (
    re.compile(r"^(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4}|\d{2})$"),  # SMBIOS: mm/dd/yyyy
    re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$"),
    re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"),  # CIM datetime prefix
)


def parse_bios_date(value: str | None) -> date | None:
    """A BIOS release date ("12/01/2011", "2011-12-01", "20111201..."), None when unusable.

    Two-digit years (SMBIOS before 2.3) are 19xx above 80, else 20xx.
    """
    text = clean(value)
    if not text:
        return None
    for fmt in _DATE_FORMATS:
        m = fmt.match(text)
        if not m:
            continue
        year = int(m.group("y"))
        if year < 100:
            year += 1900 if year >= 80 else 2000
        try:
            found = date(year, int(m.group("m")), int(m.group("d")))
        except ValueError:
            return None
        # Before the first SMBIOS spec, or a firmware that never set its clock.
        return found if found.year >= 1990 else None
    return None


def best_model(manufacturer: str | None, product: str | None, version: str | None) -> str | None:
    """Lenovo puts the machine type (1298A8G) in product and the name in version."""
    if manufacturer and manufacturer.lower().startswith("lenovo") and version \
            and not version.lower().startswith("lenovo product"):
        return version
    return product


def parse_dmi_id(files: Mapping[str, str | None]) -> dict[str, object]:
    """The contents of /sys/class/dmi/id/<name> files -> the hardware facts they hold.

    Missing or unreadable files (product_serial is root-only) are absent from `files`.
    """
    manufacturer = clean(files.get("sys_vendor"))
    product = clean(files.get("product_name"))
    version = clean(files.get("product_version"))
    code = chassis_code(clean(files.get("chassis_type")))
    return {
        "manufacturer": manufacturer,
        "model": best_model(manufacturer, product, version),
        "product_name": product,
        "serial": clean(files.get("product_serial")),
        "chassis_type_code": code,
        "chassis_vendor": clean(files.get("chassis_vendor")),
        "board_vendor": clean(files.get("board_vendor")),
        "firmware_vendor": clean(files.get("bios_vendor")),
        "firmware_version": clean(files.get("bios_version")),
        "firmware_date": parse_bios_date(files.get("bios_date")),
    }
