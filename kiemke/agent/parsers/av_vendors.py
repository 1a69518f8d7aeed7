"""The table of known antivirus products and monitoring agents, and name matching.

The table ships as kiemke/agent/data/av_vendors.json; sites add products the table does
not know through the agent config ([antivirus] extra_products, [security_monitoring]
agents), each entry "Product name:name1,name2" where the names are Windows service
names or process names (Linux process names, systemd units ending in .service, or
absolute paths of files that show the product is installed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any


class VendorConfigError(ValueError):
    """An extra product entry in the agent config cannot be understood."""


@dataclass(frozen=True)
class Product:
    """One known product (antivirus) or agent (security monitoring)."""

    id: str
    name: str
    vendor: str | None = None
    licence: str = "commercial"  # free | bundled | commercial
    match: tuple[re.Pattern[str], ...] = ()
    win_services: tuple[str, ...] = ()
    win_processes: tuple[str, ...] = ()
    win_registry: tuple[str, ...] = ()
    linux_binaries: tuple[str, ...] = ()
    linux_processes: tuple[str, ...] = ()
    linux_units: tuple[str, ...] = ()
    linux_files: tuple[str, ...] = ()
    from_config: bool = False

    def matches_name(self, display_name: str) -> bool:
        if any(p.search(display_name) for p in self.match):
            return True
        # Entries from the config match their own name exactly (case-insensitive).
        return self.from_config and display_name.strip().lower() == self.name.lower()


@dataclass(frozen=True)
class VendorTable:
    antivirus: tuple[Product, ...] = field(default_factory=tuple)
    monitoring: tuple[Product, ...] = field(default_factory=tuple)

    def match_antivirus(self, display_name: str) -> Product | None:
        for product in self.antivirus:
            if product.matches_name(display_name):
                return product
        return None


def _product(entry: dict[str, Any]) -> Product:
    win = entry.get("windows", {})
    lin = entry.get("linux", {})
    return Product(
        id=entry["id"], name=entry["name"], vendor=entry.get("vendor"),
        licence=entry.get("licence", "commercial"),
        match=tuple(re.compile(p, re.IGNORECASE) for p in entry.get("match", ())),
        win_services=tuple(win.get("services", ())),
        win_processes=tuple(x.lower() for x in win.get("processes", ())),
        win_registry=tuple(win.get("registry", ())),
        linux_binaries=tuple(lin.get("binaries", ())),
        linux_processes=tuple(lin.get("processes", ())),
        linux_units=tuple(lin.get("units", ())),
        linux_files=tuple(lin.get("files", ())),
    )


def parse_table(data: dict[str, Any]) -> VendorTable:
    return VendorTable(antivirus=tuple(_product(e) for e in data.get("antivirus", ())),
                       monitoring=tuple(_product(e) for e in data.get("monitoring", ())))


@lru_cache(maxsize=1)
def builtin_table() -> VendorTable:
    text = resources.files("kiemke.agent").joinpath("data/av_vendors.json").read_text("utf-8")
    return parse_table(json.loads(text))


def parse_extra(entry: str, setting: str, index: int) -> Product:
    """"Product name:service1,process1" -> Product. Names are split by platform when used:
    an absolute path is a file, a name ending in .service is a systemd unit, anything else
    is both a Windows service / process and a Linux process name."""
    name, sep, rest = entry.partition(":")
    name = name.strip()
    names = [x.strip() for x in rest.split(",") if x.strip()] if sep else []
    if not name or not names:
        raise VendorConfigError(
            f"{setting}, entry {index + 1} ({entry!r}): write it as "
            "\"Product name:service-or-process,another\", for example "
            "\"Bkav Pro:BkavService,BkavService\"")
    files = tuple(n for n in names if n.startswith("/"))
    units = tuple(n for n in names if n.endswith(".service"))
    plain = tuple(n for n in names if n not in files and n not in units)
    procs = tuple(n.lower().removesuffix(".exe") for n in plain)
    return Product(id="config:" + name.lower(), name=name, vendor=None, licence="commercial",
                   win_services=plain, win_processes=procs, linux_processes=procs,
                   linux_units=units, linux_files=files, from_config=True)


def table_with_extras(antivirus_extra: Sequence[str] = (),
                      monitoring_extra: Sequence[str] = ()) -> VendorTable:
    """The built-in table plus the site's config entries (config entries first, so a
    site can rename a product it knows better)."""
    base = builtin_table()
    av = tuple(parse_extra(e, "[antivirus] extra_products", i)
               for i, e in enumerate(antivirus_extra))
    mon = tuple(parse_extra(e, "[security_monitoring] agents", i)
                for i, e in enumerate(monitoring_extra))
    return VendorTable(antivirus=av + base.antivirus, monitoring=mon + base.monitoring)


def all_names(products: Iterable[Product], attr: str) -> list[str]:
    """Every distinct value of one name list over the products, in table order."""
    seen: dict[str, None] = {}
    for p in products:
        for name in getattr(p, attr):
            seen.setdefault(name, None)
    return list(seen)
