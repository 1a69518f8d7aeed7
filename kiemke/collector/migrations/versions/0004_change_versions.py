"""Change versions for /metrics caching: change_versions, triggers on machines and units.

`change_versions(topic, version)` is bumped in the transaction that changes a topic's data
(kiemke/collector/changes.py). The `machines` and `units` topics are bumped by triggers,
so that every writer (ingest, enrolment, admin moves, deletes) is covered. On machines:
on insert and delete, and on update only when the hostname, the unit or the agent
version changes (a usual report changes none of them and fires nothing).

Revision ID: 0004
Revises: 0003
Create Date: 2024-06-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BUMP = "UPDATE change_versions SET version = version + 1 WHERE topic = '{topic}'"
CHANGED = ("{o}.hostname IS DISTINCT FROM {n}.hostname OR {o}.unit_id IS DISTINCT FROM "
           "{n}.unit_id OR {o}.agent_version IS DISTINCT FROM {n}.agent_version")
TRIGGERS = ("machines_changed_ins", "machines_changed_del", "machines_changed_upd",
            "units_changed")


def upgrade() -> None:
    table = op.create_table(
        "change_versions",
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("topic", name="pk_change_versions"),
    )
    op.bulk_insert(table, [{"topic": "compliance", "version": 0},
                           {"topic": "machines", "version": 0},
                           {"topic": "units", "version": 0}])
    machines_bump, units_bump = BUMP.format(topic="machines"), BUMP.format(topic="units")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION kiemke_machines_changed() RETURNS trigger "
                   f"LANGUAGE plpgsql AS $$ BEGIN {machines_bump}; RETURN NULL; END $$")
        op.execute("CREATE FUNCTION kiemke_units_changed() RETURNS trigger "
                   f"LANGUAGE plpgsql AS $$ BEGIN {units_bump}; RETURN NULL; END $$")
        # Once per statement: a move rewrites the paths of a whole subtree.
        op.execute("CREATE TRIGGER units_changed AFTER INSERT OR UPDATE OR DELETE ON units "
                   "FOR EACH STATEMENT EXECUTE FUNCTION kiemke_units_changed()")
        op.execute("CREATE TRIGGER machines_changed_ins AFTER INSERT ON machines "
                   "FOR EACH ROW EXECUTE FUNCTION kiemke_machines_changed()")
        op.execute("CREATE TRIGGER machines_changed_del AFTER DELETE ON machines "
                   "FOR EACH ROW EXECUTE FUNCTION kiemke_machines_changed()")
        op.execute("CREATE TRIGGER machines_changed_upd AFTER UPDATE ON machines "
                   f"FOR EACH ROW WHEN ({CHANGED.format(o='OLD', n='NEW')}) "
                   "EXECUTE FUNCTION kiemke_machines_changed()")
        return
    # SQLite: IS NOT is its null-safe inequality.
    changed = CHANGED.format(o="OLD", n="NEW").replace("IS DISTINCT FROM", "IS NOT")
    op.execute(f"CREATE TRIGGER machines_changed_ins AFTER INSERT ON machines "
               f"BEGIN {machines_bump}; END")
    op.execute(f"CREATE TRIGGER machines_changed_del AFTER DELETE ON machines "
               f"BEGIN {machines_bump}; END")
    op.execute(f"CREATE TRIGGER machines_changed_upd AFTER UPDATE ON machines "
               f"FOR EACH ROW WHEN {changed} BEGIN {machines_bump}; END")
    for event in ("INSERT", "UPDATE", "DELETE"):  # SQLite has row triggers only
        op.execute(f"CREATE TRIGGER units_changed_{event.lower()} AFTER {event} ON units "
                   f"BEGIN {units_bump}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in TRIGGERS:
            table = "units" if name.startswith("units") else "machines"
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS kiemke_machines_changed()")
        op.execute("DROP FUNCTION IF EXISTS kiemke_units_changed()")
    else:
        for name in (*TRIGGERS[:3], "units_changed_insert", "units_changed_update",
                     "units_changed_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("change_versions")
