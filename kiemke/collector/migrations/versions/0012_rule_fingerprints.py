"""ruleset_state.rule_fingerprints and engine_fingerprint: re-evaluate changed rules only.

`rule_fingerprints` holds, as a JSON object, the fingerprint of each enabled rule the
stored results were computed with, and `engine_fingerprint` the rule engine's
(kiemke.collector.evaluation.rulestate). When only some rules' definitions changed and
the engine and facts configuration did not, the collector re-evaluates only those
rules' results. Left NULL here: not known, so the next rule change re-evaluates
everything, as before, and records both.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ruleset_state", sa.Column("rule_fingerprints", sa.Text, nullable=True))
    op.add_column("ruleset_state",
                  sa.Column("engine_fingerprint", sa.String(64), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE on both backends (SQLite >= 3.35 drops columns), as 0006 and 0011.
    op.drop_column("ruleset_state", "engine_fingerprint")
    op.drop_column("ruleset_state", "rule_fingerprints")
