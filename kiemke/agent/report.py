"""Build one report: run every enabled collector, each alone and with a timeout."""

from __future__ import annotations

import gzip
import json
import threading
import unicodedata
import uuid
from typing import Any

from kiemke.agent.collectors import LOAD_ERRORS, MODULES, load_all, module_section
from kiemke.agent.collectors.base import (
    Collector,
    CollectorError,
    Context,
    error_entry,
    iso_utc,
)
from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers.errors import ParseError
from kiemke.schema import SCHEMA_VERSION
from kiemke.schema.digest import facts_digest

REPORT_SECTIONS = ("identity", "hardware", "os", "antivirus", "security_monitoring",
                   "network", "printers", "signing", "email", "meeting")
# Module name -> section, for modules that failed to import (os_info holds section "os").
_MODULE_SECTION = {m: module_section(m) for m in MODULES}
PERIODIC_BUDGET = 4096  # bytes of compact JSON (docs/report-format.md, "Size budget")


def _run_one(collector: Collector, ctx: Context, timeout: float) -> dict[str, Any]:
    """Run collect() in a daemon thread so a hung WMI/CLI call cannot hang the agent."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = collector.collect(ctx)
        except CollectorError as exc:
            box["error"] = exc.entry(collector.name)
        except ParseError as exc:  # a parser's documented error the collector did not place
            box["error"] = CollectorError.from_parse_error(
                exc, f"{collector.section} data").entry(collector.name)
        except Exception as exc:  # noqa: BLE001 - a bug in one collector must not stop the others
            box["error"] = error_entry(collector.name, "failed", f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=target, name=f"collector-{collector.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return {"errors": [error_entry(collector.name, "timeout",
                                       f"{collector.name} did not finish within {timeout:g} s")]}
    if "error" in box:
        return {"errors": [box["error"]]}
    return box.get("result") or {}


def collect_sections(config: AgentConfig, ctx: Context | None = None) -> dict[str, dict]:
    """Run collectors in dependency waves; collectors of one wave run concurrently."""
    registry = load_all()
    ctx = ctx or Context(config=config, state_dir=config.state_dir)
    sections: dict[str, dict] = {}
    for module, reason in LOAD_ERRORS.items():
        sections[_MODULE_SECTION[module]] = {"errors": [error_entry(
            _MODULE_SECTION[module], "failed",
            f"the {module} collector could not be loaded ({reason}); reinstall the agent")]}
    pending = dict(registry)
    for name, cls in list(pending.items()):
        if not config.collector_enabled(name):
            sections[cls.section] = {"errors": [error_entry(
                name, "unsupported", f"collector {name} is disabled in the agent configuration")]}
            del pending[name]
    done: set[str] = set(registry) - set(pending)
    while pending:
        wave = [n for n, cls in pending.items() if all(d in done for d in cls.after)]
        if not wave:  # a dependency cycle or a dependency on a disabled collector
            wave = list(pending)
        results: dict[str, dict] = {}

        def work(c: Collector, n: str, to: float, out: dict[str, dict] = results) -> None:
            out[n] = _run_one(c, ctx, to)

        threads = []
        for name in wave:
            collector = pending[name]()
            timeout = min(config.collector_timeout, collector.default_timeout * 4)
            t = threading.Thread(target=work, args=(collector, name, timeout), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        for name in wave:
            section = pending.pop(name).section
            sections[section] = results[name]
            ctx.results[section] = results[name]
            done.add(name)
    return sections


def _ensure_identity(section: dict[str, Any] | None, ctx: Context) -> dict[str, Any]:
    """The schema requires identity: rebuild a minimal one when the collector failed."""
    if section and section.get("machine_id"):
        return section
    from kiemke.agent.collectors.identity import build_identity

    errors = list((section or {}).get("errors", []))
    try:
        return build_identity(ctx, {}, errors)
    except Exception as exc:  # noqa: BLE001 - last resort, the report must still go out
        import socket

        import kiemke
        errors.append(error_entry("identity", "failed", f"{type(exc).__name__}: {exc}"))
        return {"machine_id": uuid.uuid4().hex, "machine_id_source": "generated",
                "hostname": socket.gethostname() or "unknown",
                "agent_version": kiemke.__version__, "platform": ctx.platform,
                "errors": errors[:32]}


def trim_periodic(report: dict[str, Any]) -> dict[str, Any]:
    """Drop from a periodic report what only the full inventory needs (in place).

    Kept: everything rules use (identity, OS support, antivirus, monitoring, checks,
    gateway, DNS, interface state). Dropped: addresses of interfaces that are down,
    virtual or loopback, IPv6 link-local addresses, disk models, printer drivers and
    ports, manufacture-date evidence. docs/report-format.md lists the same.
    """
    hw = report.get("hardware")
    if isinstance(hw, dict):
        for disk in hw.get("disks") or []:
            disk.pop("model", None)
        md = hw.get("manufacture_date")
        if isinstance(md, dict):
            md["evidence"] = []
    net = report.get("network")
    if isinstance(net, dict):
        for iface in net.get("interfaces") or []:
            if iface.get("up") is False or iface.get("kind") in ("virtual", "loopback"):
                iface.pop("addresses", None)
            elif iface.get("addresses"):
                iface["addresses"] = [a for a in iface["addresses"] if not (
                    a.get("family") == "ipv6" and str(a.get("address", "")).lower()
                    .startswith("fe80"))]
        for check in (net.get("checks") or {}).values():
            if isinstance(check, dict) and check.get("ok") is True:
                check.pop("probes", None)  # details matter only when something failed
    meeting = report.get("meeting")
    if isinstance(meeting, dict):
        meeting.pop("devices", None)  # the counts are what rules read
    printers = report.get("printers")
    if isinstance(printers, dict):
        for printer in printers.get("printers") or []:
            printer.pop("driver", None)
            printer.pop("port", None)
    return report


def nfc(value: Any) -> Any:
    """Every string in value (keys too) in Unicode NFC, the form the collector stores.

    Host names, user-typed unit names and product names read from Windows or from files
    may come decomposed (NFD: what Unikey's "Unicode tổ hợp" types); the same name must
    be one name for the collector, its rules and its metric labels.
    """
    if isinstance(value, str):
        return value if unicodedata.is_normalized("NFC", value) \
            else unicodedata.normalize("NFC", value)
    if isinstance(value, dict):
        return {nfc(k): nfc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nfc(v) for v in value]
    return value


def build_report(config: AgentConfig, kind: str = "periodic",
                 ctx: Context | None = None) -> dict[str, Any]:
    ctx = ctx or Context(config=config, state_dir=config.state_dir)
    sections = collect_sections(config, ctx)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "report_id": str(uuid.uuid4()),
        "kind": kind,
        "collected_at": iso_utc(ctx.now),
    }
    for name in REPORT_SECTIONS:
        report[name] = sections.get(name, {"errors": [error_entry(
            name, "unsupported", f"no collector for {name} on this platform")]})
    report["identity"] = _ensure_identity(sections.get("identity"), ctx)
    if kind == "periodic":
        trim_periodic(report)
    report = nfc(report)
    # The collector answers with the digest it keeps; a later report with the same
    # sections then goes as `unchanged` (transport.py, docs/report-format.md).
    report["facts_digest"] = facts_digest(report)
    return report


def encode(report: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, diacritics kept as they are (not \\u escapes)."""
    return json.dumps(report, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_gzip(report: dict[str, Any]) -> bytes:
    return gzip.compress(encode(report), compresslevel=6, mtime=0)
