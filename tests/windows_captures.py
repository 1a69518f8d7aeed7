"""Replay captured Windows data through kiemke.agent.windows.powershell on Linux.

Layout (tests/fixtures/windows/ by default; any directory with this shape works):
  cim/<namespace>__<Class>.json    ConvertTo-Json output of Get-CimInstance for that class;
                                   namespace with "/" -> "_": root_cimv2__Win32_BIOS.json,
                                   root_SecurityCenter2__AntiVirusProduct.json
  registry/<key>.json              values of one key, "\\" -> "__", hive spelled out:
                                   HKEY_LOCAL_MACHINE__SOFTWARE__Microsoft__Cryptography.json
  services.json                    list of {Name, DisplayName, Status, StartType}
  processes.json                   list of process names (without .exe)
  scripts/<name>.json              ConvertTo-Json output of the agent's own script <name>
                                   (powershell.script_rows / script_strings)
A class without a capture behaves as on a Windows edition without that class
(CollectorError "unsupported"); a key without a capture as an absent key ({}).
Captures are parsed by the real parse_cim_json, so a truncated capture fails as it would.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kiemke.agent.collectors.base import CollectorError
from kiemke.agent.windows import powershell

CAPTURES = Path(__file__).parent / "fixtures" / "windows"
_HIVES = {"HKLM": "HKEY_LOCAL_MACHINE", "HKCU": "HKEY_CURRENT_USER", "HKU": "HKEY_USERS"}
PATCHED = ("cim_query", "cim_batch", "registry_values", "registry_subkeys", "services",
           "processes", "script_rows", "script_strings")


def cim_capture_name(class_name: str, namespace: str = "root/cimv2") -> str:
    ns = re.sub(r"[\\/]+", "_", namespace.strip("/\\"))
    return f"{ns}__{class_name}.json"


def registry_capture_name(key: str) -> str:
    key = re.sub(r"^Registry::", "", key.strip(), flags=re.IGNORECASE)
    hive, _, rest = key.partition("\\")
    hive = _HIVES.get(hive.rstrip(":").upper(), hive.rstrip(":"))
    return "__".join([hive, *[p for p in rest.split("\\") if p]]) + ".json"


def _find(directory: Path, name: str) -> Path | None:
    """Case-insensitive, as Windows names are."""
    if not directory.is_dir():
        return None
    wanted = name.lower()
    for path in directory.iterdir():
        if path.name.lower() == wanted:
            return path
    return None


class WindowsCaptures:
    """Stand-ins for the powershell module's functions, same signatures."""

    def __init__(self, root: Path = CAPTURES) -> None:
        self.root = Path(root)
        self.calls: list[tuple[str, str]] = []

    def cim_query(self, class_name: str, namespace: str = "root/cimv2",
                  properties: Sequence[str] = (), timeout: float = 15.0
                  ) -> list[dict[str, Any]]:
        self.calls.append(("cim", f"{namespace}:{class_name}"))
        path = _find(self.root / "cim", cim_capture_name(class_name, namespace))
        if path is None:
            raise CollectorError("unsupported", f"{namespace}:{class_name} does not exist "
                                 "on this Windows edition")
        rows = powershell.parse_cim_json(path.read_text("utf-8"))
        if properties:  # Select-Object: exactly these properties, null when missing
            rows = [{p: row.get(p) for p in properties} for row in rows]
        return rows

    def cim_batch(self, queries: dict[str, powershell.CimQuery], timeout: float = 20.0
                  ) -> dict[str, list[dict[str, Any]] | CollectorError]:
        out: dict[str, list[dict[str, Any]] | CollectorError] = {}
        for key, (class_name, namespace, properties) in queries.items():
            try:
                out[key] = self.cim_query(class_name, namespace, properties)
            except CollectorError as exc:
                out[key] = exc
        return out

    def registry_values(self, key: str, timeout: float = 10.0) -> dict[str, Any]:
        self.calls.append(("registry", key))
        path = _find(self.root / "registry", registry_capture_name(key))
        if path is None:
            return {}
        rows = powershell.parse_cim_json(path.read_text("utf-8"))
        return rows[0] if rows else {}

    def registry_subkeys(self, key: str, timeout: float = 10.0) -> list[str]:
        """Subkeys that have a capture file below `key`."""
        self.calls.append(("subkeys", key))
        prefix = registry_capture_name(key).removesuffix(".json") + "__"
        directory = self.root / "registry"
        names = [p.name for p in directory.glob("*.json")] if directory.is_dir() else []
        return sorted({n[len(prefix):].removesuffix(".json").split("__")[0]
                       for n in names if n.startswith(prefix)})

    def services(self, names: Sequence[str], timeout: float = 10.0) -> list[dict[str, Any]]:
        self.calls.append(("services", ",".join(names)))
        path = _find(self.root, "services.json")
        rows = powershell.parse_cim_json(path.read_text("utf-8")) if path else []
        wanted = {n.lower() for n in names}
        return [r for r in rows if str(r.get("Name", "")).lower() in wanted]

    def processes(self, timeout: float = 10.0) -> list[str]:
        self.calls.append(("processes", ""))
        path = _find(self.root, "processes.json")
        if path is None:
            return []
        data = json.loads(path.read_text("utf-8"))
        return [str(x).lower() for x in ([data] if isinstance(data, str) else data)]

    def script_rows(self, name: str, script: str, what: str, timeout: float = 15.0
                    ) -> list[dict[str, Any]]:
        self.calls.append(("script", name))
        path = _find(self.root / "scripts", f"{name}.json")
        return powershell.parse_cim_json(path.read_text("utf-8")) if path else []

    def script_strings(self, name: str, script: str, what: str, timeout: float = 15.0
                       ) -> list[str]:
        self.calls.append(("script", name))
        path = _find(self.root / "scripts", f"{name}.json")
        return powershell.parse_string_list(path.read_text("utf-8"), what) if path else []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> WindowsCaptures:
        """Patch the powershell module, and any kiemke module that imported a function
        from it by name, so no PowerShell is ever started."""
        originals = {name: getattr(powershell, name) for name in PATCHED}
        for mod in list(sys.modules.values()):
            if not getattr(mod, "__name__", "").startswith("kiemke."):
                continue
            for name, original in originals.items():
                if getattr(mod, name, None) is original:
                    monkeypatch.setattr(mod, name, getattr(self, name))

        def no_powershell(script: str, timeout: float) -> str:
            raise AssertionError(f"a collector ran PowerShell outside the captured "
                                 f"functions: {script[:200]}")

        monkeypatch.setattr(powershell, "_powershell", no_powershell)
        return self
