"""Engine setup: SQLite in WAL mode with a busy timeout, PostgreSQL through psycopg 3."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, create_engine, event
from sqlalchemy.engine import make_url

from kiemke.collector import changes
from kiemke.collector.db.prepared import wrapped

SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_SYNCHRONOUS = "FULL"  # PRAGMA synchronous reads it back as 2
_BEGIN = {mode: f"BEGIN {mode}" for mode in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")}


def normalize_url(url: str) -> str:
    """postgresql:// and postgres:// mean psycopg 3 (SQLAlchemy would pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_size", 8)
    kwargs.setdefault("max_overflow", 8)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                              "check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own implicit
        # BEGIN cannot be made IMMEDIATE, see write_transaction).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # FULL: under WAL, NORMAL does not sync the WAL at each commit, so a power cut
        # or OS crash could lose a report already answered 202 (and deleted from the
        # agent's spool). With group commit that is one fsync per batch.
        cur.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads then writes cannot wait for the write lock
        # (SQLite answers "database is locked" at once); writers start IMMEDIATE instead.
        # On the driver: through exec_driver_sql the BEGIN of every ingest transaction
        # cost SQLAlchemy's whole execute path (docs/performance.md); its error comes out
        # as SQLAlchemy's (a lock held past the busy timeout answers 503).
        sql = _BEGIN[conn.get_execution_options().get("sqlite_begin", "DEFERRED")]
        driver = conn.connection.driver_connection
        try:
            driver.execute(sql)  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            raise wrapped(exc, conn.dialect, sql, driver) from exc

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A short write transaction; on SQLite it takes the write lock first (BEGIN IMMEDIATE).

    The compliance changes it recorded are bumped last, just before commit
    (kiemke.collector.changes.flush: the version row is the last lock every writer takes).
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(sqlite_begin="IMMEDIATE")
        try:
            with conn.begin():
                yield conn
                changes.flush(conn)
        finally:
            changes.discard(conn)


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT ... VALUES just added."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the INSERT returned no primary key")
    return int(key[0])
