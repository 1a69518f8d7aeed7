"""Engine setup: SQLite in WAL mode with a busy timeout, PostgreSQL through psycopg 3."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from kiemke.collector import changes
from kiemke.collector.db.prepared import wrapped

SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_SYNCHRONOUS = "FULL"  # PRAGMA synchronous reads it back as 2
# PostgreSQL: a connection returned healthy less than this ago is not pinged at checkout
# (_ping_when_idle); far shorter than any restart of the database.
PING_AFTER_IDLE_S = 0.05
PINGED = "kiemke_pinged"  # pool record info: this checkout verified the database answers
# pool record info: when it was last returned healthy (None: a new connection)
_RETURNED = "kiemke_returned_at"
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
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    # The most recently returned connection first: the one just used is used again (the
    # write after authentication, the next report), and it needs no ping (below).
    kwargs.setdefault("pool_use_lifo", True)
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """The pool's pre-ping, except for a connection returned healthy less than
    PING_AFTER_IDLE_S ago (or just opened): that one is used as it is.

    The ping is what turns a restarted database into one 503 instead of an error per
    stale connection: a connection idle in the pool across the restart is found dead at
    checkout and replaced. A restart takes far longer than PING_AFTER_IDLE_S, so every
    connection that lived through one is still pinged; a connection returned moments ago
    whose database went away since fails at its first statement, which answers 503 as
    any request does while the database is away. Under load every checkout finds a
    connection returned moments ago: an unchanged report saved both pings (one per
    checkout), 2 of its 5 round trips (docs/performance.md)."""
    dialect = engine.dialect

    def _connected(_dbapi_conn: Any, record: Any) -> None:
        record.info[_RETURNED] = None  # new: it answered just now, no ping needed

    def _checkin(dbapi_conn: Any, record: Any) -> None:
        if dbapi_conn is not None:  # None: invalidated, the next checkout reconnects
            record.info[_RETURNED] = time.monotonic()

    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.pop(_RETURNED, 0.0)
        if returned is None:
            record.info[PINGED] = True
            return
        if time.monotonic() - returned < PING_AFTER_IDLE_S:
            record.info[PINGED] = False
            return
        try:
            alive = dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_conn, None):  # type: ignore[arg-type]
                raise
            alive = False
        if not alive:
            # As the pool's own pre-ping: every older connection is replaced too, and
            # the pool retries this checkout on a new connection.
            raise sa_exc.InvalidatePoolError()
        record.info[PINGED] = True

    event.listen(engine, "connect", _connected)
    event.listen(engine, "checkin", _checkin)
    event.listen(engine, "checkout", _checkout)


def pinged(record: Any) -> bool:
    """Whether the checkout of this pool record verified that the database answers (a
    new connection, or a ping): api/outage.py logs "available again" on that alone."""
    return bool(record.info.get(PINGED, True))


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
