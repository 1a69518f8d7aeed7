"""Compliance: rule results, unit rule results, waivers, rule counts, daily history.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kiemke.collector.db.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_results",
        sa.Column("machine_id", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("since", UTCDateTime, nullable=False),
        sa.Column("evaluated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("machine_id", "rule_id", name="pk_rule_results"),
    )
    op.create_index("ix_rule_results_rule_id_result", "rule_results", ["rule_id", "result"])

    op.create_table(
        "unit_rule_results",
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("since", UTCDateTime, nullable=False),
        sa.Column("evaluated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("unit_id", "rule_id", name="pk_unit_rule_results"),
    )

    op.create_table(
        "waivers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("machine_id", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_waivers"),
    )
    op.create_index("ix_waivers_machine_id", "waivers", ["machine_id"])
    op.create_index("ix_waivers_expires_at", "waivers", ["expires_at"])

    op.create_table(
        "rule_counts",
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("unit_id", "rule_id", "result", name="pk_rule_counts"),
    )

    op.create_table(
        "compliance_daily",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("pass", sa.Integer, nullable=False),
        sa.Column("fail", sa.Integer, nullable=False),
        sa.Column("unknown", sa.Integer, nullable=False),
        sa.Column("not_applicable", sa.Integer, nullable=False),
        sa.Column("exempt", sa.Integer, nullable=False),
        sa.Column("stale", sa.Integer, nullable=False),
        sa.Column("ratio", sa.Float, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("day", "unit_id", "rule_id", name="pk_compliance_daily"),
    )

    state = op.create_table(
        "ruleset_state",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("config_fingerprint", sa.String(64), nullable=True),
        sa.Column("applied_at", UTCDateTime, nullable=True),
        sa.Column("pending_fingerprint", sa.String(64), nullable=True),
        sa.Column("claimed_at", UTCDateTime, nullable=True),
        sa.Column("maintained_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ruleset_state"),
    )
    op.bulk_insert(state, [{"id": 1}])


def downgrade() -> None:
    for table in ("ruleset_state", "compliance_daily", "rule_counts", "waivers",
                  "unit_rule_results", "rule_results"):
        op.drop_table(table)
