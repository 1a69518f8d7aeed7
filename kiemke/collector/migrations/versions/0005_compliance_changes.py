"""Finer /metrics invalidation: the compliance change log, a machine-labels topic, and an
index for reading one unit's failing machines of a rule.

- `compliance_changes(version, unit_id, rule_id)`: which unit x rule blocks each
  COMPLIANCE version changed (kiemke/collector/changes.py, bump_compliance()).
- topic `machine_labels`, bumped by triggers when a machine is removed or its hostname
  or unit changes (not on an agent upgrade, which MACHINES also counts).
- `ix_rule_results_rule_result_unit (rule_id, result, unit_id)` replaces
  `ix_rule_results_rule_id_result` (its prefix: every query that used it can use the new
  one), so rebuilding a few units' failing series reads only their index entries.

Revision ID: 0005
Revises: 0004
Create Date: 2024-06-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BUMP = "UPDATE change_versions SET version = version + 1 WHERE topic = 'machine_labels'"
CHANGED = "{o}.hostname IS DISTINCT FROM {n}.hostname OR {o}.unit_id IS DISTINCT FROM {n}.unit_id"
TRIGGERS = ("machine_labels_del", "machine_labels_upd")


def upgrade() -> None:
    op.create_table(
        "compliance_changes",
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("version", "unit_id", "rule_id", name="pk_compliance_changes"),
    )
    op.execute("INSERT INTO change_versions (topic, version) VALUES ('machine_labels', 0)")
    op.create_index("ix_rule_results_rule_result_unit", "rule_results",
                    ["rule_id", "result", "unit_id"])
    op.drop_index("ix_rule_results_rule_id_result", table_name="rule_results")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION kiemke_machine_labels_changed() RETURNS trigger "
                   f"LANGUAGE plpgsql AS $$ BEGIN {BUMP}; RETURN NULL; END $$")
        op.execute("CREATE TRIGGER machine_labels_del AFTER DELETE ON machines "
                   "FOR EACH ROW EXECUTE FUNCTION kiemke_machine_labels_changed()")
        op.execute("CREATE TRIGGER machine_labels_upd AFTER UPDATE ON machines "
                   f"FOR EACH ROW WHEN ({CHANGED.format(o='OLD', n='NEW')}) "
                   "EXECUTE FUNCTION kiemke_machine_labels_changed()")
        return
    changed = CHANGED.format(o="OLD", n="NEW").replace("IS DISTINCT FROM", "IS NOT")
    op.execute(f"CREATE TRIGGER machine_labels_del AFTER DELETE ON machines BEGIN {BUMP}; END")
    op.execute(f"CREATE TRIGGER machine_labels_upd AFTER UPDATE ON machines "
               f"FOR EACH ROW WHEN {changed} BEGIN {BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON machines")
        op.execute("DROP FUNCTION IF EXISTS kiemke_machine_labels_changed()")
    else:
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.create_index("ix_rule_results_rule_id_result", "rule_results", ["rule_id", "result"])
    op.drop_index("ix_rule_results_rule_result_unit", table_name="rule_results")
    op.execute("DELETE FROM change_versions WHERE topic = 'machine_labels'")
    op.drop_table("compliance_changes")
