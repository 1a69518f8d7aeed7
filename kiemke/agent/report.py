"""Build one report: run every enabled collector, each alone and with a timeout."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from kiemke.agent.collectors import load_all
from kiemke.agent.collectors.base import Collector, CollectorError, Context, iso_utc
from kiemke.agent.config import AgentConfig
from kiemke.schema import SCHEMA_VERSION


def _run_one(collector: Collector, ctx: Context, timeout: float) -> dict[str, Any]:
    """Run collect() in a daemon thread so a hung WMI/CLI call cannot hang the agent."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = collector.collect(ctx)
        except CollectorError as exc:
            box["error"] = exc.entry(collector.name)
        except Exception as exc:  # noqa: BLE001 - a bug in one collector must not stop the others
            box["error"] = {"collector": collector.name, "kind": "failed",
                            "message": f"{type(exc).__name__}: {exc}"[:1024]}

    thread = threading.Thread(target=target, name=f"collector-{collector.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return {"errors": [{"collector": collector.name, "kind": "timeout",
                            "message": f"{collector.name} did not finish within {timeout:g} s"}]}
    if "error" in box:
        return {"errors": [box["error"]]}
    return box.get("result") or {}


def collect_sections(config: AgentConfig, ctx: Context | None = None) -> dict[str, dict]:
    """Run collectors in dependency waves; collectors of one wave run concurrently."""
    registry = load_all()
    ctx = ctx or Context(config=config, state_dir=config.state_dir)
    sections: dict[str, dict] = {}
    pending = {n: cls for n, cls in registry.items()}
    for name, cls in list(pending.items()):
        if not config.collector_enabled(name):
            sections[cls.section] = {"errors": [{
                "collector": name, "kind": "unsupported",
                "message": f"collector {name} is disabled in the agent configuration"}]}
            del pending[name]
    done: set[str] = set(registry) - set(pending)
    while pending:
        wave = [n for n, cls in pending.items() if all(d in done for d in cls.after)]
        if not wave:  # a dependency cycle or a dependency on a disabled collector
            wave = list(pending)
        results: dict[str, dict] = {}
        threads = []
        for name in wave:
            collector = pending[name]()
            timeout = min(config.collector_timeout, collector.default_timeout * 4)
            t = threading.Thread(
                target=lambda c=collector, n=name, to=timeout: results.__setitem__(
                    n, _run_one(c, ctx, to)),
                daemon=True)
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
    for name in ("identity", "hardware", "os", "antivirus", "security_monitoring",
                 "network", "printers"):
        report[name] = sections.get(name, {"errors": [{
            "collector": name, "kind": "unsupported",
            "message": f"no collector for {name} on this platform"}]})
    return report
