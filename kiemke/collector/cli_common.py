"""What every kiemke-collector command shares: the user-facing error, the database
connection that refuses an unreachable or un-migrated database with a clear message,
and the plain-text table.

Secrets (tokens) are printed alone on stdout so scripts can capture them; everything
meant for people goes to stderr (`say`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from kiemke.collector.config import CollectorConfig
from kiemke.collector.db.engine import make_engine, normalize_url, write_transaction
from kiemke.collector.db.migrate import is_up_to_date

# A subcommand: set as `func` on its parser, returns the exit code.
Command = Callable[[argparse.Namespace], int]


def command_config(args: argparse.Namespace) -> CollectorConfig:
    """The collector configuration a command runs with (--config, KIEMKE_* variables)."""
    config = CollectorConfig.from_env(config_file=args.config)
    config.ensure_data_dir()
    return config


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def say(text: str) -> None:
    """A line for people (stderr)."""
    print(text, file=sys.stderr)


@contextmanager
def open_engine(config: CollectorConfig, require_migrated: bool = True) -> Iterator[Engine]:
    """The database of `config`; CliError when it cannot be reached or is not migrated."""
    engine = make_engine(config.database_url)
    try:
        try:
            migrated = is_up_to_date(engine)
        except OperationalError as exc:
            raise CliError(f"cannot reach the database {safe_url(config.database_url)}: "
                           f"{exc.orig}; check KIEMKE_DATABASE_URL") from None
        if require_migrated and not migrated:
            raise CliError(f"the database {safe_url(config.database_url)} is not migrated to "
                           f"this version; run `kiemke-collector db upgrade` first")
        yield engine
    finally:
        engine.dispose()


@contextmanager
def write_connection(config: CollectorConfig) -> Iterator[Connection]:
    """One write transaction on the database of `config`."""
    with open_engine(config) as engine, write_transaction(engine) as conn:
        yield conn


def safe_url(url: str) -> str:
    """The database URL without its password, for messages."""
    try:
        return make_url(normalize_url(url)).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return "(unparseable URL)"


def print_table(rows: list[list[Any]], header: list[str]) -> None:
    cells = [header, *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
