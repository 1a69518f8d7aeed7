"""The detection corpus: real captured tool output, each capture with a hand-written
expected-facts file beside it (`<name>.expected.json`, written by reading the capture,
never by running the parser).

Layout (tests/fixtures/):
  dmidecode/*.txt, corpus/dmidecode/*.txt      `dmidecode` dumps
  corpus/wmi/<machine>__<Class>.<wmi|txt|json>  one WMI class of one machine: a `wmic
      /format:list` dump (.wmi UTF-16 as wmic writes it, .txt UTF-8 as pasted) or
      `Get-CimInstance | ConvertTo-Json` (.json). A Win32_NetworkAdapter capture of the
      same machine is read together with its Win32_NetworkAdapterConfiguration.

Every parser is run through the agent's own pure entry points (the same in every
version of the agent, so the corpus can be run against older parsers too) and every
fact is compared. A fact the parser produces but the expectation does not list counts
as wrong: the expectation must say what is right, including "unknown" (null).

Run `python tests/corpus.py [KIEMKE_SOURCE_DIR]` for the per-area accuracy table that
docs/facts.md quotes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
DMIDECODE_DIRS = (FIXTURES / "dmidecode", FIXTURES / "corpus" / "dmidecode")
WMI_DIR = FIXTURES / "corpus" / "wmi"
# The day support status is judged on: fixed, so the corpus never drifts with the clock.
ON = datetime(2026, 12, 1, tzinfo=timezone.utc)


@dataclass
class Capture:
    path: Path
    area: str
    expected: dict[str, Any]
    note: str | None = None


@dataclass
class Result:
    capture: Capture
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the parser raised

    def compare(self) -> list[tuple[str, Any, Any]]:
        """(fact, expected, found) for every fact that is not right."""
        wrong = []
        for key in sorted(set(self.capture.expected) | set(self.facts)):
            want = self.capture.expected.get(key, "<not in the expectation>")
            got = self.facts.get(key, "<not produced>")
            if want != got:
                wrong.append((key, want, got))
        return wrong


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (date, datetime)) else value


def _expected(path: Path) -> tuple[dict[str, Any], str | None]:
    data = json.loads(path.with_name(path.name.rsplit(".", 1)[0] + ".expected.json")
                      .read_text("utf-8"))
    return data["facts"], data.get("note")


def captures() -> list[Capture]:
    found: list[Capture] = []
    for directory in DMIDECODE_DIRS:
        for path in sorted(directory.glob("*.txt")):
            facts, note = _expected(path)
            found.append(Capture(path, "hardware (dmidecode)", facts, note))
    for path in sorted(WMI_DIR.glob("*__*.*")):
        if path.name.endswith(".expected.json") or "__Win32_NetworkAdapter." in path.name:
            continue
        cls = path.name.split("__", 1)[1].rsplit(".", 1)[0]
        facts, note = _expected(path)
        found.append(Capture(path, WMI_AREAS[cls], facts, note))
    return found


# ---------------------------------------------------------------------------------
# Runners: capture -> facts, through entry points every agent version has.


def _dmidecode(path: Path) -> dict[str, Any]:
    from kiemke.agent.parsers import dmidecode
    from kiemke.agent.parsers.chassis import detect_hypervisor

    text = path.read_text("utf-8")
    structures = dmidecode.parse_dmidecode(text)
    facts = dmidecode.dmidecode_facts(structures, *(
        [dmidecode.parse_dmidecode_table(text).smbios_version]
        if hasattr(dmidecode, "parse_dmidecode_table") else []))
    if hasattr(dmidecode, "read_dmidecode"):
        complete = dmidecode.read_dmidecode(text)[1] is None
    else:
        complete = True  # older parsers never noticed a dump that stopped early
    if "hypervisor" not in facts:
        facts["hypervisor"] = detect_hypervisor(facts.get("manufacturer"),
                                                facts.get("product_name"),
                                                facts.get("firmware_vendor"),
                                                facts.get("firmware_version"))
    out = {k: _iso(facts.get(k)) for k in DMI_FACTS if k in facts}
    out["complete"] = complete
    return out


DMI_FACTS = ("manufacturer", "model", "serial", "chassis_type_code", "firmware_vendor",
             "firmware_version", "firmware_date", "cpu_model", "cpu_sockets",
             "cores_physical", "cores_logical", "memory_bytes", "memory_modules",
             "hypervisor")


def _wmi_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".json":
        from kiemke.agent.windows.powershell import parse_cim_json

        return parse_cim_json(path.read_text("utf-8"))
    from kiemke.agent.parsers.wmi import parse_wmic_list

    return parse_wmic_list(path.read_bytes())


def _hardware(key: str) -> Callable[[Path], dict[str, Any]]:
    def run(path: Path) -> dict[str, Any]:
        from kiemke.agent.collectors.hardware_windows import hardware_facts

        facts, firmware_date, _battery = hardware_facts({key: _wmi_rows(path)}, None)
        if key == "cpu":
            cpu = facts["cpu"]
            return {"cpu_model": cpu.get("model"), **{
                k: cpu[k] for k in ("sockets", "cores_physical", "cores_logical", "max_mhz")
                if k in cpu}}
        if key == "bios":
            return {"firmware_vendor": facts["firmware"]["vendor"],
                    "firmware_version": facts["firmware"]["version"],
                    "firmware_date": _iso(firmware_date), "serial": facts["serial"],
                    "hypervisor": facts["hypervisor"]}
        if key == "memory":
            return {"memory_bytes": facts["memory_bytes"]}
        return {"manufacturer": facts["manufacturer"], "model": facts["model"],
                "hypervisor": facts["hypervisor"], "memory_bytes": facts["memory_bytes"]}
    return run


def _os(path: Path) -> dict[str, Any]:
    from kiemke.agent.collectors.os_info import support_status
    from kiemke.agent.collectors.os_info_windows import os_facts
    from kiemke.agent.parsers.wmi import normalise_cim

    rows = _wmi_rows(path)
    facts, end = os_facts(normalise_cim(rows[0]) if rows else {}, {})
    return {"name": facts["name"], "build": facts["build"], "end_of_support": _iso(end),
            "supported": support_status(end, ON)}


def _network(path: Path) -> dict[str, Any]:
    from kiemke.agent.parsers import win_network

    configs = _wmi_rows(path)
    sibling = next(iter(sorted(path.parent.glob(
        path.name.split("__", 1)[0] + "__Win32_NetworkAdapter.*"))), None)
    adapters = _wmi_rows(sibling) if sibling else None
    ifaces = win_network.interfaces(configs, adapters)
    out: dict[str, Any] = {
        "default_gateway": (win_network.default_gateway(configs, adapters) or {}).get(
            "address"),
        "dns_servers": win_network.dns_servers(configs),
        "interface_count": len(ifaces),
    }
    for i in ifaces:
        prefix = f"interface[{i['name']}]"
        out[f"{prefix}.kind"] = i.get("kind")
        dhcp = i.get("dhcp") or {}
        for k in ("enabled", "server", "lease_obtained", "lease_expires"):
            out[f"{prefix}.dhcp_{k}"] = dhcp.get(k) if "dhcp" in i else "<not collected>"
    return out


WMI_AREAS = {
    "Win32_Processor": "hardware (WMI)", "Win32_BIOS": "hardware (WMI)",
    "Win32_ComputerSystem": "hardware (WMI)", "Win32_PhysicalMemory": "hardware (WMI)",
    "Win32_OperatingSystem": "OS support (WMI)",
    "Win32_NetworkAdapterConfiguration": "network (WMI)",
}
WMI_RUNNERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "Win32_Processor": _hardware("cpu"), "Win32_BIOS": _hardware("bios"),
    "Win32_ComputerSystem": _hardware("cs"), "Win32_PhysicalMemory": _hardware("memory"),
    "Win32_OperatingSystem": _os, "Win32_NetworkAdapterConfiguration": _network,
}


def run(capture: Capture) -> Result:
    if capture.area == "hardware (dmidecode)":
        runner = _dmidecode
    else:
        runner = WMI_RUNNERS[capture.path.name.split("__", 1)[1].rsplit(".", 1)[0]]
    try:
        return Result(capture, runner(capture.path))
    except Exception as exc:  # noqa: BLE001 - the report counts a raising parser as wrong
        return Result(capture, error=f"{type(exc).__name__}: {exc}")


def accuracy(results: list[Result]) -> dict[str, tuple[int, int, int]]:
    """area -> (captures, facts right, facts expected)."""
    table: dict[str, tuple[int, int, int]] = {}
    for r in results:
        n, right, total = table.get(r.capture.area, (0, 0, 0))
        expected = len(r.capture.expected)
        good = 0 if r.error else expected - sum(1 for k, *_ in r.compare()
                                                if k in r.capture.expected)
        table[r.capture.area] = (n + 1, right + good, total + expected)
    return table


def main() -> int:
    results = [run(c) for c in captures()]
    for area, (n, right, total) in sorted(accuracy(results).items()):
        print(f"| {area} | {n} | {right}/{total} | {100 * right / total:.1f}% |")
    for r in results:
        if r.error or r.compare():
            print(f"- {r.capture.path.name}: {r.error or r.compare()}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1:  # an older checkout's source tree, for the "before" figures
        sys.path.insert(0, sys.argv[1])
    sys.exit(main())
