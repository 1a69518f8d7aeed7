"""The Alembic migrations build exactly the tables the code defines (both backends).

A table, column or index added to kiemke/collector/db/*.py without its migration (or the
reverse) would work in tests that create tables one way and fail in production.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from kiemke.collector.db import metadata, normalize_url
from kiemke.collector.db.migrate import upgrade


def test_migrations_at_head_match_the_table_definitions(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []
