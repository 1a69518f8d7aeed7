"""Run Alembic migrations programmatically: users never need an alembic.ini."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from kiemke.collector.db.engine import make_engine, normalize_url

# Package data (setup.cfg), so an installed wheel migrates exactly like a checkout.
MIGRATIONS_DIR = Path(str(resources.files("kiemke.collector") / "migrations"))


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's config is ConfigParser-based: a % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_up_to_date(engine: Engine) -> bool:
    heads = set(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads()) == heads


def check_migrated(url: str) -> tuple[bool, str | None]:
    """(up to date?, current revision) without keeping an engine around."""
    engine = make_engine(url)
    try:
        return is_up_to_date(engine), current_revision(engine)
    finally:
        engine.dispose()
