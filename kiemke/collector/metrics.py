"""Prometheus metrics: a custom collector over database aggregates, plus ingest counters.

Per-unit series are built on scrape from SQL GROUP BY queries (never from gauges kept in
memory, never by scanning machines in Python) and rolled up over the unit tree: a unit
includes its descendants. Other parts add metric families by appending a provider
`(conn, now) -> iterable of metric families` to app.extensions["kiemke"].metric_providers;
`unit_labels()` and `rollup()` help them label and roll up like the built-in families.

Large families are `RowsFamily` objects: their exposition text is built once from plain
rows and kept by the provider while the change versions it came from are the same
(kiemke/collector/changes.py), so a scrape at 100,000 machines concatenates text instead
of formatting 100,000 samples. `render_metrics()` is the fast path for GET /metrics; the
prometheus_client path (`DatabaseCollector.collect()`) gives the same families.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString
from sqlalchemy import Connection, Engine, func, select

from kiemke import __version__
from kiemke.collector.changes import MACHINES, UNITS, versions
from kiemke.collector.db.tables import machines, units
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


# ------------------------------------------------------------------ exposition text

def escape(value: str) -> str:
    """A label value in the text format: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


class RowsFamily(Metric):
    """A gauge family held as rows of label values; its exposition text is built once.

    Renders exactly like prometheus_client's generate_latest (labels sorted by name,
    values through floatToGoString), so both paths give the same bytes. `samples` are
    only built when the prometheus_client path asks for them.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        super().__init__(name, documentation, "gauge")
        self.label_names = tuple(labels)
        self.rows: list[tuple[Sequence[str], float]] = []
        self._text: bytes | None = None
        self._gzip: bytes | None = None

    def add(self, values: Sequence[str], value: float) -> None:
        self.rows.append((values, value))
        self._text = self._gzip = None

    @property  # type: ignore[override]
    def samples(self) -> list[Sample]:
        names, name = self.label_names, self.name
        return [Sample(name, dict(zip(names, values, strict=True)), value, None, None)
                for values, value in self.rows]

    @samples.setter
    def samples(self, _value: list[Sample]) -> None:
        pass  # Metric.__init__ sets an empty list; the rows are the samples

    def text(self) -> bytes:
        """The family in the text format, UTF-8, built once."""
        if self._text is None:
            self._text = self._render().encode("utf-8")
        return self._text

    def _render(self) -> str:
        return family_head(self.name, self.documentation).decode("utf-8") + \
            render_lines(self.name, self.label_names, self.rows)

    def gzip(self) -> bytes:
        """text() as one gzip member, built once."""
        if self._gzip is None:
            self._gzip = gzip_member(self.text())
        return self._gzip


def family_head(name: str, documentation: str) -> bytes:
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} gauge\n".encode()


def render_lines(name: str, label_names: Sequence[str],
                 rows: Iterable[tuple[Sequence[str], float]]) -> str:
    """Sample lines like prometheus_client's generate_latest: labels sorted by name,
    values through floatToGoString."""
    order = sorted(range(len(label_names)), key=label_names.__getitem__)
    if not order:
        return "".join(f"{name} {floatToGoString(v)}\n" for _, v in rows)
    # One format string per family: name{a="{0}",b="{1}"} - filled per row.
    parts = ",".join(f'{label_names[i]}="{{{n}}}"' for n, i in enumerate(order))
    template = (name + "{{" + parts + "}} ").format
    seen: dict[str, str] = {}  # unit paths and rule ids repeat: escape each once
    lines = []
    for values, value in rows:
        escaped = []
        for i in order:
            v = values[i]
            e = seen.get(v)
            if e is None:
                e = seen[v] = escape(v)
            escaped.append(e)
        lines.append(f"{template(*escaped)}{floatToGoString(value)}\n")
    return "".join(lines)


def gzip_member(data: bytes) -> bytes:
    """`data` as one gzip member. Members concatenate into one valid gzip stream (RFC 1952
    2.2; Go's reader, which Prometheus uses, reads them all), so cached parts are
    compressed once and a response only joins them. Level 1: the text repeats itself so
    much that higher levels save little and cost several times the CPU."""
    return zlib.compress(data, 1, wbits=31)


class Block:
    """A part of a BlocksFamily: rows of label values, rendered and compressed once."""

    __slots__ = ("rows", "text")

    def __init__(self, rows: list[tuple[Sequence[str], float]]) -> None:
        self.rows = rows
        self.text: bytes | None = None


EMPTY_BLOCK = Block([])
EMPTY_BLOCK.text = b""


class _Segment:
    __slots__ = ("blocks", "text", "gz")

    def __init__(self, blocks: tuple[Block, ...], text: bytes) -> None:
        self.blocks = blocks
        self.text = text
        self.gz: bytes | None = None


class BlocksFamily(Metric):
    """A gauge family made of blocks in a fixed order (for example unit x rule), so that a
    change rebuilds only the blocks it touched.

    Consecutive blocks are grouped in segments of `per_segment`; a segment whose blocks
    are the same objects as in the `previous` family is reused with its text and gzip
    member, so a small change re-renders and re-compresses a few segments only. The
    text is what RowsFamily renders for the same rows in the same order.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str],
                 blocks: Sequence[Block], per_segment: int,
                 previous: BlocksFamily | None = None) -> None:
        super().__init__(name, documentation, "gauge")
        self.label_names = tuple(labels)
        self.blocks = list(blocks)
        self._head = family_head(name, documentation)
        old = previous._segments if previous is not None and \
            previous.label_names == self.label_names else []
        self._segments: list[_Segment] = []
        for n, start in enumerate(range(0, len(self.blocks), per_segment)):
            part = tuple(self.blocks[start:start + per_segment])
            reuse = old[n] if n < len(old) else None
            if reuse is not None and len(reuse.blocks) == len(part) and all(
                    a is b for a, b in zip(reuse.blocks, part, strict=True)):
                self._segments.append(reuse)
                continue
            for block in part:
                if block.text is None:
                    block.text = render_lines(self.name, self.label_names,
                                              block.rows).encode("utf-8")
            self._segments.append(_Segment(part, b"".join(b.text or b"" for b in part)))
        self._text: bytes | None = None

    @property  # type: ignore[override]
    def samples(self) -> list[Sample]:
        names, name = self.label_names, self.name
        return [Sample(name, dict(zip(names, values, strict=True)), value, None, None)
                for block in self.blocks for values, value in block.rows]

    @samples.setter
    def samples(self, _value: list[Sample]) -> None:
        pass  # Metric.__init__ sets an empty list; the blocks hold the samples

    def text(self) -> bytes:
        if self._text is None:
            self._text = b"".join([self._head, *(s.text for s in self._segments)])
        return self._text

    def gzip(self) -> bytes:
        parts = [gzip_member(self._head)]
        for segment in self._segments:
            if segment.gz is None:
                segment.gz = gzip_member(segment.text) if segment.text else b""
            parts.append(segment.gz)
        return b"".join(parts)


def exposition(families: Iterable[Metric], gzip: bool = False) -> list[bytes]:
    """Text of metric families as chunks: RowsFamily and BlocksFamily from their own text
    (kept while the family is cached, so a steady scrape copies bytes only), others via
    prometheus_client. With `gzip`, gzip members: cached ones for the kept families, the
    small others compressed now."""
    out: list[bytes] = []
    plain: list[Metric] = []

    def flush_plain() -> None:
        if plain:
            text = generate_latest(_Families(plain))
            out.append(gzip_member(text) if gzip else text)
            plain.clear()

    for family in families:
        if isinstance(family, (RowsFamily, BlocksFamily)):
            flush_plain()
            out.append(family.gzip() if gzip else family.text())
        else:
            plain.append(family)
    flush_plain()
    return out


class _Families:
    """A prometheus_client collector over a fixed list of families."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> list[Metric]:
        return self.families


# ------------------------------------------------------------------ per-scrape reads

def _scrape_memo(conn: Connection) -> dict[Any, Any]:
    """Reads shared by the providers of one scrape: valid for the current transaction only
    (conn.info outlives it, with the pooled connection)."""
    transaction = conn.get_transaction()
    entry = conn.info.get("kiemke_scrape")
    if entry is None or entry[0] is not transaction:
        entry = conn.info["kiemke_scrape"] = (transaction, {})
    return entry[1]


class StaleMachine(NamedTuple):
    machine_id: str
    hostname: str
    unit_id: int
    last_seen: datetime


def stale_machines(conn: Connection, cutoff: datetime) -> tuple[StaleMachine, ...]:
    """Machines whose last report is before `cutoff`, ordered; read once per scrape.

    The stale set moves with the clock alone (no write marks a machine stale), so every
    cache keyed on it is exact without a time bucket.
    """
    memo = _scrape_memo(conn)
    key = ("stale", cutoff)
    if key not in memo:
        memo[key] = tuple(StaleMachine(*row) for row in conn.execute(
            select(machines.c.machine_id, machines.c.hostname, machines.c.unit_id,
                   machines.c.last_seen)
            # Through the (unit_id, last_seen) index: a seek per unit, not a table scan.
            .where(machines.c.unit_id.in_(select(units.c.id)), machines.c.last_seen < cutoff)
            .order_by(machines.c.machine_id)))
    return memo[key]


def change_versions(conn: Connection) -> dict[str, int]:
    """The change versions, read once per scrape."""
    memo = _scrape_memo(conn)
    if "versions" not in memo:
        memo["versions"] = versions(conn)
    return memo["versions"]


def scrape_units(conn: Connection) -> tuple[Unit, ...]:
    """The unit tree (part of every cache key: a rename or move changes paths), read from
    the database only when its change version moved."""
    memo = _scrape_memo(conn)
    if "units" not in memo:
        cache = _UNITS.setdefault(conn.engine, Memo())
        memo["units"] = cache.get(change_versions(conn)[UNITS],
                                  lambda: tuple(all_units(conn)))
    return memo["units"]


class Memo:
    """One cached value per provider and process, replaced when its key changes.

    Each gunicorn worker keeps its own; all agree because keys are database versions.
    One attribute assignment per update: safe across threads.
    """

    def __init__(self) -> None:
        self._entry: tuple[Any, Any] | None = None

    def get(self, key: Any, build: Callable[[], Any]) -> Any:
        entry = self._entry
        if entry is not None and entry[0] == key:
            return entry[1]
        value = build()
        self._entry = (key, value)
        return value


# Per engine rather than per app where app.py plugs a plain function in; an entry dies
# with its engine (tests make many apps, each with its own database and versions).
_UNITS: WeakKeyDictionary[Engine, Memo] = WeakKeyDictionary()
_AGENT_VERSIONS: WeakKeyDictionary[Engine, Memo] = WeakKeyDictionary()


# ------------------------------------------------------------------ providers

def machines_by_status(stale_after: timedelta) -> Callable[[Connection, datetime],
                                                           Iterable[Metric]]:
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


class DatabaseCollector:
    """prometheus_client custom collector: runs every provider in one read transaction."""

    def __init__(self, engine: Engine, providers: list[Callable[[Connection, datetime],
                                                                 Iterable[Metric]]]) -> None:
        self.engine = engine
        self.providers = providers

    def describe(self) -> list[Metric]:
        return []  # no description: registering must not query the database

    def families(self) -> list[Metric]:
        started = time.perf_counter()
        build = GaugeMetricFamily("kiemke_build_info", "kiemke collector build",
                                  labels=["version"])
        build.add_metric([__version__], 1)
        families: list[Metric] = []
        up = 1
        try:
            now = utcnow()
            with self.engine.connect() as conn, conn.begin():
                try:
                    for provider in self.providers:
                        families.extend(provider(conn, now))
                finally:
                    conn.info.pop("kiemke_scrape", None)  # per-scrape reads end here
        except Exception:
            log.exception("building /metrics from the database failed")
            up, families = 0, []
        return [build, *families,
                GaugeMetricFamily("kiemke_database_up", "1 when the database answers",
                                  value=up),
                GaugeMetricFamily("kiemke_scrape_duration_seconds",
                                  "Time to build this scrape from the database",
                                  value=time.perf_counter() - started)]

    def collect(self) -> Iterator[Metric]:
        yield from self.families()

    def exposition(self, gzip: bool = False) -> list[bytes]:
        return exposition(self.families(), gzip)


class _IngestCollector:
    """The ingest counters of this process, as a prometheus_client collector."""

    def __init__(self, ingest: IngestMetrics) -> None:
        self.ingest = ingest

    def collect(self) -> Iterator[Metric]:
        yield from self.ingest.received.collect()
        yield from self.ingest.latency.collect()


def render_metrics(ext: Any, gzip: bool = False) -> bytes:
    """The body of GET /metrics: the ingest counters (merged over gunicorn workers in
    multiprocess mode) followed by the database families; with `gzip`, the same text as
    a gzip stream of several members (Content-Encoding: gzip)."""
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        counters = CollectorRegistry()
        MultiProcessCollector(counters, path=multiproc_dir)
        head = generate_latest(counters)
    else:
        head = generate_latest(_IngestCollector(ext.ingest_metrics))  # type: ignore[arg-type]
    return b"".join([gzip_member(head) if gzip else head, *ext.db_collector.exposition(gzip)])


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
