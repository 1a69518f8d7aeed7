"""compliance_machine_changes(version, machine_id, rule_id): the machine results each
COMPLIANCE version changed, beside its unit x rule blocks in compliance_changes.

/metrics then re-reads the failing series of the machines that changed, not every
failing machine of the changed blocks (kiemke/collector/evaluation/metrics.py). Versions
logged before this table (or by a writer that names no machine) have blocks and no
machine rows: readers re-read those blocks whole, as before. Pruned with
compliance_changes (kiemke/collector/changes.py, LOG_KEEP).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compliance_machine_changes",
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("machine_id", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("version", "machine_id", "rule_id",
                                name="pk_compliance_machine_changes"),
    )


def downgrade() -> None:
    op.drop_table("compliance_machine_changes")
