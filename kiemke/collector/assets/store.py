"""The asset register in the database: import (replace), matching, per-machine rows.

An import replaces the whole register in one transaction (the CSV is the register, as
exported from the accounting software), re-matches every row and recomputes every
machine's depreciation. On ingest, `on_report` matches a machine that has no register
entry yet and rewrites its machine_depreciation row only when something changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Dialect

from kiemke.collector.assets import depreciation as dep
from kiemke.collector.assets.csv_import import RegisterRow
from kiemke.collector.assets.identifiers import host_key, report_keys, serial_key, tag_key
from kiemke.collector.assets.matching import (
    ASSET_TAG,
    HOSTNAME,
    SERIAL,
    AssetKeys,
    MachineKeys,
    match_all,
)
from kiemke.collector.db.asset_tables import (
    asset_imports,
    asset_state,
    assets,
    machine_depreciation,
)
from kiemke.collector.db.engine import inserted_id
from kiemke.collector.db.prepared import Query, RawTransaction
from kiemke.collector.db.tables import machines
from kiemke.collector.units import all_units, subtree_ids
from kiemke.compliance.config import DepreciationConfig

BATCH = 1000
ASSET_FIELDS = ("id", "asset_tag", "serial", "hostname", "category", "purchase_date", "cost",
                "unit_id", "description", "matched_by", "line")


def asset_dict(row: Any) -> dict[str, Any]:
    """A register row as facts_from_report(asset=...) expects it (purchase_date a date)."""
    return {name: getattr(row, name) for name in ASSET_FIELDS}


@dataclass
class ImportSummary:
    rows: int
    replaced: int
    matched: dict[str, int]
    unmatched: list[dict[str, Any]]
    machines_without_entry: int
    import_id: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def matched_total(self) -> int:
        return sum(self.matched.values())


def bump_version(conn: Connection) -> None:
    """Tell every collector process that machine_depreciation changed (metrics cache)."""
    conn.execute(update(asset_state).where(asset_state.c.id == 1)
                 .values(version=asset_state.c.version + 1))


def current_version(conn: Connection) -> int:
    return conn.execute(select(asset_state.c.version).where(asset_state.c.id == 1)).scalar() or 0


# ---------------------------------------------------------------- reading machines

def _machine_inputs(conn: Connection) -> Iterator[tuple[MachineKeys, dict[str, Any]]]:
    """Every machine's identifiers and depreciation inputs, extracted from its report in SQL
    (parsing 100,000 JSON reports in Python would take seconds)."""
    r = machines.c.report
    query = select(machines.c.machine_id, machines.c.unit_id, machines.c.hostname,
                   r[("hardware", "serial")].as_string().label("serial"),
                   r[("identity", "asset_tag")].as_string().label("asset_tag"),
                   r[("hardware", "chassis")].as_string().label("chassis"),
                   r[("hardware", "manufacture_date", "value")].as_string().label("made"),
                   r[("hardware", "manufacture_date", "estimated")].as_boolean()
                   .label("made_estimated")).order_by(machines.c.machine_id)
    for row in conn.execute(query):
        keys = MachineKeys(row.machine_id, row.unit_id, row.hostname, serial_key(row.serial),
                           tag_key(row.asset_tag), host_key(row.hostname))
        # The part of a report compute_row reads, rebuilt from the extracted values.
        report = {"hardware": {"chassis": row.chassis, "manufacture_date": {
            "value": row.made, "estimated": True if row.made_estimated is None
            else bool(row.made_estimated)}}}
        yield keys, report


# ---------------------------------------------------------------- import

def replace_register(conn: Connection, rows: list[RegisterRow], *, file_name: str, data: bytes,
                     config: DepreciationConfig, now: dt.datetime) -> ImportSummary:
    """Replace the register with `rows`, match them, recompute every machine (one transaction:
    the caller's)."""
    replaced = conn.execute(select(func.count()).select_from(assets)).scalar_one()
    conn.execute(delete(assets))
    ids: list[int] = []
    for row in rows:  # one by one for the ids; a register has thousands of rows, not millions
        ids.append(inserted_id(conn.execute(insert(assets).values(
            line=row.line, asset_tag=row.asset_tag, serial=row.serial, hostname=row.hostname,
            tag_key=row.tag_key, serial_key=row.serial_key, host_key=row.host_key,
            category=row.category, purchase_date=row.purchase_date, cost=row.cost,
            unit_id=row.unit_id, unit_text=row.unit_text, description=row.description,
            imported_at=now))))
    summary = rematch_all(conn, config=config, now=now, replaced=replaced)
    summary.import_id = inserted_id(conn.execute(insert(asset_imports).values(
        file_name=file_name, sha256=hashlib.sha256(data).hexdigest(), rows=len(rows),
        matched=summary.matched_total, imported_at=now)))
    return summary


def rematch_all(conn: Connection, *, config: DepreciationConfig, now: dt.datetime,
                replaced: int = 0) -> ImportSummary:
    """Match every register row afresh and rebuild machine_depreciation for every machine."""
    inputs = list(_machine_inputs(conn))
    register = list(conn.execute(select(assets).order_by(assets.c.line)))
    units_ = all_units(conn)
    subtrees: dict[int, set[int]] = {}

    def subtree(unit_id: int) -> set[int]:
        if unit_id not in subtrees:
            subtrees[unit_id] = set(subtree_ids(units_, unit_id))
        return subtrees[unit_id]

    result = match_all((AssetKeys(a.id, a.line, a.serial_key, a.tag_key, a.host_key, a.unit_id)
                        for a in register), (keys for keys, _ in inputs), subtree)
    conn.execute(update(assets).values(machine_id=None, matched_by=None))
    for asset_id, (machine_id, by) in result.matched.items():
        conn.execute(update(assets).where(assets.c.id == asset_id)
                     .values(machine_id=machine_id, matched_by=by))
    by_machine = {machine_id: a for a in register
                  for machine_id, _by in [result.matched.get(a.id, (None, None))] if machine_id}
    conn.execute(delete(machine_depreciation))
    batch: list[dict[str, Any]] = []
    for keys, report in inputs:
        asset = by_machine.get(keys.machine_id)
        row = dep.compute_row(machine_id=keys.machine_id, unit_id=keys.unit_id, report=report,
                              asset=asset_dict(asset) if asset else None, config=config,
                              keys=(keys.serial_key, keys.tag_key, keys.host_key), now=now)
        batch.append({**row, "updated_at": now})
        if len(batch) >= BATCH:
            conn.execute(insert(machine_depreciation), batch)
            batch = []
    if batch:
        conn.execute(insert(machine_depreciation), batch)
    bump_version(conn)
    counts = {SERIAL: 0, ASSET_TAG: 0, HOSTNAME: 0}
    for _machine_id, by in result.matched.values():
        counts[by] += 1
    unmatched = [{"line": a.line, "asset_tag": a.asset_tag, "serial": a.serial,
                  "hostname": a.hostname, "reason": result.reasons.get(
                      a.id, "no reporting machine has this serial, asset tag or hostname")}
                 for a in register if a.id not in result.matched]
    return ImportSummary(rows=len(register), replaced=replaced, matched=counts,
                         unmatched=unmatched, machines_without_entry=len(inputs) - len(by_machine))


# ---------------------------------------------------------------- ingest

_MATCHED = select(assets).where(assets.c.machine_id == bindparam("m"))


# The register entry the ingest step just found for a machine, kept for the evaluate
# step's lookup right after it in the same transaction (one SELECT fewer per report).
_FOUND = "kiemke.assets.found"


def _remember(conn: Connection, machine_id: str, asset: dict[str, Any] | None) -> None:
    conn.info[_FOUND] = (conn.get_transaction(), machine_id, asset)


def lookup(conn: Connection, machine_id: str) -> dict[str, Any] | None:
    """The register entry matched to a machine, as facts_from_report(asset=...) wants it."""
    # Used once, and only in the transaction that found it (conn.info outlives it: it is
    # the pooled connection's); nothing changes the register between the two steps.
    found = conn.info.pop(_FOUND, None)
    if found is not None and found[0] is conn.get_transaction() and found[1] == machine_id:
        return None if found[2] is None else dict(found[2])
    row = conn.execute(_MATCHED, {"m": machine_id}).first()
    return asset_dict(row) if row else None


def _unit_allows(conn: Connection, asset_unit: int | None, machine_unit: int) -> bool:
    if asset_unit is None:
        return True
    return machine_unit in subtree_ids(all_units(conn), asset_unit)


# Built once: on ingest these run for every report, and building SQLAlchemy expressions
# costs more than executing the cached statement. NULL keys compare false in SQL.
_CANDIDATES = select(assets).where(or_(
    assets.c.machine_id == bindparam("m"),
    and_(assets.c.machine_id.is_(None),
         or_(assets.c.serial_key == bindparam("s"), assets.c.tag_key == bindparam("t"),
             assets.c.host_key == bindparam("h")))))
_CURRENT = select(machine_depreciation).where(machine_depreciation.c.machine_id == bindparam("m"))
_OTHERS = {attr: select(machine_depreciation.c.unit_id).where(
    machine_depreciation.c[attr] == bindparam("k"),
    machine_depreciation.c.machine_id != bindparam("m"),
    machine_depreciation.c.asset_id.is_(None)) for attr in ("serial_key", "tag_key", "host_key")}


def match_one(conn: Connection, machine_id: str, unit_id: int,
              keys: tuple[str | None, str | None, str | None],
              found: list[Any] | None = None) -> Any | None:
    """The register row of a machine: the one matched to it, or else an unmatched row
    matched now with the import's rules (strongest identifier first, and only when
    neither side is ambiguous). `found` may hold the candidate rows already read."""
    s_key, t_key, h_key = keys
    if found is None:
        found = list(conn.execute(_CANDIDATES, {"m": machine_id, "s": s_key, "t": t_key,
                                                "h": h_key}))
    for row in found:
        if row.machine_id == machine_id:
            return row
    for by, attr, key in ((SERIAL, "serial_key", s_key), (ASSET_TAG, "tag_key", t_key),
                          (HOSTNAME, "host_key", h_key)):
        if not key:
            continue
        rows = [a for a in found if a.machine_id is None and getattr(a, attr) == key]
        if by == HOSTNAME:
            rows = [a for a in rows if _unit_allows(conn, a.unit_id, unit_id)]
        if len(rows) != 1:
            continue  # none, or several register rows claim this machine
        # Another machine without an entry that has the same identifier makes it ambiguous.
        others = conn.execute(_OTHERS[attr], {"k": key, "m": machine_id}).scalars().all()
        if by == HOSTNAME:
            others = [u for u in others if _unit_allows(conn, rows[0].unit_id, u)]
        if others:
            continue
        conn.execute(update(assets).where(assets.c.id == rows[0].id, assets.c.machine_id.is_(None))
                     .values(machine_id=machine_id, matched_by=by))
        return rows[0]
    return None


class _Queries:
    def __init__(self, dialect: Dialect) -> None:
        self.candidates = Query(_CANDIDATES, dialect)
        self.current = Query(_CURRENT, dialect)


@cache
def _queries(dialect: Dialect) -> _Queries:
    return _Queries(dialect)


_COMPARED = ("unit_id", "asset_id", "serial_key", "tag_key", "host_key", "category",
             "estimated", "start_date", "cost", "useful_life_years", "fully_depreciated_on",
             "overdue_from", "reason")


def on_report(conn: Connection, machine_row: dict[str, Any], report: dict[str, Any], *,
              config: DepreciationConfig, now: dt.datetime) -> dict[str, Any] | None:
    """Ingest step: match if needed, refresh the machine's depreciation row; return its asset.

    A late report (not the machine's current state) changes nothing.
    """
    if not machine_row.get("current", True):
        return None
    machine_id = machine_row["machine_id"]
    keys = report_keys(report)
    # The two reads of every report on the driver's cursor (kiemke.collector.db.prepared:
    # SQLAlchemy's execute cost more than these statements), in this same transaction.
    queries = _queries(conn.engine.dialect)
    tx = RawTransaction(conn.connection.driver_connection, conn.engine.dialect,
                        on_lost=conn.invalidate)
    s_key, t_key, h_key = keys
    found = tx.rows(queries.candidates, {"m": machine_id, "s": s_key, "t": t_key,
                                         "h": h_key})
    row = match_one(conn, machine_id, machine_row["unit_id"], keys, found)
    asset = asset_dict(row) if row else None
    if row is None or row.machine_id == machine_id:
        # What lookup() would read now; a row matched just now is read again there
        # (its matched_by was set after this row was read).
        _remember(conn, machine_id, asset)
    new = dep.compute_row(machine_id=machine_id, unit_id=machine_row["unit_id"], report=report,
                          asset=asset, config=config, keys=keys, now=now)
    current = tx.rows(queries.current, {"m": machine_id})
    old = current[0] if current else None
    if old is None:
        conn.execute(insert(machine_depreciation).values(**new, updated_at=now))
        bump_version(conn)
    elif any(getattr(old, c) != new[c] for c in _COMPARED):
        conn.execute(update(machine_depreciation)
                     .where(machine_depreciation.c.machine_id == machine_id)
                     .values(**new, updated_at=now))
        bump_version(conn)
    return asset


# ---------------------------------------------------------------- reading

def last_import(conn: Connection) -> Any | None:
    return conn.execute(select(asset_imports).order_by(asset_imports.c.id.desc()).limit(1)).first()


def unmatched_machines(conn: Connection) -> list[Any]:
    """Machines with no register entry (their age is estimated from firmware)."""
    return list(conn.execute(
        select(machines.c.machine_id, machines.c.hostname, machines.c.unit_id)
        .where(~select(assets.c.id).where(assets.c.machine_id == machines.c.machine_id)
               .exists()).order_by(machines.c.hostname, machines.c.machine_id)))


def move_machine(conn: Connection, machine_id: str, unit_id: int) -> None:
    """Follow a machine moved to another unit (admin move) in the depreciation figures."""
    done = conn.execute(update(machine_depreciation)
                        .where(machine_depreciation.c.machine_id == machine_id,
                               machine_depreciation.c.unit_id != unit_id)
                        .values(unit_id=unit_id))
    if done.rowcount:
        bump_version(conn)
