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

from kiemke.agent.collectors.antivirus import max_signature_age, vendor_table
from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.parsers import (
    bitdefender,
    clamav,
    cortex,
    crowdstrike,
    drweb,
    eset,
    kesl,
    mdatp,
    sentinelone,
    sophos,
    symantec,
    trend,
)
from kiemke.agent.parsers.av_common import (
    ParseError,
    VendorStatus,
    fill_signature_age,
    product_record,
    reconcile,
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


def _path_exists(path: str) -> bool:
    return os.path.exists(path)


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


_md5_lock = threading.Lock()
_md5_cache: dict[tuple[str, int, int], str] = {}


def _cvd_body_md5(path: str) -> str:
    """MD5 of a .cvd after its header, cached per (path, size, mtime): the file changes
    about once a day, so the 60 MB read happens once per update, not per collection."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    with _md5_lock:
        if key in _md5_cache:
            return _md5_cache[key]
    with open(path, "rb") as fh:
        fh.seek(clamav.HEADER_SIZE)
        digest = clamav.body_md5(iter(lambda: fh.read(1 << 20), b""))
    with _md5_lock:
        for old in [k for k in _md5_cache if k[0] == path]:
            del _md5_cache[old]
        _md5_cache[key] = digest
    return digest


def read_clamav_databases(db_dir: str) -> tuple[dict[str, clamav.CvdHeader], list[dict[str, str]]]:
    """Headers of daily/main/bytecode; a .cld and a .cvd of one name: the newer wins.
    A .cvd whose body fails libclamav's MD5 check is left out (ClamAV would refuse to
    load it), with a "failed" error."""
    found: dict[str, clamav.CvdHeader] = {}
    errors: list[dict[str, str]] = []
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
            if ext == "cvd":
                try:
                    problem = clamav.check_cvd_body(header, _cvd_body_md5(path))
                except OSError as exc:
                    problem = f"cannot be read to check it ({exc.strerror})"
                if problem:
                    errors.append(_error("failed", f"{path} fails ClamAV's signature check: "
                                         f"{problem}. ClamAV will not load it: run freshclam "
                                         "to download the database again", "ClamAV"))
                    continue
            if base not in found or header.version > found[base].version:
                found[base] = header
    return found, errors


def clamav_product(ctx: Context, names: frozenset[str], db_dir: str | None = None,
                   clamscan: str | None = None) -> tuple[dict[str, Any], list[dict[str, str]]]:
    errors: list[dict[str, str]] = []
    db_dir = db_dir or clamav_database_dir()
    clamscan = clamscan or shutil.which("clamscan")
    version = None
    if clamscan:
        try:
            out = run([clamscan, "--version", f"--database={db_dir}"], timeout=CLI_TIMEOUT)
            version = clamav.parse_clamscan_version(out).engine
        except CollectorError as exc:
            errors.append(exc.entry(COLLECTOR, "ClamAV"))
        except ParseError as exc:
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
        if not db_errors:
            errors.append(_error("not_found", f"ClamAV has no signature database in {db_dir} "
                                 "(no daily.cvd/daily.cld): run freshclam, or check that the "
                                 "clamav-freshclam service can reach its mirror", "ClamAV"))
    elif "daily" not in headers and any("daily." in e["message"] for e in db_errors):
        # main.cvd alone is months old by design; a damaged daily means not current.
        record["signatures_version"] = str(newest.version)
        fill_signature_age(record, newest.built_at, ctx.now, max_signature_age(ctx))
        record["up_to_date"] = False
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
    """The record from what the vendor CLI said. The state comes from the vendor's status
    only: a running daemon does not show that protection is on (class 9), but a stopped
    one shows it is not."""
    if status.state and status.state != "unknown":
        state = status.state
    elif status.enabled is not None:
        state = "on" if status.enabled else "off"
    else:
        state = "off" if running is False else "unknown"
    record = product_record(
        status.name or product.name, "cli", vendor=product.vendor, version=status.version,
        enabled={"on": True, "unknown": None}.get(state, False), state=state,
        up_to_date=status.up_to_date,
        signatures_version=status.signatures_version, licensed=status.licensed,
        licence_expiry=status.licence_expiry.isoformat() if status.licence_expiry else None)
    if product.licence in ("free",) and record["licensed"] is None:
        record["licensed"] = True
    fill_signature_age(record, status.signatures_at, ctx.now, max_signature_age(ctx))
    return record


def _optional(argv: list[str]) -> str | None:
    """Output of a command whose failure only loses detail (the product stays listed)."""
    try:
        return run(argv, timeout=CLI_TIMEOUT)
    except CollectorError:
        return None


Handler = Callable[[str, Context, bool | None], VendorStatus]


def _mdatp(binary: str, ctx: Context, running: bool | None) -> VendorStatus:
    return mdatp.parse_mdatp_health(run([binary, "health", "--output", "json"],
                                        timeout=CLI_TIMEOUT))


def _kesl(binary: str, ctx: Context, running: bool | None) -> VendorStatus:
    out = run([binary, "--app-info"], timeout=CLI_TIMEOUT, env={"LANG": "C.UTF-8"})
    return kesl.parse_app_info(out, ctx.now)


def _eset(binary: str, ctx: Context, running: bool | None) -> VendorStatus:
    status = VendorStatus(name="ESET Endpoint Antivirus for Linux")
    status.version = eset.parse_upd_version(run([binary, "--version"], timeout=CLI_TIMEOUT))
    modules = eset.parse_list_modules(run([binary, "--list-modules"], timeout=CLI_TIMEOUT))
    if modules:
        status.signatures_version, status.signatures_at = modules
    lic = str(Path(binary).parent.parent / "sbin" / "lic")
    if _path_exists(lic):
        status.licensed, status.licence_expiry = eset.parse_lic_status(
            run([lic, "--status"], timeout=CLI_TIMEOUT))
    return status


def _bitdefender(binary: str, ctx: Context, running: bool | None) -> VendorStatus:
    return bitdefender.parse_get_ps(run([binary, "get", "ps"], timeout=CLI_TIMEOUT))


def _sentinelone(binary: str, ctx: Context, running: bool | None) -> VendorStatus:
    status = sentinelone.parse_sentinelctl(run([binary, "version"], timeout=CLI_TIMEOUT))
    control = _optional([binary, "control", "status"])
    if control is not None:
        try:
            state = sentinelone.parse_sentinelctl(control)
        except ParseError:
            state = VendorStatus()
        status.enabled, status.state = state.enabled, state.state
    return status


def _drweb(binary: str, ctx: Context, running: bool | None) -> VendorStatus:
    status = VendorStatus(name="Dr.Web for Linux")
    status.version = drweb.parse_version(run([binary, "--version"], timeout=CLI_TIMEOUT))
    status.signatures_version, status.signatures_at = drweb.parse_baseinfo(
        run([binary, "baseinfo"], timeout=CLI_TIMEOUT))
    status.licensed, status.licence_expiry = drweb.parse_license(
        run([binary, "license"], timeout=CLI_TIMEOUT), ctx.now)
    return status


def _cortex(binary: str, ctx: Context, running: bool | None) -> VendorStatus:
    return cortex.cortex_status(run([binary, "info"], timeout=CLI_TIMEOUT),
                                _optional([binary, "info", "query"]),
                                _optional([binary, "runtime", "query"]))


def _crowdstrike(binary: str, ctx: Context, running: bool | None) -> VendorStatus:
    out = run([binary, "-g", "--version", "--rfm-state"], timeout=CLI_TIMEOUT)
    return crowdstrike.falcon_status(out, running)


def _sophos(binary: str, ctx: Context, running: bool | None) -> VendorStatus:
    return sophos.sophos_status(_optional([binary]),
                                run([binary, "--version"], timeout=CLI_TIMEOUT))


def _symantec(binary: str, ctx: Context, running: bool | None) -> VendorStatus:
    return symantec.sep_status(_optional([binary, "info", "-a"]),
                               _optional([binary, "info", "-d"]),
                               run([binary, "info", "-p"], timeout=CLI_TIMEOUT))


def _trend(binary: str, ctx: Context, running: bool | None) -> VendorStatus:
    return trend.dsa_status(run([binary, "-c", "GetComponentInfo"], timeout=CLI_TIMEOUT))


VENDOR_CLIS: dict[str, Handler] = {
    "defender": _mdatp, "kaspersky": _kesl, "eset": _eset, "bitdefender": _bitdefender,
    "sentinelone": _sentinelone, "drweb": _drweb, "cortex": _cortex,
    "crowdstrike": _crowdstrike, "sophos": _sophos, "symantec": _symantec,
    "trendmicro": _trend,
}


def _unread(product: Product, running: bool | None) -> dict[str, Any]:
    """Installed but its status could not be read: listed, every state fact unknown."""
    return product_record(product.name, "file", vendor=product.vendor, enabled=None,
                          state="unknown")


def vendor_product(product: Product, binary: str, ctx: Context,
                   names: frozenset[str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    running = _running(product, names)
    handler = VENDOR_CLIS[product.id]
    try:
        status = handler(binary, ctx, running)
    except CollectorError as exc:
        # Installed but unreadable: report it with unknown facts, never drop it.
        return _unread(product, running), [exc.entry(COLLECTOR, product.name)]
    except ParseError as exc:
        return _unread(product, running), [_error(
            "failed", f"{binary}: unexpected output ({exc}); the product's version may be "
            "newer than this agent knows", product.name)]
    return _status_record(product, status, ctx, running), []


def generic_product(product: Product, names: frozenset[str],
                    installed: bool) -> dict[str, Any] | None:
    """A product known only by its processes, units or files: its presence is a fact,
    its protection state is not (a running service is not an active product)."""
    running = _running(product, names)
    licensed = True if product.licence == "free" else None
    if running:
        return product_record(product.name, "process", vendor=product.vendor, enabled=None,
                              state="unknown", licensed=licensed)
    if installed:
        state = "off" if running is False else "unknown"
        return product_record(product.name, "file", vendor=product.vendor,
                              enabled=False if state == "off" else None, state=state,
                              licensed=licensed)
    return None


def read(ctx: Context, table: VendorTable | None = None, clamav_db_dir: str | None = None
         ) -> PlatformReading:
    """Every known product found here. `table` and `clamav_db_dir` are for tests."""
    table = table or vendor_table(ctx)
    names = process_names(ctx.now)
    products: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for product in table.antivirus:
        binary = _first_existing(product.linux_binaries)
        files = any(_path_exists(f) for f in product.linux_files)
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
    for record in products:
        for kind, message in reconcile(record, ctx.now, max_signature_age(ctx)):
            errors.append(_error(kind, message, record["name"]))
    return PlatformReading(facts={"products": products}, errors=errors)
