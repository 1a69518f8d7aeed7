"""The PostgreSQL pool's ping (db/engine.py `_ping_when_idle`): a connection idle in the
pool is pinged at checkout and replaced when its server process is gone (no error for
the request: what turns a restarted database into no 500s); one returned healthy moments
ago is used as it is (the round trip saved per checkout under load). Real PostgreSQL;
which statement a backend ran last is read from pg_stat_activity."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from conftest import PG_ADMIN_URL

from kiemke.collector.db import engine as engine_module
from kiemke.collector.db.engine import make_engine


def _last_query(pid: int) -> str:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        row = admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    assert row is not None, f"backend {pid} is gone"
    return str(row[0])


def _mark(engine: Any, text: str) -> int:
    """Run a marked statement on a checked-out connection (then returned: the pool
    rolls back); its backend's pid."""
    with engine.connect() as conn:
        pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
        conn.exec_driver_sql(f"SELECT '{text}'")
    return pid


@pytest.fixture
def pg_engine(pg_url: str) -> Any:
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def test_connection_returned_moments_ago_is_not_pinged(pg_engine, monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 3600.0)  # "moments ago"
    pid = _mark(pg_engine, "kiemke-mark-1")
    raw = pg_engine.raw_connection()  # the same connection (one in the pool)
    try:
        # The pool's reset on return was the last statement: no ping after it.
        assert _last_query(pid) == "ROLLBACK"
    finally:
        raw.close()


def test_idle_connection_is_pinged(pg_engine, monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)  # every one is idle
    pid = _mark(pg_engine, "kiemke-mark-2")
    raw = pg_engine.raw_connection()
    try:
        assert _last_query(pid) == pg_engine.dialect._dialect_specific_select_one  # the ping
    finally:
        raw.close()


def test_idle_connection_whose_backend_died_is_replaced(pg_engine, monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)
    pid = _mark(pg_engine, "kiemke-mark-3")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    # No error: the ping found the connection dead and the pool opened a new one.
    assert _mark(pg_engine, "kiemke-mark-4") != pid
