"""Database outages: 503 with Retry-After (agents keep the report and back off), and one
log line when the database goes away and one when it is back, not a traceback per request.

A stopped PostgreSQL used to answer ~940 requests with 500 and write ~1,900 traceback
lines in 20 s (issue 11). Every error meaning "the database cannot be reached or is busy"
(connection refused or lost, pool exhausted, SQLite's write lock held past its timeout)
becomes 503 `database_unavailable`; other database errors stay 500, because they are
bugs to fix, not outages to wait out.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from kiemke.collector.api.errors import error_response
from kiemke.collector.db.engine import pinged

RETRY_AFTER_SECONDS = 5  # short: most outages are restarts; agents add jitter
log = logging.getLogger("kiemke.collector.database")


class DatabaseState:
    """Up or down as this process last saw it; logs each change once."""

    def __init__(self) -> None:
        self.down = False
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self.down:
                return
            self.down = True
        log.error("database unavailable, answering 503 until it is back: %s",
                  str(getattr(exc, "orig", None) or exc).strip().splitlines()[0])

    def succeeded(self) -> None:
        with self._lock:
            if not self.down:
                return
            self.down = False
        log.warning("database available again")


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError,
                        sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def init_app(app: Flask) -> None:
    """After app.extensions["kiemke"] holds the engine."""
    state = DatabaseState()
    app.extensions["kiemke_database_state"] = state

    def _unavailable(exc: Exception) -> Any:
        if not is_outage(exc):
            raise exc  # a bug: Flask's 500 handler logs the traceback
        state.failed(exc)
        resp = error_response(503, "database_unavailable", None,
                              "the collector's database does not answer; nothing was stored. "
                              "Agents keep the report and retry by themselves; operators: "
                              "check the database server and KIEMKE_DATABASE_URL")
        resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return resp

    app.register_error_handler(sa_exc.SQLAlchemyError, _unavailable)

    def _checked_out(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        # A connection passed the pool's pre-ping (or is new): the database answers. One
        # returned moments ago is not pinged (db/engine.py) and proves nothing. A bool
        # check per checkout; the lock only when the state changes.
        if state.down and pinged(record):
            state.succeeded()

    event.listen(app.extensions["kiemke"].engine, "checkout", _checked_out)
