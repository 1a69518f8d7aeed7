"""Antivirus on Linux: ClamAV from its database headers, vendor CLIs where installed,
everything else from one process scan.

CPU: a vendor CLI runs only when its binary exists (one stat per known path); the
process list is read once per collection and shared with security_monitoring.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from kiemke.agent.collectors.antivirus import max_signature_age
from kiemke.agent.collectors.base import CollectorError, Context
from kiemke.agent.parsers import bitdefender, clamav, drweb, eset, kesl, mdatp, sentinelone
from kiemke.agent.parsers.av_common import (
    ParseError,
    VendorStatus,
    fill_signature_age,
    product_record,
)
from kiemke.agent.parsers.av_vendors import Product, VendorTable
from kiemke.agent.runner import run

COLLECTOR = "antivirus"
CLAMAV_CONFS = ("/etc/clamav/freshclam.conf", "/etc/clamav/clamd.conf")
CLAMAV_DEFAULT_DB = "/var/lib/clamav"
CLI_TIMEOUT = 10.0

_scan_lock = threading.Lock()
_scan: tuple[datetime, frozenset[str]] | None = None


def process_names(now: datetime) -> frozenset[str]:
    """Lower-cased names of running processes, scanned once per collection (keyed by the
    collection's ctx.now, so antivirus and security_monitoring share one pass)."""
    global _scan
    with _scan_lock:
        if _scan is not None and _scan[0] == now:
            return _scan[1]
        names: set[str] = set()
        for proc in psutil.process_iter(attrs=["name"]):
            name = proc.info.get("name")
            if name:
                names.add(name.lower())
        _scan = (now, frozenset(names))
        return _scan[1]


def unit_active(unit: str) -> bool | None:
    """systemctl is-active, or None where systemd is not running (containers)."""
    if not os.path.isdir("/run/systemd/system") or not shutil.which("systemctl"):
        return None
    try:
        proc = subprocess.run(["systemctl", "is-active", unit], capture_output=True,
                              timeout=5, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.decode("utf-8", "replace").strip() == "active"


def _first_existing(paths: tuple[str, ...]) -> str | None:
    for path in paths:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _running(product: Product, names: frozenset[str]) -> bool | None:
    if any(p.lower() in names for p in product.linux_processes):
        return True
    for unit in product.linux_units:
        active = unit_active(unit)
        if active is not None:
            return active
    return False if product.linux_processes else None


def _error(kind: str, message: str, product: str | None = None) -> dict[str, str]:
    return CollectorError(kind, message).entry(COLLECTOR, product)


# --- ClamAV -----------------------------------------------------------------------

def clamav_database_dir() -> str:
    for conf in CLAMAV_CONFS:
        try:
            text = Path(conf).read_text("utf-8", "replace")
        except OSError:
            continue
        found = clamav.database_directory(text)
        if found:
            return found
    return CLAMAV_DEFAULT_DB


def read_clamav_databases(db_dir: str) -> tuple[dict[str, clamav.CvdHeader], list[dict]]:
    """Headers of daily/main/bytecode; a .cld and a .cvd of one name: the newer wins."""
    found: dict[str, clamav.CvdHeader] = {}
    errors: list[dict] = []
    for base in ("daily", "main", "bytecode"):
        for ext in ("cld", "cvd"):
            path = os.path.join(db_dir, f"{base}.{ext}")
            try:
                with open(path, "rb") as fh:
                    data = fh.read(clamav.HEADER_SIZE)
            except FileNotFoundError:
                continue
            except OSError as exc:
                errors.append(_error("permission", f"cannot read {path}: {exc.strerror}",
                                     "ClamAV"))
                continue
            try:
                header = clamav.parse_cvd_header(data)
            except clamav.CvdError as exc:
                errors.append(_error("failed", f"{path} is damaged ({exc}); run freshclam "
                                     "to download the database again", "ClamAV"))
                continue
            if base not in found or header.version > found[base].version:
                found[base] = header
    return found, errors


def clamav_product(ctx: Context, names: frozenset[str], db_dir: str | None = None,
                   clamscan: str | None = None) -> tuple[dict[str, Any], list[dict]]:
    errors: list[dict] = []
    db_dir = db_dir or clamav_database_dir()
    clamscan = clamscan or shutil.which("clamscan")
    version = None
    if clamscan:
        try:
            out = run([clamscan, "--version", f"--database={db_dir}"], timeout=CLI_TIMEOUT)
            version = clamav.parse_clamscan_version(out).engine
        except CollectorError as exc:
            errors.append(exc.entry(COLLECTOR, "ClamAV"))
        except ValueError as exc:
            errors.append(_error("failed", f"{clamscan} --version: {exc}", "ClamAV"))
    running = "clamd" in names
    record = product_record(
        "ClamAV", "cli" if clamscan else "process", vendor="Cisco Talos", version=version,
        enabled=running, state="on" if running else "off", licensed=True)
    headers, db_errors = read_clamav_databases(db_dir)
    errors.extend(db_errors)
    newest = headers.get("daily") or headers.get("main")
    if newest is None:
        record["up_to_date"] = False
        errors.append(_error("not_found", f"ClamAV has no signature database in {db_dir} "
                             "(no daily.cvd/daily.cld): run freshclam, or check that the "
                             "clamav-freshclam service can reach its mirror", "ClamAV"))
    else:
        record["signatures_version"] = str(newest.version)
        fill_signature_age(record, newest.built_at, ctx.now, max_signature_age(ctx))
    if not running:
        # Not an error: on-demand scanning works without clamd, but say what we saw.
        record["enabled"] = False
    return record, errors


# --- vendor CLIs --------------------------------------------------------------------

def _status_record(product: Product, status: VendorStatus, ctx: Context,
                   running: bool | None) -> dict[str, Any]:
    enabled = status.enabled if status.enabled is not None else running
    state = status.state or ({True: "on", False: "off"}.get(enabled, "unknown")  # type: ignore[arg-type]
                             if enabled is not None else "unknown")
    record = product_record(
        status.name or product.name, "cli", vendor=product.vendor, version=status.version,
        enabled=enabled, state=state, up_to_date=status.up_to_date,
        signatures_version=status.signatures_version, licensed=status.licensed,
        licence_expiry=status.licence_expiry.isoformat() if status.licence_expiry else None)
    fill_signature_age(record, status.signatures_at, ctx.now, max_signature_age(ctx))
    return record


def _mdatp(binary: str, ctx: Context) -> VendorStatus:
    return mdatp.parse_mdatp_health(run([binary, "health", "--output", "json"],
                                        timeout=CLI_TIMEOUT))


def _kesl(binary: str, ctx: Context) -> VendorStatus:
    out = run([binary, "--app-info"], timeout=CLI_TIMEOUT, env={"LANG": "C.UTF-8"})
    return kesl.parse_app_info(out, ctx.now)


def _eset(binary: str, ctx: Context) -> VendorStatus:
    status = VendorStatus(name="ESET Endpoint Antivirus for Linux")
    status.version = eset.parse_upd_version(run([binary, "--version"], timeout=CLI_TIMEOUT))
    modules = eset.parse_list_modules(run([binary, "--list-modules"], timeout=CLI_TIMEOUT))
    if modules:
        status.signatures_version, status.signatures_at = modules
    lic = Path(binary).parent.parent / "sbin" / "lic"
    if lic.is_file():
        status.licensed, status.licence_expiry = eset.parse_lic_status(
            run([str(lic), "--status"], timeout=CLI_TIMEOUT))
    return status


def _bitdefender(binary: str, ctx: Context) -> VendorStatus:
    return bitdefender.parse_get_ps(run([binary, "get", "ps"], timeout=CLI_TIMEOUT))


def _sentinelone(binary: str, ctx: Context) -> VendorStatus:
    status = sentinelone.parse_sentinelctl(run([binary, "version"], timeout=CLI_TIMEOUT))
    state = sentinelone.parse_sentinelctl(run([binary, "control", "status"],
                                              timeout=CLI_TIMEOUT))
    status.enabled, status.state = state.enabled, state.state
    return status


def _drweb(binary: str, ctx: Context) -> VendorStatus:
    status = VendorStatus(name="Dr.Web for Linux")
    status.version = drweb.parse_version(run([binary, "--version"], timeout=CLI_TIMEOUT))
    status.signatures_version, status.signatures_at = drweb.parse_baseinfo(
        run([binary, "baseinfo"], timeout=CLI_TIMEOUT))
    status.licensed, status.licence_expiry = drweb.parse_license(
        run([binary, "license"], timeout=CLI_TIMEOUT), ctx.now)
    return status


VENDOR_CLIS: dict[str, Callable[[str, Context], VendorStatus]] = {
    "defender": _mdatp, "kaspersky": _kesl, "eset": _eset, "bitdefender": _bitdefender,
    "sentinelone": _sentinelone, "drweb": _drweb,
}


def vendor_product(product: Product, binary: str, ctx: Context,
                   names: frozenset[str]) -> tuple[dict[str, Any], list[dict]]:
    running = _running(product, names)
    handler = VENDOR_CLIS[product.id]
    try:
        status = handler(binary, ctx)
    except CollectorError as exc:
        # Installed but unreadable: report it with unknown facts, never drop it.
        record = product_record(product.name, "file", vendor=product.vendor,
                                enabled=running, state="unknown")
        return record, [exc.entry(COLLECTOR, product.name)]
    except (ParseError, ValueError) as exc:
        record = product_record(product.name, "file", vendor=product.vendor,
                                enabled=running, state="unknown")
        return record, [_error("failed", f"{binary}: unexpected output ({exc}); "
                               "the product's version may be newer than this agent knows",
                               product.name)]
    return _status_record(product, status, ctx, running), []


def generic_product(product: Product, names: frozenset[str],
                    installed: bool) -> dict[str, Any] | None:
    running = _running(product, names)
    if running:
        return product_record(product.name, "process", vendor=product.vendor, enabled=True,
                              state="on", licensed=True if product.licence == "free" else None)
    if installed:
        return product_record(product.name, "file", vendor=product.vendor, enabled=False,
                              state="off")
    return None


def collect(ctx: Context, table: VendorTable, clamav_db_dir: str | None = None
            ) -> dict[str, Any]:
    names = process_names(ctx.now)
    products: list[dict[str, Any]] = []
    errors: list[dict] = []
    for product in table.antivirus:
        binary = _first_existing(product.linux_binaries)
        files = any(os.path.exists(f) for f in product.linux_files)
        if product.id == "clamav":
            if binary or "clamd" in names:
                record, errs = clamav_product(ctx, names, db_dir=clamav_db_dir)
                products.append(record)
                errors.extend(errs)
            continue
        if binary and product.id in VENDOR_CLIS:
            record, errs = vendor_product(product, binary, ctx, names)
            products.append(record)
            errors.extend(errs)
            continue
        record_or_none = generic_product(product, names, installed=bool(binary or files))
        if record_or_none:
            products.append(record_or_none)
    result: dict[str, Any] = {"products": products[:32]}
    if errors:
        result["errors"] = errors[:32]
    return result
