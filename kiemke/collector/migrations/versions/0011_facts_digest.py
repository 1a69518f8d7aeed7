"""machines.facts_digest: what the current report's facts were, for unchanged reports.

The agent sends `facts_digest` (a SHA-256 of its sections); the collector keeps it with
what else the facts were built from (agent, unit, day, report kind and age, clock offset:
kiemke.collector.pipeline.unchanged). A later report that only says "unchanged" with the
same digest is then recorded as seen without evaluating anything (docs/report-format.md,
"Unchanged reports"). NULL: not known (old agents, rows before this version): the agent
is asked for its full report.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE: a rebuild of `machines` would lose the triggers of 0004/0005.
    op.add_column("machines", sa.Column("facts_digest", sa.String(160), nullable=True))


def downgrade() -> None:
    op.drop_column("machines", "facts_digest")
