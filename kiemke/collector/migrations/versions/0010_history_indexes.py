"""Report reads at 100,000 machines (issue 9): the machines failing a critical rule at a
period's end are found through an index on history_intervals(rule_id, result, end_at)
instead of a scan of every interval.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_history_intervals_rule_result_end", "history_intervals",
                    ["rule_id", "result", "end_at"])


def downgrade() -> None:
    op.drop_index("ix_history_intervals_rule_result_end", table_name="history_intervals")
