"""Antivirus on Windows: Security Center first, Defender detail, services/processes for
what Security Center does not list (Windows Server has no Security Center), licence
facts from the vendors' registry keys.

All Windows access goes through kiemke.agent.windows.powershell.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from kiemke.agent.collectors.antivirus import max_signature_age, vendor_table
from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.parsers import bitdefender, eset
from kiemke.agent.parsers.av_common import (
    fill_signature_age,
    from_epoch,
    parse_datetime,
    product_record,
    reconcile,
)
from kiemke.agent.parsers.av_vendors import Product, VendorTable, all_names
from kiemke.agent.parsers.defender import MP_PROPERTIES, parse_mp_computer_status
from kiemke.agent.parsers.securitycenter import SecurityCenterProduct, parse_antivirus_products
from kiemke.agent.windows import powershell

COLLECTOR = "antivirus"
SC_NAMESPACE = "root/SecurityCenter2"
SC_PROPERTIES = ("displayName", "productState", "pathToSignedProductExe", "timestamp")
DEFENDER_NAMESPACE = "root/Microsoft/Windows/Defender"
SC_TIMEOUT = 10.0
# MSFT_MpComputerStatus can hang for a long time when another antivirus owns the machine:
# query it only when Defender is the active product, and briefly.
DEFENDER_TIMEOUT = 6.0
HKLM = "HKEY_LOCAL_MACHINE\\SOFTWARE"


def _error(kind: str, message: str, product: str | None = None) -> dict[str, str]:
    return CollectorError(kind, message).entry(COLLECTOR, product)


def _licensed_by_kind(product: Product | None, state: str) -> bool | None:
    if state == "expired":
        return False  # Security Center's own verdict: the subscription has expired
    if product is not None and product.licence in ("free", "bundled"):
        return True
    return None


def _from_security_center(scp: SecurityCenterProduct, product: Product | None
                          ) -> dict[str, Any]:
    ps = scp.product_state
    state = ps.state if ps else "unknown"
    vendor = product.vendor if product else ("Microsoft" if ps and ps.microsoft else None)
    return product_record(
        scp.name, "securitycenter2", vendor=vendor,
        enabled=(state == "on") if ps else None, state=state,
        up_to_date=ps.up_to_date if ps else None,
        product_state=ps.value if ps else None,
        licensed=_licensed_by_kind(product, state))


def _merge_defender(record: dict[str, Any], ctx: Context, errors: list[dict]) -> None:
    try:
        rows = powershell.cim_query("MSFT_MpComputerStatus", DEFENDER_NAMESPACE,
                                    MP_PROPERTIES, timeout=DEFENDER_TIMEOUT)
    except CollectorError as exc:
        errors.append(_error(exc.kind, "Microsoft Defender details (MSFT_MpComputerStatus) "
                             f"could not be read: {exc.message}", record["name"]))
        return
    if not rows:
        errors.append(_error("not_found", "MSFT_MpComputerStatus returned no instance: "
                             "Microsoft Defender is not installed or its service is stopped",
                             record["name"]))
        return
    status = parse_mp_computer_status(rows[0])
    record["version"] = status.version or record["version"]
    if status.state != "unknown":
        record["state"], record["enabled"] = status.state, status.enabled
    record["signatures_version"] = status.signatures_version
    signed_at = status.signatures_at
    if signed_at is None and status.signature_age_days is not None:
        # Only the age, as of the status query: measured back from this collection.
        signed_at = ctx.now - timedelta(days=status.signature_age_days)
    # The age decides freshness (reconcile), not Security Center's bit alone.
    fill_signature_age(record, signed_at, ctx.now, max_signature_age(ctx))


# --- licence facts from the vendors' registry keys -----------------------------------

def _kaspersky(record: dict[str, Any], product: Product, ctx: Context) -> None:
    """HKLM/SOFTWARE/[WOW6432Node/]KasperskyLab/protected/<product>/Data: LastSuccessfulUpdate
    (Unix time), LicKeyType (0 = no key), LicDaysTillExpiration (days)."""
    for root in (f"{HKLM}\\WOW6432Node\\KasperskyLab\\protected",
                 f"{HKLM}\\KasperskyLab\\protected"):
        # The key name changes with every release (KES, KES.12, AVP21.3, ...): list what is
        # there once, known names first, so a new release is still read.
        present = powershell.registry_subkeys(root)
        known = [s for s in product.win_registry if s in present]
        for sub in known + [s for s in present if s not in known]:
            values = powershell.registry_values(f"{root}\\{sub}\\Data")
            if not values:
                continue
            updated = from_epoch(values.get("LastSuccessfulUpdate"))
            fill_signature_age(record, updated, ctx.now, max_signature_age(ctx))
            key_type = values.get("LicKeyType")
            days = values.get("LicDaysTillExpiration")
            if isinstance(key_type, int) and key_type == 0:
                record["licensed"] = False
            elif isinstance(key_type, int) and isinstance(days, int):
                if days > 0x7FFFFFFF:  # a DWORD holding a negative count: expired
                    days -= 0x100000000
                record["licence_expiry"] = (ctx.now + timedelta(days=days)).date().isoformat()
                record["licensed"] = days > 0
            return


def _eset(record: dict[str, Any], product: Product, ctx: Context) -> None:
    """HKLM/SOFTWARE/ESET/ESET Security/CurrentVersion/Info and AppDataDir/License/license.lf."""
    info = powershell.registry_values(f"{HKLM}\\ESET\\ESET Security\\CurrentVersion\\Info")
    if not info:
        return
    record["version"] = record["version"] or info.get("ProductVersion")
    scanner = info.get("ScannerVersion")
    if scanner:
        record["signatures_version"] = str(scanner)
        modules = eset.parse_list_modules(f"EM002 {scanner}")
        if modules:
            fill_signature_age(record, modules[1], ctx.now, max_signature_age(ctx))
    app_data = info.get("AppDataDir")
    if app_data:
        lic = Path(str(app_data)) / "License" / "license.lf"
        try:
            expiry = eset.parse_license_lf(lic.read_bytes())
        except OSError:
            expiry = None
        if expiry:
            record["licence_expiry"] = expiry.isoformat()
            record["licensed"] = expiry >= ctx.now.date()


def _bitdefender(record: dict[str, Any], product: Product, ctx: Context) -> None:
    """HKLM/SOFTWARE/BitDefender/About (ProductVersion), .../Install SurveyDataInfo."""
    about = powershell.registry_values(f"{HKLM}\\BitDefender\\About")
    if about.get("ProductVersion"):
        record["version"] = record["version"] or str(about["ProductVersion"])
    install = powershell.registry_values(f"{HKLM}\\BitDefender\\Install")
    survey = install.get("SurveyDataInfo")
    if survey:
        expiry = bitdefender.parse_survey_data(str(survey), ctx.now.date())
        if expiry:
            record["licence_expiry"] = expiry.isoformat()
            record["licensed"] = expiry >= ctx.now.date()


def _state_open(record: dict[str, Any]) -> bool:
    """A registry status may set the state only where nothing better said it: not over
    Security Center, and never "on" over services that are all stopped."""
    return record["detected_by"] != "securitycenter2" and record["state"] == "unknown"


def _registry_first(keys: tuple[str, ...]) -> dict[str, Any]:
    for key in keys:
        values = powershell.registry_values(key)
        if values:
            return values
    return {}


SEP = "Symantec\\Symantec Endpoint Protection\\CurrentVersion"


def _symantec(record: dict[str, Any], product: Product, ctx: Context) -> None:
    """HKLM/SOFTWARE/[WOW6432Node/]Symantec/Symantec Endpoint Protection/CurrentVersion
    (PRODUCTVERSION) and .../public-opstate (ASRunningStatus 1 = Auto-Protect running,
    LatestVirusDefsDate), the values Microsoft's Defender for Cloud assessment reads."""
    roots = (f"{HKLM}\\{SEP}", f"{HKLM}\\WOW6432Node\\{SEP}")
    info = _registry_first(roots)
    if info.get("PRODUCTVERSION"):
        record["version"] = record["version"] or str(info["PRODUCTVERSION"])
    opstate = _registry_first(tuple(r + "\\public-opstate" for r in roots))
    running = opstate.get("ASRunningStatus")
    if isinstance(running, int) and _state_open(record):
        record["state"] = "on" if running == 1 else "off"
    defs = parse_datetime(str(opstate["LatestVirusDefsDate"])) \
        if opstate.get("LatestVirusDefsDate") else None
    if defs is not None:
        record["signatures_version"] = record["signatures_version"] or str(
            opstate.get("LatestVirusDefsRevision") or "") or None
        fill_signature_age(record, defs, ctx.now, max_signature_age(ctx))


def _mcafee(record: dict[str, Any], product: Product, ctx: Context) -> None:
    """McAfee/Trellix ENS: HKLM/SOFTWARE/McAfee/Endpoint/AV (ProductVersion),
    .../AVSolution/MCSHIELDGLOBAL/GLOBAL (enableoas 1 = on-access scan on),
    .../AVSolution/DS/DS (dwContentMajorVersion, szContentCreationDate), as Microsoft's
    Defender for Cloud assessment documents them."""
    av = powershell.registry_values(f"{HKLM}\\McAfee\\Endpoint\\AV")
    if av.get("ProductVersion"):
        record["version"] = record["version"] or str(av["ProductVersion"])
    shield = powershell.registry_values(f"{HKLM}\\McAfee\\AVSolution\\MCSHIELDGLOBAL\\GLOBAL")
    oas = shield.get("enableoas")
    if isinstance(oas, int) and _state_open(record):
        record["state"] = "on" if oas == 1 else "off"
    ds = powershell.registry_values(f"{HKLM}\\McAfee\\AVSolution\\DS\\DS")
    if ds.get("dwContentMajorVersion") is not None:
        record["signatures_version"] = str(ds["dwContentMajorVersion"])
    created = parse_datetime(str(ds["szContentCreationDate"])) \
        if ds.get("szContentCreationDate") else None
    fill_signature_age(record, created, ctx.now, max_signature_age(ctx))


# Licence, signature and (where Security Center is silent) status facts per vendor.
VENDOR_READERS = {"kaspersky": _kaspersky, "eset": _eset, "bitdefender": _bitdefender,
                  "symantec": _symantec, "mcafee": _mcafee}


def read(ctx: Context, table: VendorTable | None = None) -> PlatformReading:
    """Every known product found here. `table` is for tests."""
    table = table or vendor_table(ctx)
    products: list[tuple[Product | None, dict[str, Any]]] = []
    errors: list[dict] = []
    security_center = True
    try:
        rows = powershell.cim_query("AntiVirusProduct", SC_NAMESPACE, SC_PROPERTIES,
                                    timeout=SC_TIMEOUT)
    except CollectorError as exc:
        rows = []
        security_center = False
        if exc.kind != "unsupported":
            errors.append(_error(exc.kind, "Windows Security Center (root/SecurityCenter2) "
                                 f"could not be read: {exc.message}"))
    for scp in parse_antivirus_products(rows):
        product = table.match_antivirus(scp.name)
        record = _from_security_center(scp, product)
        products.append((product, record))
        is_defender = (product is not None and product.id == "defender") or (
            scp.product_state is not None and scp.product_state.microsoft)
        if is_defender and record["state"] == "on":
            _merge_defender(record, ctx, errors)

    covered = {p.id for p, _ in products if p is not None}
    rest = [p for p in table.antivirus if p.id not in covered]
    service_rows: list[dict[str, Any]] | None = None
    wanted = all_names(rest, "win_services")
    if wanted:
        try:
            service_rows = powershell.services(wanted)
        except CollectorError as exc:
            errors.append(_error(exc.kind, f"Windows services could not be listed: {exc.message}"))
    by_service = {str(r.get("Name", "")).lower(): r for r in service_rows or ()}
    process_set: set[str] | None = None
    for product in rest:
        rows_for = [by_service[s.lower()] for s in product.win_services if s.lower() in by_service]
        if rows_for:
            # A running service is not an active product (Defender's service runs in
            # passive and EDR-block mode too): without a status the state is unknown.
            # Every service of the product stopped does show it is not protecting.
            running = any(str(r.get("Status", "")).lower() == "running" for r in rows_for)
            state = "unknown" if running else "off"
            record = product_record(product.name, "service", vendor=product.vendor,
                                    enabled=None if running else False, state=state,
                                    licensed=_licensed_by_kind(product, state))
            products.append((product, record))
            if product.id == "defender":
                # Its status class decides, running or not ("Not running", passive, on).
                _merge_defender(record, ctx, errors)
            continue
        if not product.win_processes:
            continue
        if process_set is None:
            try:
                process_set = set(powershell.processes())
            except CollectorError as exc:
                errors.append(_error(exc.kind, f"running processes could not be listed: "
                                     f"{exc.message}"))
                process_set = set()
        if any(p in process_set for p in product.win_processes):
            products.append((product, product_record(
                product.name, "process", vendor=product.vendor, enabled=None, state="unknown",
                licensed=_licensed_by_kind(product, "unknown"))))

    for product, record in products:
        reader = VENDOR_READERS.get(product.id) if product else None
        if reader is None or product is None:
            continue
        try:
            reader(record, product, ctx)
        except CollectorError as exc:
            errors.append(_error(exc.kind, f"{record['name']}: licence and signature "
                                 f"details could not be read from the registry: "
                                 f"{exc.message}", record["name"]))

    for _, record in products:
        for kind, message in reconcile(record, ctx.now, max_signature_age(ctx)):
            errors.append(_error(kind, message, record["name"]))
    if not products and not security_center:
        errors.append(_error("unsupported", "Windows Security Center is not available on this "
                             "Windows edition (Windows Server) and no known antivirus service "
                             "or process was found. If an antivirus is installed, add it to "
                             "[antivirus] extra_products in the agent configuration."))
    return PlatformReading(facts={"products": [r for _, r in products]}, errors=errors)
