"""Report reads at 100,000 machines (issue 9):
- the machines failing a critical rule at a period's end are found through an index on
  history_intervals(rule_id, result, end_at) instead of a scan of every interval;
- compliance_daily's (unit_id, day) index (0009) becomes (unit_id, day, rule_id, ratio,
  target): one unit's trend reads it as before, and a report's and the ranking's
  aggregates read it alone, never the table rows.

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
    op.drop_index("ix_compliance_daily_unit_id_day", table_name="compliance_daily")
    op.create_index("ix_compliance_daily_unit_id_day", "compliance_daily",
                    ["unit_id", "day", "rule_id", "ratio", "target"])


def downgrade() -> None:
    op.drop_index("ix_compliance_daily_unit_id_day", table_name="compliance_daily")
    op.create_index("ix_compliance_daily_unit_id_day", "compliance_daily", ["unit_id", "day"])
    op.drop_index("ix_history_intervals_rule_result_end", table_name="history_intervals")
