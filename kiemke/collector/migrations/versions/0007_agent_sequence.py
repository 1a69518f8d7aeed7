"""Reports deduplicated per machine; machines.last_sequence.

- `reports` primary key (report_id) -> (machine_id, report_id): a report id is chosen by
  the agent, so agent B reusing agent A's id was answered "duplicate" and its report was
  dropped (issue 11). Now each machine has its own id space.
- `machines.last_sequence`: the agent's report counter of the current report, which
  decides the current state instead of the machine's clock.
- A current state poisoned by a clock in the future (collected_at after the time the
  collector received it, e.g. 9999-12-31 accepted before this version) is marked
  replaceable: its last_collected_at is set to its last_seen, so the next correct
  report becomes current again.

Revision ID: 0007
Revises: 0009 (the newest on main when this was merged; numbers are not order)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `reports` has no triggers, so SQLite's batch rebuild loses nothing.
    with op.batch_alter_table("reports", recreate="auto") as batch:
        batch.drop_constraint("pk_reports", type_="primary")
        batch.create_primary_key("pk_reports", ["machine_id", "report_id"])
    # Plain ALTER TABLE: a rebuild of `machines` would lose the triggers of 0004/0005.
    op.add_column("machines", sa.Column("last_sequence", sa.BigInteger, nullable=True))
    op.execute("UPDATE machines SET last_collected_at = last_seen "
               "WHERE last_collected_at > last_seen")


def downgrade() -> None:
    op.drop_column("machines", "last_sequence")
    with op.batch_alter_table("reports", recreate="auto") as batch:
        batch.drop_constraint("pk_reports", type_="primary")
        batch.create_primary_key("pk_reports", ["report_id"])
