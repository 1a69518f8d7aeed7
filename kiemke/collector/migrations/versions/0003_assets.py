"""Asset register and depreciation: assets, asset_imports, machine_depreciation, asset_state.

Machines that reported before this revision get their machine_depreciation row on their
next report, or at once with `kiemke-collector assets recompute` (docs/assets.md).

Revision ID: 0003
Revises: 0002
Create Date: 2024-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kiemke.collector.db.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("asset_tag", sa.String(128), nullable=True),
        sa.Column("serial", sa.String(128), nullable=True),
        sa.Column("hostname", sa.String(255), nullable=True),
        sa.Column("tag_key", sa.String(128), nullable=True),
        sa.Column("serial_key", sa.String(128), nullable=True),
        sa.Column("host_key", sa.String(255), nullable=True),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("purchase_date", sa.Date, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=True),
        sa.Column("unit_id", sa.Integer, nullable=True),
        sa.Column("unit_text", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("machine_id", sa.String(32), nullable=True),
        sa.Column("matched_by", sa.String(16), nullable=True),
        sa.Column("imported_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_assets"),
    )
    for column in ("machine_id", "serial_key", "tag_key", "host_key"):
        op.create_index(f"ix_assets_{column}", "assets", [column])

    op.create_table(
        "asset_imports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False),
        sa.Column("imported_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_asset_imports"),
    )

    op.create_table(
        "machine_depreciation",
        sa.Column("machine_id", sa.String(32), nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("asset_id", sa.Integer, nullable=True),
        sa.Column("serial_key", sa.String(128), nullable=True),
        sa.Column("tag_key", sa.String(128), nullable=True),
        sa.Column("host_key", sa.String(255), nullable=True),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("estimated", sa.Boolean, nullable=False),
        sa.Column("start_date", sa.Date, nullable=True),
        sa.Column("cost", sa.BigInteger, nullable=True),
        sa.Column("useful_life_years", sa.Integer, nullable=True),
        sa.Column("fully_depreciated_on", sa.Date, nullable=True),
        sa.Column("overdue_from", sa.Date, nullable=True),
        sa.Column("start_key", sa.Integer, nullable=True),
        sa.Column("done_key", sa.Integer, nullable=True),
        sa.Column("overdue_key", sa.Integer, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("machine_id", name="pk_machine_depreciation"),
    )
    # Covering index: the /metrics GROUP BY reads only these columns.
    op.create_index("ix_machine_depreciation_unit_id", "machine_depreciation",
                    ["unit_id", "estimated", "done_key", "overdue_key", "start_key"])
    for column in ("serial_key", "tag_key", "host_key"):
        op.create_index(f"ix_machine_depreciation_{column}", "machine_depreciation", [column])

    state = op.create_table(
        "asset_state",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_asset_state"),
    )
    op.bulk_insert(state, [{"id": 1, "version": 0}])


def downgrade() -> None:
    for table in ("asset_state", "machine_depreciation", "asset_imports", "assets"):
        op.drop_table(table)
