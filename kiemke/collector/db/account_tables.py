"""People, console sessions, login throttling and the audit log (issue 10).

Defined on the collector's `metadata` so Alembic sees one schema; migration 0009 creates
them and adds `role` and `unit_id` to `admin_tokens` (API tokens carry the same scopes
as people). docs/console.md describes roles and scopes.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from kiemke.collector.db.tables import metadata
from kiemke.collector.db.types import JSONType, UTCDateTime

# A person who logs in to the console. `unit_id` NULL: the whole organisation.
users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),  # the login name, NFC, lower case
    Column("display_name", String(255), nullable=False),
    Column("password_hash", Text, nullable=False),  # argon2id, PHC string
    Column("role", String(16), nullable=False),  # admin | manager | viewer
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_changed_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("last_login_at", UTCDateTime, nullable=True),
)

# A logged-in browser. The cookie holds a 256-bit secret; only its SHA-256 is stored, so
# a copy of the database opens no session. Server-side rows (not a signed cookie): logout,
# disabling a user and a password change end sessions at once, on every instance.
console_sessions = Table(
    "console_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_console_sessions_user_id", "user_id"),
)

# Failed logins per key ("ip:<address>"), for the per-address rate limit; the per-user
# lockout lives on `users`. Old rows are deleted as new ones are written.
login_failures = Table(
    "login_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_login_failures_key_at", "key", "at"),
)

# Every write by a person, a token or the CLI: who, when, what changed.
audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor_kind", String(16), nullable=False),  # user | token | cli | system
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),  # e.g. waiver.add, unit.rename
    Column("target", String(255), nullable=False),  # what was changed: "waiver 12"
    Column("unit_id", Integer, nullable=True),  # the unit it belongs to, for scoped views
    Column("details", JSONType, nullable=True),  # before/after values
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_unit_id_at", "unit_id", "at"),
)
