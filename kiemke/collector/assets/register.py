"""Import a register file, or re-match the stored one, and refresh what depends on it.

Used by the CLI (`kiemke-collector assets import|recompute`) and by tests. Everything
happens in one write transaction: parse first (outside it), then replace, match,
recompute machine_depreciation and re-evaluate the rules of every machine whose
register entry changed, so `asset.*` and `depreciation.*` facts follow at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select

from kiemke.collector.accounts import audit
from kiemke.collector.accounts.roles import Principal
from kiemke.collector.assets import store
from kiemke.collector.assets.csv_import import read_register
from kiemke.collector.assets.state import load_depreciation
from kiemke.collector.config import CollectorConfig
from kiemke.collector.db.asset_tables import assets
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.evaluation.ruleset import create_evaluator
from kiemke.collector.timeutil import utcnow
from kiemke.collector.units import all_units

log = logging.getLogger(__name__)


class DryRun(Exception):
    """Raised inside the transaction to roll a dry run back."""

    def __init__(self, summary: store.ImportSummary) -> None:
        super().__init__("dry run")
        self.summary = summary


def _entries(conn: Connection) -> dict[str, tuple[Any, ...]]:
    """machine_id -> what its facts read from the register."""
    rows = conn.execute(select(assets.c.machine_id, assets.c.purchase_date, assets.c.cost,
                               assets.c.category).where(assets.c.machine_id.is_not(None)))
    return {r.machine_id: (r.purchase_date, r.cost, r.category) for r in rows}


def _reevaluate(conn: Connection, engine: Engine, config: CollectorConfig,
                machine_ids: set[str], now: dt.datetime) -> int:
    """Re-evaluate the rules of these machines (their asset.* facts changed)."""
    if not machine_ids:
        return 0
    evaluator = create_evaluator(engine, config, asset_lookup=store.lookup)
    return evaluator.reevaluate_machines(conn, machine_ids, now, recompute=True)


def _refresh(engine: Engine, config: CollectorConfig, change: Any, now: dt.datetime,
             dry_run: bool) -> store.ImportSummary:
    try:
        with write_transaction(engine) as conn:
            before = _entries(conn)
            summary = change(conn)
            after = _entries(conn)
            changed = {m for m in before.keys() | after.keys() if before.get(m) != after.get(m)}
            _reevaluate(conn, engine, config, changed, now)
            if dry_run:
                raise DryRun(summary)
    except DryRun as done:
        return done.summary
    return summary


def import_register(engine: Engine, config: CollectorConfig, path: str | Path, *,
                    now: dt.datetime | None = None, dry_run: bool = False,
                    actor: Principal | None = None) -> store.ImportSummary:
    """Replace the register with the file; RegisterError (nothing changed) when any row is bad."""
    now = now or utcnow()
    dep_config = load_depreciation(config.rules_dir)
    with engine.connect() as conn:
        units_ = all_units(conn)
    rows, data = read_register(path, dep_config.categories, units_,
                               today=now.astimezone(dt.timezone.utc).date())

    def change(conn: Connection) -> store.ImportSummary:
        summary = store.replace_register(conn, rows, file_name=Path(path).name, data=data,
                                         config=dep_config, now=now)
        if actor is not None:  # the audit log names who replaced the register
            audit.record(conn, actor, "assets.import", f"asset register {Path(path).name}",
                         now=now, details={"rows": summary.rows,
                                           "matched": summary.matched_total,
                                           "sha256": hashlib.sha256(data).hexdigest()})
        return summary

    return _refresh(engine, config, change, now, dry_run)


def recompute(engine: Engine, config: CollectorConfig, *, now: dt.datetime | None = None
              ) -> store.ImportSummary:
    """Re-match the stored register and rebuild every machine's row (after editing
    rules/depreciation.yml, or for machines that reported before the upgrade)."""
    now = now or utcnow()
    dep_config = load_depreciation(config.rules_dir)
    return _refresh(engine, config, lambda conn: store.rematch_all(
        conn, config=dep_config, now=now), now, dry_run=False)
