"""Hot statements run on the driver's own cursor: compiled once by SQLAlchemy, executed
without its per-call machinery.

On the ingest hot path (authentication, the unchanged report) SQLAlchemy's Connection
cost more than the statements: a pool checkout through `engine.connect()` ~60 µs and
each `execute` ~15 µs on top of ~2 µs in sqlite3 (bench/bench_ingest.py, docs/
performance.md). `Prepared` keeps SQLAlchemy's compiled SQL text and its bind
processors (the same conversion of datetimes and JSON as every other write), and
`raw_transaction` runs them in one driver transaction (BEGIN IMMEDIATE on SQLite, as
write_transaction does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement


class Prepared:
    """One statement compiled for one dialect; `params(values)` gives the driver's
    parameters (positional for sqlite3, a dict for psycopg), bind processors applied."""

    def __init__(self, stmt: ClauseElement, dialect: Dialect,
                 column_keys: Sequence[str] | None = None) -> None:
        compiled: Any = stmt.compile(dialect=dialect,
                                     column_keys=list(column_keys or ()) or None)
        self.sql = compiled.string
        self.positional = compiled.positional
        self.order: tuple[str, ...] = tuple(compiled.positiontup or ())
        # SQLAlchemy's own conversions (UTCDateTime, JSON): what Connection.execute applies.
        procs: Mapping[str, Callable[[Any], Any] | None] = compiled._bind_processors
        self.processors = {k: p for k, p in procs.items() if p is not None}

    def params(self, values: Mapping[str, Any]) -> Any:
        procs = self.processors
        if self.positional:
            return tuple(procs[k](values[k]) if k in procs else values[k] for k in self.order)
        return {k: (procs[k](v) if k in procs else v) for k, v in values.items()}


class RawSQL(Prepared):
    """SQL written for one driver (its parameter style, its casts): passed as given."""

    def __init__(self, sql: str) -> None:  # noqa: D107 - no compile step
        self.sql, self.positional, self.order, self.processors = sql, False, (), {}

    def params(self, values: Mapping[str, Any]) -> Any:
        return values


class RawTransaction:
    """The driver connection inside raw_transaction: `one` and `run` take a Prepared."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def one(self, stmt: Prepared, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        cur = self.driver.cursor()
        try:
            cur.execute(stmt.sql, stmt.params(values))
            return cur.fetchone()
        finally:
            cur.close()

    def run(self, stmt: Prepared, values: Mapping[str, Any]) -> None:
        cur = self.driver.cursor()
        try:
            cur.execute(stmt.sql, stmt.params(values))
        finally:
            cur.close()


@contextmanager
def raw_transaction(engine: Engine, write: bool = True) -> Iterator[RawTransaction]:
    """One transaction on a pooled driver connection; commits on success, rolls back on
    an exception. `write` on SQLite takes the write lock first (BEGIN IMMEDIATE); without
    it SQLite runs the statements in autocommit (use it for one read)."""
    pooled = engine.raw_connection()
    driver: Any = pooled.driver_connection
    sqlite = engine.dialect.name == "sqlite"
    try:
        if sqlite and not write:
            # isolation_level None (db/engine.py): one read statement needs no BEGIN.
            yield RawTransaction(driver)
            return
        if sqlite:  # the driver begins nothing itself
            driver.execute("BEGIN IMMEDIATE")
        try:
            yield RawTransaction(driver)
        except BaseException:
            if sqlite:
                driver.execute("ROLLBACK")
            else:
                driver.rollback()
            raise
        if sqlite:
            driver.execute("COMMIT")
        else:
            driver.commit()
    finally:
        pooled.close()
