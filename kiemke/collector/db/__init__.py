"""Database: SQLAlchemy Core tables, engine setup, migrations."""

# compliance_tables defines its tables on the same metadata: imported here so that
# Alembic and create_all see one schema.
from kiemke.collector import changes  # noqa: F401  (change_versions)
from kiemke.collector.db import (
    account_tables,  # noqa: F401
    asset_tables,  # noqa: F401
    compliance_tables,  # noqa: F401
    history_tables,  # noqa: F401
)
from kiemke.collector.db.engine import make_engine, normalize_url, write_transaction
from kiemke.collector.db.tables import metadata

__all__ = ["make_engine", "metadata", "normalize_url", "write_transaction"]
