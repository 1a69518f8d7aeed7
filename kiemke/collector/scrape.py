"""What the metrics providers of one scrape share: labels, roll-ups and reads.

Every provider runs inside the same read transaction (kiemke.collector.metrics); the
reads here are done once per scrape (`_scrape_memo`), and `Memo` keeps a provider's
rendered families per process while the database versions they came from are the same.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, bindparam, select

from kiemke.collector.changes import UNITS, ComplianceLog, compliance_log_after, versions
from kiemke.collector.db.prepared import Prepared, RawTransaction
from kiemke.collector.db.tables import machines, units
from kiemke.collector.units import Unit, all_units, ancestors_map

# Per-unit series carry the unit's id only: a rename or a move keeps the series (and a
# year-long trend); name, path, parent and level come from kiemke_unit_info joins.
UNIT_LABELS = ("unit_id",)
UNIT_INFO_LABELS = ("unit_id", "name", "path", "parent_id", "level")


def unit_labels(unit: Unit) -> list[str]:
    """Label values for UNIT_LABELS."""
    return [str(unit.id)]


def unit_info_labels(unit: Unit) -> list[str]:
    """Label values for UNIT_INFO_LABELS (names and paths are stored in NFC)."""
    return [str(unit.id), unit.name, unit.path,
            "" if unit.parent_id is None else str(unit.parent_id), str(unit.level)]


def rollup(units_: list[Unit], counts: dict[tuple[int, Any], float]) -> dict[tuple[int, Any],
                                                                                float]:
    """{(unit_id, key): n} per unit -> the same with each unit including its descendants."""
    chains = ancestors_map(units_)
    total: dict[tuple[int, Any], float] = defaultdict(float)
    for (unit_id, key), value in counts.items():
        for ancestor in chains.get(unit_id, [unit_id]):
            total[(ancestor, key)] += value
    return total



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
    cache keyed on it is exact without a time bucket. The rows are read on the driver's
    cursor and compared with the previous scrape's: while they are the same (nearly
    always) the previous tuple is returned, and SQLAlchemy converts the rows (about 1,000
    at 100,000 machines; ~10 ms) only when they moved.
    """
    memo = _scrape_memo(conn)
    key = ("stale", cutoff)
    found: tuple[StaleMachine, ...] | None = memo.get(key)
    if found is None:
        kept = _STALE.setdefault(conn.engine, _StaleRows())
        raw = kept.read(conn, cutoff)
        last = kept.last  # one read: another thread may replace it meanwhile
        if last is not None and last[0] == raw:
            found = last[1]
        else:
            found = tuple(StaleMachine(*row) for row in conn.execute(
                _stale_query(machines.c.last_seen < cutoff)))
            kept.last = (raw, found)
        memo[key] = found
    return found


def _stale_query(before: Any) -> Any:
    # Through the (unit_id, last_seen) index: a seek per unit, not a table scan.
    return (select(machines.c.machine_id, machines.c.hostname, machines.c.unit_id,
                   machines.c.last_seen)
            .where(machines.c.unit_id.in_(select(units.c.id)), before)
            .order_by(machines.c.machine_id))


class _StaleRows:
    """The stale machines of the last scrape of one engine: the driver's rows and the
    StaleMachine tuple made from them."""

    def __init__(self) -> None:
        # (driver rows, machines), replaced as one (threads of a worker share it).
        self.last: tuple[list[Any], tuple[StaleMachine, ...]] | None = None
        self.prepared: Prepared | None = None

    def read(self, conn: Connection, cutoff: datetime) -> list[Any]:
        if self.prepared is None:
            self.prepared = Prepared(_stale_query(machines.c.last_seen < bindparam("cutoff")),
                                     conn.dialect)
        # On the transaction's own driver connection.
        tx = RawTransaction(conn.connection.driver_connection, conn.dialect,
                            on_lost=conn.invalidate)
        return [tuple(row) for row in tx.all(self.prepared, {"cutoff": cutoff})]


def change_versions(conn: Connection) -> dict[str, int]:
    """The change versions, read once per scrape."""
    memo = _scrape_memo(conn)
    found: dict[str, int] | None = memo.get("versions")
    if found is None:
        found = memo["versions"] = versions(conn)
    return found


def compliance_log(conn: Connection, after: int, upto: int) -> ComplianceLog | None:
    """compliance_log_after(), read once per scrape for the same versions (the rule
    providers usually ask for the same range). The sets are shared: do not change them."""
    memo = _scrape_memo(conn)
    key = ("compliance_log", after, upto)
    if key not in memo:
        memo[key] = compliance_log_after(conn, after, upto)
    found: ComplianceLog | None = memo[key]
    return found


def scrape_units(conn: Connection) -> tuple[Unit, ...]:
    """The unit tree (part of every cache key: a rename or move changes paths), read from
    the database only when its change version moved."""
    memo = _scrape_memo(conn)
    found: tuple[Unit, ...] | None = memo.get("units")
    if found is None:
        cache = _UNITS.setdefault(conn.engine, Memo())
        found = memo["units"] = cache.get(change_versions(conn)[UNITS],
                                          lambda: tuple(all_units(conn)))
    return found


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


# Per engine rather than per app: an entry dies with its engine (tests make many apps,
# each with its own database and versions).
_UNITS: WeakKeyDictionary[Engine, Memo] = WeakKeyDictionary()
_STALE: WeakKeyDictionary[Engine, _StaleRows] = WeakKeyDictionary()
