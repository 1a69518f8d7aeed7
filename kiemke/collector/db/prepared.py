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

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from sqlalchemy import Engine, Select
from sqlalchemy import exc as sa_exc
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


class Query(Prepared):
    """A SELECT whose rows come back as named tuples (attribute access by column key),
    each value converted by its column type's result processor, as SQLAlchemy's own
    result rows convert them (SQLite's text dates, its integer booleans)."""

    def __init__(self, stmt: Select[Any], dialect: Dialect) -> None:
        super().__init__(stmt, dialect)
        columns = list(stmt.selected_columns)
        self.row_type = namedtuple("Row", [c.key for c in columns])  # type: ignore[misc]
        self.converters: list[Callable[[Any], Any] | None] = [
            c.type._cached_result_processor(dialect, None)  # noqa: SLF001
            for c in columns]

    def row(self, values: Sequence[Any]) -> Any:
        return self.row_type(*(v if p is None else p(v)
                               for p, v in zip(self.converters, values, strict=True)))


class RawSQL(Prepared):
    """SQL written for one driver (its parameter style, its casts): passed as given."""

    def __init__(self, sql: str) -> None:  # noqa: D107 - no compile step
        self.sql, self.positional, self.order, self.processors = sql, False, (), {}

    def params(self, values: Mapping[str, Any]) -> Any:
        return values


class RawTransaction:
    """A driver connection: `one` and `run` take a Prepared. Driver errors come out as
    SQLAlchemy's DBAPIError (with `connection_invalidated` for a lost connection), like
    from Connection.execute, so the outage handler answers 503 for them
    (kiemke.collector.api.outage)."""

    def __init__(self, driver: Any, dialect: Dialect,
                 on_lost: Callable[[], Any] | None = None) -> None:
        self.driver, self.dialect, self.on_lost = driver, dialect, on_lost

    def one(self, stmt: Prepared, values: Mapping[str, Any],
            first: tuple[Prepared, Mapping[str, Any]] | None = None
            ) -> tuple[Any, ...] | None:
        """The statement's first row. `first` (PostgreSQL): a statement run before it in
        the same round trip (a psycopg pipeline: the server runs them in that order)."""
        return self._execute(stmt, values, fetch="one", first=first)

    def run(self, stmt: Prepared, values: Mapping[str, Any]) -> None:
        self._execute(stmt, values, fetch="none")

    def all(self, stmt: Prepared, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of the statement, as the driver gives them (nothing converted)."""
        rows: list[tuple[Any, ...]] = self._execute(stmt, values, fetch="all")
        return rows

    def rows(self, query: Query, values: Mapping[str, Any]) -> list[Any]:
        """Every row of `query`, converted (Query.row)."""
        return [query.row(r) for r in self.all(query, values)]

    def _execute(self, stmt: Prepared, values: Mapping[str, Any],
                 fetch: Literal["none", "one", "all"],
                 first: tuple[Prepared, Mapping[str, Any]] | None = None) -> Any:
        cur = None
        try:
            cur = self.driver.cursor()
            if first is None:
                cur.execute(stmt.sql, stmt.params(values))
            else:
                with self.driver.pipeline():
                    self.driver.execute(first[0].sql, first[0].params(first[1]))
                    cur.execute(stmt.sql, stmt.params(values))
            if fetch == "all":
                return cur.fetchall()
            return cur.fetchone() if fetch == "one" else None
        except self.dialect.loaded_dbapi.Error as exc:
            error = wrapped(exc, self.dialect, stmt.sql, self.driver, cur)
            if error.connection_invalidated and self.on_lost is not None:
                self.on_lost()  # the SQLAlchemy Connection around it: drop it
            raise error from exc
        finally:
            if cur is not None:
                cur.close()


def wrapped(exc: Exception, dialect: Dialect, sql: str | None, driver: Any = None,
            cursor: Any = None) -> sa_exc.DBAPIError:
    """The driver's error as SQLAlchemy raises it (parameters hidden: they hold reports
    and credentials)."""
    lost = bool(dialect.is_disconnect(exc, driver, cursor))  # type: ignore[arg-type]
    error = sa_exc.DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error,
                                       hide_parameters=True, connection_invalidated=lost,
                                       dialect=dialect)
    if not isinstance(error, sa_exc.DBAPIError):  # only for non-driver exceptions
        raise exc
    return error


@contextmanager
def raw_transaction(engine: Engine, write: bool = True) -> Iterator[RawTransaction]:
    """One transaction on a pooled driver connection; commits on success, rolls back on
    an exception. `write` on SQLite takes the write lock first (BEGIN IMMEDIATE); without
    it both databases run the statements in autocommit (use it for one read: on
    PostgreSQL it saves the BEGIN and COMMIT round trips). A connection that failed is
    dropped from the pool, not returned to it."""
    dialect = engine.dialect
    try:
        pooled = engine.raw_connection()  # the pool's pre-ping as for engine.connect()
    except dialect.loaded_dbapi.Error as exc:
        raise wrapped(exc, dialect, None) from exc
    driver: Any = pooled.driver_connection
    sqlite = dialect.name == "sqlite"
    tx = RawTransaction(driver, dialect)
    try:
        if sqlite and not write:
            # isolation_level None (db/engine.py): one read statement needs no BEGIN.
            yield tx
            return
        if not write:
            # One read statement is its own snapshot; autocommit is a client-side switch
            # of psycopg (the dialect's pre-ping flips it the same way).
            driver.autocommit = True
            try:
                yield tx
            finally:
                if not driver.closed:
                    driver.autocommit = False
            return
        if sqlite:
            tx.run(_BEGIN_IMMEDIATE, {})
        try:
            yield tx
        except BaseException:
            try:
                if sqlite:
                    driver.execute("ROLLBACK")
                else:
                    driver.rollback()
            except dialect.loaded_dbapi.Error:
                pooled.invalidate()
            raise
        try:
            if sqlite:
                driver.execute("COMMIT")
            else:
                driver.commit()
        except dialect.loaded_dbapi.Error as exc:
            raise wrapped(exc, dialect, "COMMIT", driver) from exc
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated:
            pooled.invalidate()
        raise
    finally:
        pooled.close()


_BEGIN_IMMEDIATE = RawSQL("BEGIN IMMEDIATE")
