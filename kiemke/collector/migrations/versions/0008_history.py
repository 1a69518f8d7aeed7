"""Replayable history for period reports and the ranking (issue 9).

New tables (kiemke/collector/db/history_tables.py): history_intervals, history_presence,
history_rulesets, history_days, history_units, history_lock; compliance_daily gains the
rule's target of the day.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kiemke.collector.db.types import JSONType, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "history_intervals",
        sa.Column("subject", sa.String(40), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("start_at", UTCDateTime, nullable=False),
        sa.Column("end_at", UTCDateTime, nullable=True),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("subject", "rule_id", "start_at", name="pk_history_intervals"),
    )
    op.create_index("ix_history_intervals_end_at", "history_intervals", ["end_at"])
    op.create_table(
        "history_presence",
        sa.Column("machine_id", sa.String(32), nullable=False),
        sa.Column("start_at", UTCDateTime, nullable=False),
        sa.Column("end_at", UTCDateTime, nullable=True),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("machine_id", "start_at", name="pk_history_presence"),
    )
    op.create_index("ix_history_presence_end_at", "history_presence", ["end_at"])
    op.create_table(
        "history_rulesets",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("rules", JSONType, nullable=False),
        sa.Column("first_day", sa.Date, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_history_rulesets"),
    )
    op.create_table(
        "history_days",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("closed_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_history_days"),
    )
    op.create_table(
        "history_units",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("parent_id", sa.Integer, nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("machines", sa.Integer, nullable=False),
        sa.Column("active", sa.Integer, nullable=False),
        sa.Column("stale", sa.Integer, nullable=False),
        sa.Column("depreciated_in_service", sa.Integer, nullable=False),
        sa.Column("replace_next_year", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("day", "unit_id", name="pk_history_units"),
    )
    op.create_table(
        "history_lock",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("acquired_at", UTCDateTime, nullable=True),
        sa.Column("synced_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_history_lock"),
    )
    op.add_column("compliance_daily", sa.Column("target", sa.Float, nullable=True))


def downgrade() -> None:
    op.drop_column("compliance_daily", "target")
    for table in ("history_lock", "history_units", "history_days", "history_rulesets",
                  "history_presence", "history_intervals"):
        op.drop_table(table)
