"""Alembic migrations on SQLite and PostgreSQL, and the engine settings."""

from __future__ import annotations

from sqlalchemy import inspect, text

from kiemke.collector.db.engine import make_engine, normalize_url
from kiemke.collector.db.migrate import check_migrated, head_revision, upgrade


def test_upgrade_creates_tables(db_url):
    assert check_migrated(db_url) == (False, None)
    upgrade(db_url)
    upgrade(db_url)  # idempotent
    assert check_migrated(db_url) == (True, head_revision())
    engine = make_engine(db_url)
    try:
        names = set(inspect(engine).get_table_names())
        assert {"units", "enrollment_tokens", "agents", "machines", "reports",
                "admin_tokens", "alembic_version"} <= names
        cols = {c["name"] for c in inspect(engine).get_columns("machines")}
        assert {"machine_id", "unit_id", "report", "facts", "last_seen"} <= cols
        if engine.dialect.name == "postgresql":
            types = {c["name"]: str(c["type"]) for c in inspect(engine).get_columns("reports")}
            assert types["body"] == "JSONB"
    finally:
        engine.dispose()


def test_sqlite_pragmas(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()


def test_postgres_url_uses_psycopg3():
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
