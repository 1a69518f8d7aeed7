"""The collector's tables (SQLAlchemy Core). docs/design.md describes each one.

Other parts (kiemke.compliance) define their tables on the same `metadata` so Alembic
sees one schema; each new table comes with a migration in collector/migrations/versions.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from kiemke.collector.db.types import JSONType, UTCDateTime

# Stable constraint names so migrations can refer to them on every backend.
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

units = Table(
    "units", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("parent_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"), nullable=True),
    Column("name", String(255), nullable=False),
    Column("code", String(64), nullable=True, unique=True),
    Column("path", Text, nullable=False),
    Column("level", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_units_parent_id", "parent_id"),
    Index("ix_units_path", "path"),
)

enrollment_tokens = Table(
    "enrollment_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"), nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("max_uses", Integer, nullable=True),
    Column("use_count", Integer, nullable=False, default=0),
    Column("revoked_at", UTCDateTime, nullable=True),
)

agents = Table(
    "agents", metadata,
    Column("id", String(32), primary_key=True),
    Column("machine_id", String(32), nullable=False),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("token_id", Integer, ForeignKey("enrollment_tokens.id", ondelete="SET NULL"),
           nullable=True),
    Column("hostname", String(255), nullable=True),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_seen", UTCDateTime, nullable=True),
    Index("ix_agents_machine_id", "machine_id"),
)

machines = Table(
    "machines", metadata,
    Column("machine_id", String(32), primary_key=True),
    Column("agent_id", String(32), nullable=True),
    Column("unit_id", Integer, ForeignKey("units.id", ondelete="RESTRICT"), nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("platform", String(16), nullable=True),
    Column("agent_version", String(64), nullable=True),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("last_report_id", String(36), nullable=True),
    Column("last_collected_at", UTCDateTime, nullable=True),
    Column("report", JSONType, nullable=True),
    Column("facts", JSONType, nullable=True),
    # Hash of the machine's rule results (compliance/store.py results_digest); NULL:
    # not known, the next full re-evaluation compares the rows themselves.
    Column("results_digest", String(32), nullable=True),
    # The agent's report counter of the current report (schema field `sequence`), when the
    # agent sends one: it, not the machine's clock, decides which report is current.
    Column("last_sequence", BigInteger, nullable=True),
    # The facts key of the current report: the agent's facts_digest and what else its
    # facts were built from (kiemke.collector.pipeline.unchanged); NULL: not known.
    Column("facts_digest", String(160), nullable=True),
    Index("ix_machines_unit_id_last_seen", "unit_id", "last_seen"),
    Index("ix_machines_hostname", "hostname"),
)

reports = Table(
    "reports", metadata,
    Column("report_id", String(36), nullable=False),
    Column("machine_id", String(32), nullable=False),
    Column("agent_id", String(32), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("collected_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("body", JSONType, nullable=False),
    # Per machine: report ids are chosen by agents, so two machines may send the same one
    # (a cloned disk image, a buggy agent) and neither may drop the other's report.
    PrimaryKeyConstraint("machine_id", "report_id", name="pk_reports"),
    Index("ix_reports_machine_id_received_at", "machine_id", "received_at"),
    Index("ix_reports_received_at", "received_at"),
)

admin_tokens = Table(
    "admin_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    # Migration 0009: API tokens carry a role and a unit scope like people do;
    # tokens made before it are admin tokens over everything. No foreign key on unit_id:
    # SQLite cannot add one to an existing table (units are never deleted anyway).
    Column("role", String(16), nullable=False, server_default="admin"),
    Column("unit_id", Integer, nullable=True),
)
