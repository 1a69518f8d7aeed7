"""Initial tables: units, enrolment tokens, agents, machines, reports, admin tokens.

Revision ID: 0001
Revises:
Create Date: 2024-05-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kiemke.collector.db.types import JSONType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("parent_id", sa.Integer,
                  sa.ForeignKey("units.id", name="fk_units_parent_id_units", ondelete="RESTRICT"),
                  nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_units"),
        sa.UniqueConstraint("code", name="uq_units_code"),
    )
    op.create_index("ix_units_parent_id", "units", ["parent_id"])
    op.create_index("ix_units_path", "units", ["path"])

    op.create_table(
        "enrollment_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("unit_id", sa.Integer,
                  sa.ForeignKey("units.id", name="fk_enrollment_tokens_unit_id_units",
                                ondelete="RESTRICT"), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.Column("max_uses", sa.Integer, nullable=True),
        sa.Column("use_count", sa.Integer, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_enrollment_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_enrollment_tokens_token_hash"),
    )

    op.create_table(
        "agents",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("machine_id", sa.String(32), nullable=False),
        sa.Column("unit_id", sa.Integer,
                  sa.ForeignKey("units.id", name="fk_agents_unit_id_units", ondelete="RESTRICT"),
                  nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("token_id", sa.Integer,
                  sa.ForeignKey("enrollment_tokens.id", name="fk_agents_token_id_enrollment_tokens",
                                ondelete="SET NULL"), nullable=True),
        sa.Column("hostname", sa.String(255), nullable=True),
        sa.Column("enrolled_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.Column("last_seen", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
    )
    op.create_index("ix_agents_machine_id", "agents", ["machine_id"])

    op.create_table(
        "machines",
        sa.Column("machine_id", sa.String(32), nullable=False),
        sa.Column("agent_id", sa.String(32), nullable=True),
        sa.Column("unit_id", sa.Integer,
                  sa.ForeignKey("units.id", name="fk_machines_unit_id_units", ondelete="RESTRICT"),
                  nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("platform", sa.String(16), nullable=True),
        sa.Column("agent_version", sa.String(64), nullable=True),
        sa.Column("first_seen", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
        sa.Column("last_report_id", sa.String(36), nullable=True),
        sa.Column("last_collected_at", UTCDateTime, nullable=True),
        sa.Column("report", JSONType, nullable=True),
        sa.Column("facts", JSONType, nullable=True),
        sa.PrimaryKeyConstraint("machine_id", name="pk_machines"),
    )
    op.create_index("ix_machines_unit_id_last_seen", "machines", ["unit_id", "last_seen"])
    op.create_index("ix_machines_hostname", "machines", ["hostname"])

    op.create_table(
        "reports",
        sa.Column("report_id", sa.String(36), nullable=False),
        sa.Column("machine_id", sa.String(32), nullable=False),
        sa.Column("agent_id", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("collected_at", UTCDateTime, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("body", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("report_id", name="pk_reports"),
    )
    op.create_index("ix_reports_machine_id_received_at", "reports", ["machine_id", "received_at"])
    op.create_index("ix_reports_received_at", "reports", ["received_at"])

    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_admin_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_admin_tokens_token_hash"),
    )


def downgrade() -> None:
    for table in ("admin_tokens", "reports", "machines", "agents", "enrollment_tokens", "units"):
        op.drop_table(table)
