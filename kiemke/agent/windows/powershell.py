"""The one runner for Windows data: CIM queries and registry reads via PowerShell.

Every Windows collector goes through here, so timeouts, encoding and error wording are
handled once. Output is JSON (ConvertTo-Json) parsed by `parse_cim_json`, a pure
function tested on Linux against captured output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from kiemke.agent.collectors.base import CollectorError
from kiemke.agent.runner import run

POWERSHELL = "powershell.exe"
_SAFE = re.compile(r"^[A-Za-z0-9_/\\ .:-]+$")


def _check(name: str, value: str) -> str:
    # Arguments are spliced into a PowerShell command line: allow only plain names.
    if not _SAFE.match(value):
        raise ValueError(f"unsafe {name} for a CIM query: {value!r}")
    return value


def _powershell(script: str, timeout: float) -> str:
    argv = [POWERSHELL, "-NoLogo", "-NoProfile", "-NonInteractive",
            "-ExecutionPolicy", "Bypass", "-Command",
            "[Console]::OutputEncoding=[Text.Encoding]::UTF8; " + script]
    return run(argv, timeout=timeout)


def _load_json(text: str, what: str) -> Any:
    """PowerShell's JSON output; None when it printed nothing (ConvertTo-Json of nothing)."""
    text = text.strip().lstrip("\ufeff")
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CollectorError("failed", f"{what} returned output that is not JSON: {exc}") \
            from exc


def parse_cim_json(text: str) -> list[dict[str, Any]]:
    """ConvertTo-Json prints nothing for no instances, an object for one, a list for more."""
    data = _load_json(text, "PowerShell")
    if data is None:
        return []
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list) and all(isinstance(x, dict) for x in data):
        return data
    raise CollectorError("failed", "PowerShell returned JSON that is not a list of objects")


def cim_query(class_name: str, namespace: str = "root/cimv2",
              properties: Sequence[str] = (), timeout: float = 15.0) -> list[dict[str, Any]]:
    """Get-CimInstance CLASS [-Namespace NS] | Select-Object PROPS | ConvertTo-Json."""
    script = _cim_expr(class_name, namespace, properties) + " | ConvertTo-Json -Depth 4 -Compress"
    try:
        return parse_cim_json(_powershell(script, timeout))
    except CollectorError as exc:
        if exc.kind == "failed" and "not JSON" not in exc.message:
            raise _query_error(namespace, class_name, exc.message) from exc
        raise


def _cim_expr(class_name: str, namespace: str, properties: Sequence[str]) -> str:
    _check("class", class_name)
    _check("namespace", namespace)
    select = ""
    if properties:
        select = " | Select-Object " + ",".join(_check("property", p) for p in properties)
    return (f"Get-CimInstance -Namespace '{namespace}' -ClassName '{class_name}' "
            f"-ErrorAction Stop{select}")


def _query_error(namespace: str, class_name: str, message: str) -> CollectorError:
    if "Invalid namespace" in message or "Invalid class" in message \
            or "Not supported" in message:
        return CollectorError("unsupported", f"{namespace}:{class_name} does not exist "
                              "on this Windows edition")
    if "Access denied" in message or "Access is denied" in message:
        return CollectorError("permission", f"reading {namespace}:{class_name} needs "
                              "administrator rights; run the kiemke agent service as "
                              "LocalSystem")
    return CollectorError("failed", f"reading {namespace}:{class_name} failed: {message}"[:1000])


CimQuery = tuple[str, str, Sequence[str]]  # (class, namespace, properties)


def cim_batch(queries: dict[str, CimQuery], timeout: float = 20.0
              ) -> dict[str, list[dict[str, Any]] | CollectorError]:
    """Several CIM queries in ONE PowerShell process (starting one costs ~0.3 s of CPU).

    Returns key -> instances, or key -> CollectorError for a query that failed alone.
    """
    parts = ["$r = [ordered]@{}"]
    for key, (class_name, namespace, properties) in queries.items():
        _check("key", key)
        parts.append(f"try {{ $r['{key}'] = @({_cim_expr(class_name, namespace, properties)}) }}"
                     f" catch {{ $r['{key}'] = @{{ '__error__' = $_.Exception.Message }} }}")
    parts.append("$r | ConvertTo-Json -Depth 5 -Compress")
    rows = parse_cim_json(_powershell("; ".join(parts), timeout))
    data = rows[0] if rows else {}
    return decode_batch(data, queries)


def decode_batch(data: dict[str, Any], queries: dict[str, CimQuery]
                 ) -> dict[str, list[dict[str, Any]] | CollectorError]:
    """The JSON object cim_batch's script prints -> per-key instances or errors."""
    out: dict[str, list[dict[str, Any]] | CollectorError] = {}
    for key, (class_name, namespace, _props) in queries.items():
        value = data.get(key)
        if isinstance(value, dict) and "__error__" in value:
            out[key] = _query_error(namespace, class_name, str(value["__error__"]))
        elif value is None:
            out[key] = []
        elif isinstance(value, dict):
            out[key] = [value]
        elif isinstance(value, list) and all(isinstance(x, dict) for x in value):
            out[key] = value
        else:
            out[key] = CollectorError("failed", f"{namespace}:{class_name} returned "
                                      "something that is not a list of objects")
    return out


def registry_values(key: str, timeout: float = 10.0) -> dict[str, Any]:
    """All values of one registry key (HKLM:\\SOFTWARE\\...), {} when the key is absent."""
    _check("registry key", key)
    script = (f"$k = Get-ItemProperty -Path 'Registry::{key}' -ErrorAction SilentlyContinue; "
              "if ($k) { $k | Select-Object * -ExcludeProperty PS* | ConvertTo-Json -Compress }")
    rows = parse_cim_json(_powershell(script, timeout))
    return rows[0] if rows else {}


def registry_subkeys(key: str, timeout: float = 10.0) -> list[str]:
    """Names of the subkeys of one registry key, [] when the key is absent."""
    _check("registry key", key)
    script = (f"Get-ChildItem -Path 'Registry::{key}' -ErrorAction SilentlyContinue | "
              "Select-Object -ExpandProperty PSChildName | ConvertTo-Json -Compress")
    return parse_string_list(_powershell(script, timeout), "Get-ChildItem")


def parse_string_list(text: str, what: str) -> list[str]:
    """ConvertTo-Json of strings: nothing, one string, or a list of strings."""
    data = _load_json(text, what)
    if data is None:
        return []
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list):
        raise CollectorError("failed", f"{what} returned JSON that is not a list of names")
    return [str(x) for x in data]


def services(names: Sequence[str], timeout: float = 10.0) -> list[dict[str, Any]]:
    """Get-Service for the given names: Name, DisplayName, Status (as text), StartType."""
    if not names:
        return []
    quoted = ",".join(f"'{_check('service', n)}'" for n in names)
    script = (f"Get-Service -Name {quoted} -ErrorAction SilentlyContinue | "
              "Select-Object Name,DisplayName,@{n='Status';e={$_.Status.ToString()}},"
              "@{n='StartType';e={$_.StartType.ToString()}} | ConvertTo-Json -Compress")
    return parse_cim_json(_powershell(script, timeout))


def processes(timeout: float = 10.0) -> list[str]:
    """Names of running processes (without .exe), lower-cased."""
    script = "Get-Process | Select-Object -ExpandProperty ProcessName | ConvertTo-Json -Compress"
    return [name.lower() for name in parse_string_list(_powershell(script, timeout),
                                                       "Get-Process")]


def script_rows(name: str, script: str, what: str, timeout: float = 15.0
                ) -> list[dict[str, Any]]:
    """Run a fixed script of the agent's own whose last command is ConvertTo-Json of
    objects; returns the objects. `name` identifies the script (tests replay captures
    by it), `what` names the data in error messages."""
    try:
        return parse_cim_json(_powershell(script, timeout))
    except CollectorError as exc:
        raise CollectorError(exc.kind, f"reading {what} failed: {exc.message}"[:1000]) from exc


def script_strings(name: str, script: str, what: str, timeout: float = 15.0) -> list[str]:
    """Like script_rows for a script that prints ConvertTo-Json of strings."""
    return parse_string_list(_powershell(script, timeout), what)
