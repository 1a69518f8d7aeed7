"""SQLite durability: every connection the collector opens runs `synchronous=FULL`.

Under WAL, `synchronous=NORMAL` does not sync the WAL at each commit: a power cut or an
OS crash could lose a report the collector already answered 202 for, which the agent
has then deleted from its spool ("nothing accepted is ever lost", docs/deployment.md).
FULL reads back as 2. Checked for each way the collector opens the database: the
engine itself (SQLAlchemy's connections and the driver connections of the hot path),
the app that `serve` runs in each gunicorn worker (ingest, maintenance thread), the
CLI's engine, and the forked workers of the parallel re-evaluation pass.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from compliance_helpers import build_tree, make_app, populate_fleet, recent
from sqlalchemy import Engine, event

from kiemke.collector.cli_common import open_engine
from kiemke.collector.config import CollectorConfig
from kiemke.collector.db.engine import make_engine
from kiemke.collector.db.migrate import upgrade

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def _synchronous(engine: Engine) -> tuple[int, int]:
    """The pragma on a SQLAlchemy connection and on a raw pooled driver connection
    (authentication and the unchanged report run on the latter: db/prepared.py)."""
    with engine.connect() as conn:
        through_sqlalchemy = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    raw = engine.raw_connection()
    try:
        cur = raw.driver_connection.cursor()  # type: ignore[union-attr]
        cur.execute("PRAGMA synchronous")
        driver = cur.fetchone()[0]
        cur.close()
    finally:
        raw.close()
    return through_sqlalchemy, driver


def test_engine_connections_are_synchronous_full(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        assert _synchronous(engine) == (FULL, FULL)
        with engine.connect() as conn:  # and still in WAL mode
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


def test_serving_app_is_synchronous_full(tmp_path: Path, monkeypatch: Any) -> None:
    """The engine of create_app: what each gunicorn worker of `serve` builds (server.py)."""
    app = make_app(f"sqlite:///{tmp_path / 'k.db'}", tmp_path, monkeypatch)
    engine = app.extensions["kiemke"].engine
    try:
        assert _synchronous(engine) == (FULL, FULL)
    finally:
        engine.dispose()


def test_cli_engine_is_synchronous_full(tmp_path: Path) -> None:
    """The engine of the CLI's commands (cli_common.open_engine)."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    upgrade(url)
    config = CollectorConfig.from_env({"KIEMKE_DATABASE_URL": url,
                                       "KIEMKE_DATA_DIR": str(tmp_path / "d")})
    with open_engine(config) as engine:
        assert _synchronous(engine) == (FULL, FULL)


# The pass forks only from a process running one thread (test_reevaluate_bulk.py).
@pytest.mark.exclusive
def test_forked_reevaluation_workers_are_synchronous_full(tmp_path: Path,
                                                          monkeypatch: Any) -> None:
    """A forked worker of the parallel pass opens its own connections (a new pool):
    each new connection, in any process, records its pragma."""
    from kiemke.collector.evaluation import bulk

    monkeypatch.setattr(bulk, "PARALLEL_MIN", 0)  # split even this small fleet
    app = make_app(f"sqlite:///{tmp_path / 'k.db'}", tmp_path, monkeypatch)
    populate_fleet(app, build_tree(app))
    engine = app.extensions["kiemke"].engine
    seen = tmp_path / "connections.txt"

    @event.listens_for(engine, "connect")
    def _record(dbapi_conn: Any, _record: Any) -> None:  # after the engine's own listener
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous")
        with seen.open("a") as out:
            out.write(f"{os.getpid()} {cur.fetchone()[0]}\n")
        cur.close()

    engine.dispose()  # every connection from now on is new: the listener sees it
    result = app.extensions["kiemke"].compliance.reevaluate_all(recent(), batch=2, workers=2)
    assert result["processes"] == 2
    rows = [line.split() for line in seen.read_text().splitlines()]
    assert {pid for pid, _ in rows} - {str(os.getpid())}, "no connection of a forked worker"
    assert {int(value) for _, value in rows} == {FULL}
    engine.dispose()
