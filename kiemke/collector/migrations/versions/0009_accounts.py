"""People, console sessions, login throttling, the audit log; scoped API tokens.

- users, console_sessions, login_failures, audit_log (kiemke/collector/db/account_tables.py);
- admin_tokens.role (existing tokens stay admin) and admin_tokens.unit_id (NULL: all);
- an index on compliance_daily(unit_id, day) for one unit's trend.

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kiemke.collector.db.types import JSONType, UTCDateTime

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey(
            "units.id", ondelete="RESTRICT", name="fk_users_unit_id_units"), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("password_changed_at", UTCDateTime, nullable=False),
        sa.Column("disabled_at", UTCDateTime, nullable=True),
        sa.Column("failed_logins", sa.Integer, nullable=False),
        sa.Column("locked_until", UTCDateTime, nullable=True),
        sa.Column("last_login_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey(
            "users.id", ondelete="CASCADE", name="fk_console_sessions_user_id_users"),
            nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_user_id", "console_sessions", ["user_id"])
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_key_at", "login_failures", ["key", "at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=True),
        sa.Column("details", JSONType, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_unit_id_at", "audit_log", ["unit_id", "at"])
    # Plain ADD COLUMN on both backends (no foreign key: SQLite cannot add one in place).
    op.add_column("admin_tokens", sa.Column("role", sa.String(16), nullable=False,
                                            server_default="admin"))
    op.add_column("admin_tokens", sa.Column("unit_id", sa.Integer, nullable=True))
    op.create_index("ix_compliance_daily_unit_id_day", "compliance_daily", ["unit_id", "day"])


def downgrade() -> None:
    op.drop_index("ix_compliance_daily_unit_id_day", "compliance_daily")
    op.drop_column("admin_tokens", "unit_id")
    op.drop_column("admin_tokens", "role")
    op.drop_table("audit_log")
    op.drop_table("login_failures")
    op.drop_table("console_sessions")
    op.drop_table("users")
