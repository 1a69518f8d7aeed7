"""Periodic jobs that run once across every worker of every collector instance.

Every scheduled job of the collector takes one of these locks; a caller that does not get
it skips the run (another process is doing the work):

| job (module)                                   | lock name     | PostgreSQL key   |
|------------------------------------------------|---------------|------------------|
| daily history job (reports/history.py)         | `daily`       | 0x6B69656D6B6509 |
| maintenance pass (evaluation/maintenance.py)   | `maintenance` | 0x6B69656D6B6510 |
| scheduled report delivery (reports/delivery.py)| `delivery`    | 0x6B69656D6B6511 |
| raw report retention (retention.py)            | `retention`   | 0x6B69656D6B6512 |

(0x6B69656D6B6520 is taken too: the ingest lock of pipeline/ingest_lock.py, held by
each ingest transaction until its commit, not by a job.)

- PostgreSQL: `pg_try_advisory_lock(key)` on a connection held for the whole run; a
  process that dies (SIGKILL, power cut) loses its session and so the lock at once.
- SQLite (one host): a row in `history_lock` (name, holder = host:pid:thread,
  acquired_at), taken by one conditional UPDATE in a write transaction. A row whose
  holder is a dead process of this host, or older than the job's timeout, is taken over.

`claim_every` adds "at most once per interval" on top (the maintenance pass and the
retention job run on a timer in every worker): one conditional UPDATE of the row's
`synced_at`, so of the processes whose timers fire together exactly one wins.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.history_tables import history_lock

# Any constants shared by all instances ("kiemke" in ASCII, then a job number).
PG_KEYS = {
    "daily": 0x6B69656D6B6509,
    "maintenance": 0x6B69656D6B6510,
    "delivery": 0x6B69656D6B6511,
    "retention": 0x6B69656D6B6512,
}
# A SQLite lock row older than this is taken over (its holder hung or its host died).
TIMEOUTS = {
    "daily": timedelta(minutes=30),
    "maintenance": timedelta(minutes=15),
    "delivery": timedelta(minutes=30),
    "retention": timedelta(minutes=30),
}


def holder_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{threading.get_ident() % 100000}"


def _holder_dead(holder: str | None) -> bool:
    """A holder on this host whose process is gone (SIGKILL left its row behind)."""
    if not holder:
        return False
    parts = holder.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname()[:40]:
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def ensure_row(engine: Engine, name: str) -> None:
    """The job's row, created once (two instances starting together may both try)."""
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    with write_transaction(engine) as conn:
        conn.execute(insert(history_lock).values(name=name)
                     .on_conflict_do_nothing(index_elements=["name"]))


@contextmanager
def exclusive(engine: Engine, name: str, now: datetime) -> Iterator[bool]:
    """True when this caller holds the lock of job `name` across instances; released on
    leaving the block."""
    if engine.dialect.name == "postgresql":
        key = PG_KEYS[name]
        with engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        return
    holder = holder_id()
    ensure_row(engine, name)
    with write_transaction(engine) as conn:
        current = conn.execute(select(history_lock.c.holder)
                               .where(history_lock.c.name == name)).scalar()
        free = or_(history_lock.c.holder.is_(None),
                   history_lock.c.acquired_at < now - TIMEOUTS[name])
        if _holder_dead(current):
            free = history_lock.c.holder == current
        got = conn.execute(update(history_lock).where(history_lock.c.name == name, free)
                           .values(holder=holder, acquired_at=now)).rowcount == 1
    try:
        yield got
    finally:
        if got:
            with write_transaction(engine) as conn:
                conn.execute(update(history_lock).where(
                    history_lock.c.name == name, history_lock.c.holder == holder)
                    .values(holder=None, acquired_at=None))


def claim_every(engine: Engine, name: str, now: datetime, every: timedelta) -> bool:
    """True for exactly one caller per `every` (its time is stored in `synced_at`)."""
    ensure_row(engine, name)
    with write_transaction(engine) as conn:
        return conn.execute(update(history_lock).where(
            history_lock.c.name == name,
            or_(history_lock.c.synced_at.is_(None), history_lock.c.synced_at <= now - every)
        ).values(synced_at=now)).rowcount == 1


def last_run(engine: Engine, name: str) -> datetime | None:
    with engine.connect() as conn:
        value: datetime | None = conn.execute(select(history_lock.c.synced_at).where(
            history_lock.c.name == name)).scalar()
    return value
