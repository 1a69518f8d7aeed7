"""machines.results_digest: a short hash of the machine's stored rule results.

Written by ResultWriter in the same transaction as the results it describes, so a full
re-evaluation compares one value per machine instead of reading every result row.
Left NULL here (no backfill): a NULL digest means "compare the slow way", and the next
full re-evaluation fills it in.

Revision ID: 0006
Revises: 0005
Create Date: 2024-07-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both backends (SQLite >= 3.35 drops columns): a batch table
# rebuild would lose the triggers of 0004 and 0005 on `machines`.
def upgrade() -> None:
    op.add_column("machines", sa.Column("results_digest", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("machines", "results_digest")
