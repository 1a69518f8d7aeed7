"""The ingest lock: one ingest transaction at a time across processes, on PostgreSQL.

Why it exists: pipeline/group_commit.py (batches of two processes formed lock cycles on
the rows every report of a unit shares). SQLite needs nothing here: the write
transaction begins IMMEDIATE, which is the same lock.

It is a transaction-scoped advisory lock (INGEST_LOCK_KEY, every process and instance
the same), and it must be taken before the transaction's first row lock. It is taken in
the round trip of the transaction's first statement, not in one of its own. A statement
on the driver's cursor that may be the first (the unchanged step's, the store step's)
asks for it: `lock_first` gives RawTransaction.one(first=...) the lock, sent with the
statement in one psycopg pipeline (PostgreSQL runs them in the order sent). For any
statement through SQLAlchemy the engine's `before_cursor_execute` hook takes it first,
in a round trip of its own. The hook sees only SQLAlchemy's statements: a raw first
statement that did not ask would leave the lock to the next SQLAlchemy statement, after
its own row locks, and two processes' transactions then deadlocked (one held the lock
and waited for a machine row, the other held the row and waited for the lock;
tests/test_concurrent_ingest.py, tests/test_ingest_lock.py). psycopg (3.3) sends the
BEGIN in a round trip of its own even in pipeline mode (it waits for BEGIN's answer),
so a lone unchanged report costs the BEGIN, one round trip and the COMMIT (and the
pool's ping when its connection was idle: db/engine.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, event

from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.prepared import Prepared, RawSQL

INGEST_LOCK_KEY = 0x6B69656D6B6520  # "kiemke" + 0x20; the job locks use 0x09..0x12
LOCK = RawSQL("SELECT pg_advisory_xact_lock(%(k)s)")
LOCK_VALUES = {"k": INGEST_LOCK_KEY}
_PENDING = "kiemke_ingest_lock_pending"  # conn.info key: this transaction has no lock yet
_HOOKED: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines with the hook below


@contextmanager
def ingest_transaction(engine: Engine) -> Iterator[Connection]:
    """write_transaction; on PostgreSQL its first statement takes the ingest lock first,
    held until the commit."""
    if engine.dialect.name != "postgresql":
        with write_transaction(engine) as conn:
            yield conn
        return
    if engine not in _HOOKED:
        event.listen(engine, "before_cursor_execute", _lock_before_first)
        _HOOKED.add(engine)
    info: dict[Any, Any] | None = None
    try:
        with write_transaction(engine) as conn:
            info = conn.info
            info[_PENDING] = True
            yield conn
    finally:
        if info is not None:  # the pooled connection's dict: nothing left for the next
            info.pop(_PENDING, None)


def lock_pending(conn: Connection) -> bool:
    """True when the caller's statement is the first of an ingest transaction on
    PostgreSQL: the caller then sends LOCK first, in the same pipeline (it is then
    taken; the next call returns False)."""
    return bool(conn.info.pop(_PENDING, False))


def lock_first(conn: Connection) -> tuple[Prepared, Mapping[str, Any]] | None:
    """`first=` for RawTransaction.one of a statement on the driver's cursor that may be
    the first of an ingest transaction: the lock when it is (PostgreSQL, lock_pending),
    else None."""
    return (LOCK, LOCK_VALUES) if lock_pending(conn) else None


def _lock_before_first(conn: Connection, cursor: Any, statement: str, parameters: Any,
                       context: Any, executemany: bool) -> tuple[str, Any]:
    if conn.info.pop(_PENDING, False):
        driver = cursor.connection
        with driver.pipeline():  # psycopg's BEGIN, then the lock: a round trip each
            driver.execute(LOCK.sql, LOCK_VALUES)
    return statement, parameters
