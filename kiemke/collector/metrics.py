"""Prometheus metrics: a custom collector over database aggregates, plus ingest counters.

Per-unit series are built on scrape from SQL GROUP BY queries (never from gauges kept in
memory, never by scanning machines in Python) and rolled up over the unit tree: a unit
includes its descendants. Other parts add metric families by appending a provider
`(conn, now) -> iterable of metric families` to app.extensions["kiemke"].metric_providers;
`unit_labels()` and `rollup()` help them label and roll up like the built-in families.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Connection, Engine, func, select

from kiemke import __version__
from kiemke.collector.db.tables import machines
from kiemke.collector.timeutil import utcnow
from kiemke.collector.units import Unit, all_units, ancestors_map

log = logging.getLogger(__name__)

UNIT_LABELS = ("unit", "parent", "level")
INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)


def unit_labels(unit: Unit) -> list[str]:
    """Label values for UNIT_LABELS."""
    return [unit.path, unit.parent_path, str(unit.level)]


def rollup(units_: list[Unit], counts: dict[tuple[int, Any], float]) -> dict[tuple[int, Any],
                                                                                float]:
    """{(unit_id, key): n} per unit -> the same with each unit including its descendants."""
    chains = ancestors_map(units_)
    total: dict[tuple[int, Any], float] = defaultdict(float)
    for (unit_id, key), value in counts.items():
        for ancestor in chains.get(unit_id, [unit_id]):
            total[(ancestor, key)] += value
    return total


def machines_by_status(stale_after: timedelta) -> Callable[[Connection, datetime],
                                                           Iterable[Metric]]:
    def provider(conn: Connection, now: datetime) -> Iterator[Metric]:
        units_ = all_units(conn)
        cutoff = now - stale_after
        counts: dict[tuple[int, Any], float] = {}
        for status, cond in (("active", machines.c.last_seen >= cutoff),
                             ("stale", machines.c.last_seen < cutoff)):
            rows = conn.execute(select(machines.c.unit_id, func.count())
                                .where(cond).group_by(machines.c.unit_id))
            for unit_id, n in rows:
                counts[(unit_id, status)] = n
        total = rollup(units_, counts)
        family = GaugeMetricFamily("kiemke_machines",
                                   "Machines by reporting status; a unit includes its "
                                   "descendants", labels=[*UNIT_LABELS, "status"])
        for unit in units_:
            for status in ("active", "stale"):
                family.add_metric([*unit_labels(unit), status], total.get((unit.id, status), 0))
        yield family

    return provider


def agent_versions(conn: Connection, _now: datetime) -> Iterator[Metric]:
    family = GaugeMetricFamily("kiemke_agent_version_machines", "Machines per agent version",
                               labels=["version"])
    rows = conn.execute(select(machines.c.agent_version, func.count())
                        .group_by(machines.c.agent_version).order_by(machines.c.agent_version))
    for version, n in rows:
        family.add_metric([version or "unknown"], n)
    yield family


class DatabaseCollector:
    """prometheus_client custom collector: runs every provider in one read transaction."""

    def __init__(self, engine: Engine, providers: list[Callable[[Connection, datetime],
                                                                 Iterable[Metric]]]) -> None:
        self.engine = engine
        self.providers = providers

    def describe(self) -> list[Metric]:
        return []  # no description: registering must not query the database

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        build = GaugeMetricFamily("kiemke_build_info", "kiemke collector build",
                                  labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        families: list[Metric] = []
        up = 1
        try:
            now = utcnow()
            with self.engine.connect() as conn, conn.begin():
                for provider in self.providers:
                    families.extend(provider(conn, now))
        except Exception:
            log.exception("building /metrics from the database failed")
            up, families = 0, []
        yield from families
        yield GaugeMetricFamily("kiemke_database_up", "1 when the database answers", value=up)
        yield GaugeMetricFamily("kiemke_scrape_duration_seconds",
                                "Time to build this scrape from the database",
                                value=time.perf_counter() - started)


class IngestMetrics:
    """Process counters; in gunicorn's multiprocess mode their values live in files."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.received = Counter("kiemke_reports_received", "Reports received by result",
                                ["result", "reason"], registry=registry)
        self.latency = Histogram("kiemke_report_ingest_seconds", "Report ingest latency",
                                 buckets=INGEST_BUCKETS, registry=registry)

    def done(self, result: str, seconds: float) -> None:
        self.received.labels(result, result).inc()
        self.latency.observe(seconds)

    def rejected(self, reason: str, seconds: float) -> None:
        self.received.labels("rejected", reason).inc()
        self.latency.observe(seconds)
