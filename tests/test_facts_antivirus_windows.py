"""Windows antivirus flows on Linux: the PowerShell runner functions are replaced by
captured ConvertTo-Json output (tests/fixtures/windows/...), parsed by the real
powershell.parse_cim_json. Everything above the runner is the real code."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kiemke.agent.collectors import antivirus_windows
from kiemke.agent.collectors.antivirus import AntivirusCollector
from kiemke.agent.collectors.base import CollectorError, Context
from kiemke.agent.config import AgentConfig
from kiemke.agent.windows import powershell
from kiemke.schema import load_schema

WIN = Path(__file__).parent / "fixtures" / "windows"
NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


def capture(rel: str) -> list[dict[str, Any]]:
    return powershell.parse_cim_json((WIN / rel).read_text("utf-8"))


class FakeWindows:
    """Answers the runner calls from captures; records what was asked."""

    def __init__(self, cim: dict[str, Any], services: Any = (), processes: Any = (),
                 registry: dict[str, str] | None = None) -> None:
        self.cim = cim
        self.services_rows = services
        self.process_names = processes
        self.registry = registry or {}
        self.calls: list[tuple[str, str]] = []

    def cim_query(self, class_name: str, namespace: str = "root/cimv2",
                  properties: Any = (), timeout: float = 15.0) -> list[dict[str, Any]]:
        self.calls.append(("cim", f"{namespace}:{class_name}"))
        answer = self.cim.get(f"{namespace}:{class_name}")
        if isinstance(answer, CollectorError):
            raise answer
        if answer is None:
            raise CollectorError("unsupported", f"{namespace}:{class_name} does not exist")
        return capture(answer)

    def services(self, names: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        self.calls.append(("services", ",".join(names)))
        if isinstance(self.services_rows, CollectorError):
            raise self.services_rows
        rows = capture(self.services_rows) if isinstance(self.services_rows, str) else []
        wanted = {n.lower() for n in names}
        return [r for r in rows if r["Name"].lower() in wanted]

    def processes(self, timeout: float = 10.0) -> list[str]:
        self.calls.append(("processes", ""))
        if isinstance(self.process_names, str):
            return [str(x) for x in json.loads((WIN / self.process_names).read_text("utf-8"))]
        return list(self.process_names)

    def registry_values(self, key: str, timeout: float = 10.0) -> dict[str, Any]:
        self.calls.append(("registry", key))
        rel = self.registry.get(key)
        return capture(rel)[0] if rel else {}

    def registry_subkeys(self, key: str, timeout: float = 10.0) -> list[str]:
        self.calls.append(("subkeys", key))
        prefix = key + "\\"
        return sorted({k[len(prefix):].split("\\")[0] for k in self.registry
                       if k.startswith(prefix)})


@pytest.fixture
def ctx() -> Context:
    return Context(config=AgentConfig(), state_dir=Path("/nonexistent"), platform="windows",
                   now=NOW)


def run(monkeypatch: pytest.MonkeyPatch, ctx: Context, fake: FakeWindows) -> dict[str, Any]:
    for name in ("cim_query", "services", "processes", "registry_values", "registry_subkeys"):
        monkeypatch.setattr(powershell, name, getattr(fake, name))
    section = AntivirusCollector().collect(ctx)
    schema = load_schema()
    jsonschema.validate(section, {"$defs": schema["$defs"], **schema["properties"]["antivirus"]})
    return section


def by_name(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in section["products"]}


SC = "root/SecurityCenter2:AntiVirusProduct"
MP = "root/Microsoft/Windows/Defender:MSFT_MpComputerStatus"


def test_client_with_defender_on(monkeypatch: pytest.MonkeyPatch, ctx: Context) -> None:
    fake = FakeWindows({SC: "cim/root_SecurityCenter2__AntiVirusProduct.json",
                        MP: "cim/root_Microsoft_Windows_Defender__MSFT_MpComputerStatus.json"})
    section = run(monkeypatch, ctx, fake)
    assert "errors" not in section
    d = by_name(section)["Windows Defender"]
    assert d == {
        "name": "Windows Defender", "vendor": "Microsoft", "version": "4.18.25100.9",
        "enabled": True, "state": "on", "up_to_date": True,
        "signatures_version": "1.421.1234.0", "signatures_date": "2026-11-19T01:00:00Z",
        "signatures_age_days": 1.0, "licensed": True, "licence_expiry": None,
        "product_state": 397568, "detected_by": "securitycenter2"}
    assert ("cim", MP) in fake.calls


def test_client_with_kaspersky_on_and_defender_off(monkeypatch: pytest.MonkeyPatch,
                                                   ctx: Context) -> None:
    root = "HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\KasperskyLab\\protected\\KES\\Data"
    fake = FakeWindows({SC: "securitycenter/client-kaspersky-defender-off.json"},
                       registry={root: "securitycenter/registry-kaspersky-kes-data.json"})
    section = run(monkeypatch, ctx, fake)
    products = by_name(section)
    kes = products["Kaspersky Endpoint Security for Windows"]
    assert (kes["vendor"], kes["state"], kes["enabled"], kes["up_to_date"]) == (
        "Kaspersky", "on", True, True)
    assert kes["product_state"] == 266240
    assert kes["licensed"] is True
    assert kes["licence_expiry"] == "2027-03-20"  # NOW + LicDaysTillExpiration (120)
    assert kes["signatures_date"] == "2026-11-18T11:06:40Z"  # LastSuccessfulUpdate
    defender = products["Windows Defender"]
    assert (defender["state"], defender["enabled"]) == ("off", False)
    # MSFT_MpComputerStatus hangs next to another antivirus: it must not be queried.
    assert ("cim", MP) not in fake.calls


def test_kaspersky_release_unknown_to_the_vendor_table_is_still_read(
        monkeypatch: pytest.MonkeyPatch, ctx: Context) -> None:
    # A new KES release registers under a key name the table does not list yet.
    root = "HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\KasperskyLab\\protected"
    fake = FakeWindows({SC: "securitycenter/client-kaspersky-defender-off.json"},
                       registry={f"{root}\\KES.13.9\\Data":
                                 "securitycenter/registry-kaspersky-kes-data.json"})
    kes = by_name(run(monkeypatch, ctx, fake))["Kaspersky Endpoint Security for Windows"]
    assert (kes["licensed"], kes["licence_expiry"]) == (True, "2027-03-20")
    # One listing, one read: not one PowerShell start per known release name.
    registry_calls = [c for c in fake.calls if c[0] in ("subkeys", "registry")]
    assert registry_calls == [("subkeys", root), ("registry", f"{root}\\KES.13.9\\Data")]


def test_security_center_failure_is_an_error_not_absence(monkeypatch: pytest.MonkeyPatch,
                                                         ctx: Context) -> None:
    fake = FakeWindows({SC: CollectorError("timeout", "Get-CimInstance did not finish within "
                                           "10 s")}, services=(), processes=["explorer"])
    section = run(monkeypatch, ctx, fake)
    assert section["products"] == []
    messages = " ".join(e["message"] for e in section["errors"])
    assert section["errors"][0]["kind"] == "timeout"
    assert "Security Center" in messages


def test_server_without_security_center_uses_services(monkeypatch: pytest.MonkeyPatch,
                                                      ctx: Context) -> None:
    fake = FakeWindows({MP: "securitycenter/mp-computer-status-passive.json"},
                       services="securitycenter/services-server-windefend.json",
                       processes="securitycenter/processes-server-kaspersky.json")
    section = run(monkeypatch, ctx, fake)
    products = by_name(section)
    defender = products["Microsoft Defender Antivirus"]
    assert defender["detected_by"] == "service"
    # Passive Defender next to another AV is not the enabled antivirus.
    assert (defender["state"], defender["enabled"]) == ("passive", False)
    assert defender["signatures_date"] == "2026-11-10T01:00:00Z"
    assert defender["signatures_age_days"] == pytest.approx(9.96, abs=0.05)
    assert defender["up_to_date"] is False  # older than max_signature_age_days (7)
    kes = products["Kaspersky Endpoint Security"]
    # Seen only as a running process: present, protection state unknown (not "on").
    assert (kes["detected_by"], kes["state"], kes["enabled"]) == ("process", "unknown", None)
    assert "errors" not in section


def test_server_with_nothing_found_says_so(monkeypatch: pytest.MonkeyPatch,
                                           ctx: Context) -> None:
    fake = FakeWindows({}, services=(), processes=["svchost", "lsass"])
    section = run(monkeypatch, ctx, fake)
    assert section["products"] == []
    assert section["errors"][0]["kind"] == "unsupported"
    assert "extra_products" in section["errors"][0]["message"]


def test_bkav_detected_by_service_name(monkeypatch: pytest.MonkeyPatch, ctx: Context) -> None:
    fake = FakeWindows({SC: "securitycenter/client-defender-off-bkav.json"},
                       services="securitycenter/services-bkav.json", processes=["explorer"])
    section = run(monkeypatch, ctx, fake)
    bkav = by_name(section)["Bkav Pro"]
    # A running service is not an active product: state unknown without a status source.
    assert (bkav["vendor"], bkav["detected_by"], bkav["state"], bkav["enabled"]) == (
        "Bkav", "service", "unknown", None)
    assert bkav["licensed"] is None  # commercial, no licence source: unknown, not "yes"
    services_asked = next(c[1] for c in fake.calls if c[0] == "services")
    assert "BkavService" in services_asked and "WinDefend" not in services_asked


def test_config_product_by_process_with_vietnamese_name(monkeypatch: pytest.MonkeyPatch,
                                                        ctx: Context) -> None:
    ctx.config.antivirus_extra = ["Diệt virus Liên đoàn Lao động tỉnh Bắc Giang:LDAV.exe"]
    fake = FakeWindows({SC: "securitycenter/client-defender-off-bkav.json"}, services=(),
                       processes=["ldav", "explorer"])
    section = run(monkeypatch, ctx, fake)
    product = by_name(section)["Diệt virus Liên đoàn Lao động tỉnh Bắc Giang"]
    assert (product["detected_by"], product["state"]) == ("process", "unknown")


def test_bad_config_entry_names_the_setting(monkeypatch: pytest.MonkeyPatch,
                                            ctx: Context) -> None:
    ctx.config.antivirus_extra = ["Bkav Pro"]
    with pytest.raises(CollectorError, match=r"\[antivirus\] extra_products, entry 1"):
        AntivirusCollector().collect(ctx)


def test_defender_query_failure_keeps_security_center_facts(monkeypatch: pytest.MonkeyPatch,
                                                           ctx: Context) -> None:
    fake = FakeWindows({SC: "cim/root_SecurityCenter2__AntiVirusProduct.json",
                        MP: CollectorError("timeout", "did not finish within 6 s")})
    section = run(monkeypatch, ctx, fake)
    d = by_name(section)["Windows Defender"]
    assert (d["state"], d["up_to_date"], d["version"]) == ("on", True, None)
    assert section["errors"][0]["kind"] == "timeout"
    assert "MSFT_MpComputerStatus" in section["errors"][0]["message"]


def test_module_constants_match_documented_namespaces() -> None:
    assert antivirus_windows.SC_NAMESPACE == "root/SecurityCenter2"
    assert antivirus_windows.DEFENDER_TIMEOUT < antivirus_windows.SC_TIMEOUT
