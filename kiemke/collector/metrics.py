"""Prometheus metrics: a custom collector over database aggregates, plus ingest counters.

Per-unit series are built on scrape from SQL GROUP BY queries (never from gauges kept in
memory, never by scanning machines in Python) and rolled up over the unit tree: a unit
includes its descendants. Other parts add metric families by appending a provider
`(conn, now) -> iterable of metric families` to app.extensions["kiemke"].metric_providers;
kiemke.collector.scrape helps them label, roll up and cache like the built-in families,
and kiemke.collector.exposition renders large families once. `render_metrics()` is the
fast path for GET /metrics; the prometheus_client path (`DatabaseCollector.collect()`)
gives the same families.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Connection, Engine, func, select

from kiemke import __version__
from kiemke.collector.changes import MACHINES
from kiemke.collector.db.tables import machines
from kiemke.collector.exposition import (
    EMPTY_BLOCK,
    Block,
    BlocksFamily,
    RowsFamily,
    escape,
    exposition,
    family_head,
    gzip_member,
    render_lines,
)
from kiemke.collector.scrape import (
    UNIT_INFO_LABELS,
    UNIT_LABELS,
    Memo,
    StaleMachine,
    change_versions,
    rollup,
    scrape_units,
    stale_machines,
    unit_info_labels,
    unit_labels,
)
from kiemke.collector.timeutil import utcnow
from kiemke.collector.units import Unit

# Re-exported: the names providers used to import from here.
__all__ = [
    "EMPTY_BLOCK", "UNIT_INFO_LABELS", "UNIT_LABELS", "Block", "BlocksFamily",
    "DatabaseCollector", "IngestMetrics", "Memo", "MetricsProvider", "MetricsProviders",
    "RowsFamily", "StaleMachine", "agent_versions", "change_versions", "escape", "exposition",
    "family_head", "gzip_member", "init_app", "machines_by_status", "metrics_chunks",
    "render_lines", "render_metrics", "rollup", "scrape_units", "stale_machines", "unit_info",
    "unit_info_labels", "unit_labels",
]

if TYPE_CHECKING:  # the extension holds this module's objects: a type-only import
    from kiemke.collector.extension import Kiemke

log = logging.getLogger(__name__)

# (conn, now) -> metric families, run on every /metrics scrape inside one read transaction.
MetricsProvider = Callable[[Connection, datetime], Iterable[Metric]]

INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)
_AGENT_VERSIONS: WeakKeyDictionary[Engine, Memo] = WeakKeyDictionary()


# ------------------------------------------------------------------ providers

def machines_by_status(stale_after: timedelta) -> MetricsProvider:
    cache, per_unit = Memo(), Memo()

    def build(units_: list[Unit], totals: dict[int, int], stale: tuple[StaleMachine, ...]
              ) -> RowsFamily:
        counts: dict[tuple[int, Any], float] = {}
        for machine in stale:
            key = (machine.unit_id, "stale")
            counts[key] = counts.get(key, 0) + 1
        for unit_id, n in totals.items():
            counts[(unit_id, "active")] = n - counts.get((unit_id, "stale"), 0)
        total = rollup(units_, counts)
        family = RowsFamily("kiemke_machines", "Machines by reporting status; a unit "
                            "includes its descendants", [*UNIT_LABELS, "status"])
        for unit in units_:
            for status in ("active", "stale"):
                family.add([*unit_labels(unit), status], total.get((unit.id, status), 0))
        family.text()
        return family

    def provider(conn: Connection, now: datetime) -> Iterator[Metric]:
        units_ = scrape_units(conn)
        stale = stale_machines(conn, now - stale_after)
        # Machines per unit move with the MACHINES version only; the stale set moves with
        # the clock: a machine turning stale costs the small rollup, not the GROUP BY.
        totals = per_unit.get(change_versions(conn)[MACHINES], lambda: dict(conn.execute(
            select(machines.c.unit_id, func.count()).group_by(machines.c.unit_id)).all()))
        key = (totals, units_, tuple((m.machine_id, m.unit_id) for m in stale))
        yield cache.get(key, lambda: build(list(units_), totals, stale))

    return provider


def unit_info() -> MetricsProvider:
    """kiemke_unit_info: one series per unit naming it, for joins on unit_id (every other
    per-unit series carries the id only, so a rename or a move keeps those series)."""
    cache = Memo()

    def build(units_: tuple[Unit, ...]) -> RowsFamily:
        family = RowsFamily("kiemke_unit_info", "A unit of the tree (value 1): its name, "
                            "path, parent and level, for joins on unit_id",
                            list(UNIT_INFO_LABELS))
        for unit in units_:
            family.add(unit_info_labels(unit), 1)
        family.text()
        return family

    def provider(conn: Connection, _now: datetime) -> Iterator[Metric]:
        units_ = scrape_units(conn)
        yield cache.get(units_, lambda: build(units_))

    return provider


def agent_versions(conn: Connection, _now: datetime) -> Iterator[Metric]:
    def build() -> RowsFamily:
        family = RowsFamily("kiemke_agent_version_machines", "Machines per agent version",
                            ["version"])
        per_version: dict[str, int] = defaultdict(int)
        for version, n in conn.execute(select(machines.c.agent_version, func.count())
                                       .group_by(machines.c.agent_version)):
            per_version[version or "unknown"] += n
        for version in sorted(per_version):
            family.add([version], per_version[version])
        return family

    memo = _AGENT_VERSIONS.setdefault(conn.engine, Memo())
    yield memo.get(change_versions(conn)[MACHINES], build)


class MetricsProviders:
    """The metrics providers by name, run in the order they were added.

    A provider is `(conn, now) -> iterable of metric families`; each part of the collector
    adds its own in its init_app (create_app lists the parts). The name labels the
    provider's kiemke_metrics_provider_success / _duration_seconds series.
    """

    def __init__(self) -> None:
        self._providers: dict[str, MetricsProvider] = {}

    def add(self, name: str, provider: MetricsProvider) -> None:
        if name in self._providers:
            raise ValueError(f"a metrics provider named {name!r} is already registered")
        self._providers[name] = provider

    def __iter__(self) -> Iterator[tuple[str, MetricsProvider]]:
        return iter(list(self._providers.items()))

    def __len__(self) -> int:
        return len(self._providers)

    def names(self) -> list[str]:
        return list(self._providers)


class DatabaseCollector:
    """prometheus_client custom collector: runs every provider in one read transaction.

    Each provider runs in its own try (node_exporter's per-collector model): one that
    raises costs only its own families and reports kiemke_metrics_provider_success 0;
    the transaction is rolled back and the next provider goes on in a fresh one.
    kiemke_database_up is 0 only when the database cannot be reached at all.
    """

    def __init__(self, engine: Engine, providers: MetricsProviders) -> None:
        self.engine = engine
        self.providers = providers

    def describe(self) -> list[Metric]:
        return []  # no description: registering must not query the database

    def families(self) -> list[Metric]:
        started = time.perf_counter()
        build = GaugeMetricFamily("kiemke_build_info", "kiemke collector build",
                                  labels=["version"])
        build.add_metric([__version__], 1)
        success = GaugeMetricFamily("kiemke_metrics_provider_success",
                                    "1 when the metrics provider built its families for this "
                                    "scrape, 0 when it failed (the collector log says why)",
                                    labels=["provider"])
        duration = GaugeMetricFamily("kiemke_metrics_provider_duration_seconds",
                                     "Time the metrics provider took in this scrape",
                                     labels=["provider"])
        families: list[Metric] = []
        up = 1
        try:
            now = utcnow()
            with self.engine.connect() as conn:
                conn.begin()
                try:
                    for name, provider in self.providers:
                        ok, took = self._run(conn, name, provider, now, families)
                        success.add_metric([name], 1 if ok else 0)
                        duration.add_metric([name], took)
                finally:
                    conn.info.pop("kiemke_scrape", None)  # per-scrape reads end here
                    conn.rollback()  # read only
        except Exception:
            log.exception("building /metrics from the database failed")
            up, families = 0, []
            success = GaugeMetricFamily(success.name, success.documentation,
                                        labels=["provider"])
            duration = GaugeMetricFamily(duration.name, duration.documentation,
                                         labels=["provider"])
            for name in self.providers.names():
                success.add_metric([name], 0)
        return [build, *families, success, duration,
                GaugeMetricFamily("kiemke_database_up", "1 when the database answers",
                                  value=up),
                GaugeMetricFamily("kiemke_scrape_duration_seconds",
                                  "Time to build this scrape from the database",
                                  value=time.perf_counter() - started)]

    @staticmethod
    def _run(conn: Connection, name: str, provider: MetricsProvider, now: datetime,
             families: list[Metric]) -> tuple[bool, float]:
        """Run one provider; on failure roll back and begin again for the next one (a
        failed statement aborts a PostgreSQL transaction). Raises only when the database
        itself is gone (then nothing more can be read)."""
        started = time.perf_counter()
        try:
            built = list(provider(conn, now))
        except Exception:
            log.exception("metrics provider %r failed; its families are left out of this "
                          "scrape", name)
            conn.rollback()
            conn.begin()  # raises when the database is unreachable: database_up 0
            return False, time.perf_counter() - started
        families.extend(built)
        return True, time.perf_counter() - started

    def collect(self) -> Iterator[Metric]:
        yield from self.families()

    def exposition(self, gzip: bool = False) -> list[bytes]:
        return exposition(self.families(), gzip)


def init_app(app: Flask) -> None:
    """The built-in providers (unit info, machines by status, agent versions) and the
    collector that runs every provider on a scrape; the parts add theirs in their own
    init_app."""
    ext = app.extensions["kiemke"]
    ext.metric_providers.add("units", unit_info())
    ext.metric_providers.add("machines", machines_by_status(ext.config.stale_after))
    ext.metric_providers.add("agent_versions", agent_versions)
    ext.registry.register(ext.db_collector)


class _IngestCollector:
    """The ingest counters of this process, as a prometheus_client collector."""

    def __init__(self, ingest: IngestMetrics) -> None:
        self.ingest = ingest

    def collect(self) -> Iterator[Metric]:
        yield from self.ingest.received.collect()
        yield from self.ingest.latency.collect()
        yield from self.ingest.agent_spool_errors.collect()


def render_metrics(ext: Kiemke, gzip: bool = False) -> bytes:
    """The body of GET /metrics: the ingest counters (merged over gunicorn workers in
    multiprocess mode) followed by the database families; with `gzip`, the same text as
    a gzip stream of several members (Content-Encoding: gzip)."""
    return b"".join(metrics_chunks(ext, gzip))


def metrics_chunks(ext: Kiemke, gzip: bool = False) -> list[bytes]:
    """render_metrics() in the parts it joins: GET /metrics sends them as they are (the
    kept parts of the large families are not copied into one body first)."""
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        counters = CollectorRegistry()
        MultiProcessCollector(counters, path=multiproc_dir)  # type: ignore[no-untyped-call]
        head = generate_latest(counters)
    else:
        head = generate_latest(_IngestCollector(ext.ingest_metrics))
    return [gzip_member(head) if gzip else head, *ext.db_collector.exposition(gzip)]


class IngestMetrics:
    """Process counters; in gunicorn's multiprocess mode their values live in files."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.received = Counter("kiemke_reports_received", "Reports received by result",
                                ["result", "reason"], registry=registry)
        self.latency = Histogram("kiemke_report_ingest_seconds", "Report ingest latency",
                                 buckets=INGEST_BUCKETS, registry=registry)
        # Reports agents could not keep in their spool (full or read-only disk), as they
        # say in agent.spool_errors of the next accepted report (docs/report-format.md).
        self.agent_spool_errors = Counter(
            "kiemke_agent_spool_errors", "Reports agents could not write to their spool "
            "(disk full or read-only), as reported by the agents", registry=registry)

    def done(self, result: str, seconds: float) -> None:
        self.received.labels(result, result).inc()
        self.latency.observe(seconds)

    def rejected(self, reason: str, seconds: float) -> None:
        self.received.labels("rejected", reason).inc()
        self.latency.observe(seconds)
