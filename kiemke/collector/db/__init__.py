"""Database: SQLAlchemy Core tables, engine setup, migrations."""

from kiemke.collector.db.engine import make_engine, normalize_url, write_transaction
from kiemke.collector.db.tables import metadata

__all__ = ["make_engine", "metadata", "normalize_url", "write_transaction"]
