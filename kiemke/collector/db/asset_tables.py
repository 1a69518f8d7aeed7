"""Asset register tables (issue 4, item 5): the imported register and per-machine depreciation.

Defined on the collector's `metadata` so Alembic sees one schema; migration 0003 creates
them. docs/assets.md describes the import and how the metrics are built from them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Date, Index, Integer, String, Table, Text

from kiemke.collector.db.tables import metadata
from kiemke.collector.db.types import UTCDateTime

# One row per register line of the last import (an import replaces the whole register).
# *_key columns are the normalised identifiers used for matching (NULL when absent or a
# placeholder); machine_id / matched_by say which machine the row was matched to and how.
assets = Table(
    "assets", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("line", Integer, nullable=False),
    Column("asset_tag", String(128), nullable=True),
    Column("serial", String(128), nullable=True),
    Column("hostname", String(255), nullable=True),
    Column("tag_key", String(128), nullable=True),
    Column("serial_key", String(128), nullable=True),
    Column("host_key", String(255), nullable=True),
    Column("category", String(64), nullable=False),
    Column("purchase_date", Date, nullable=False),
    Column("cost", BigInteger, nullable=True),
    Column("unit_id", Integer, nullable=True),
    Column("unit_text", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("machine_id", String(32), nullable=True),
    Column("matched_by", String(16), nullable=True),
    Column("imported_at", UTCDateTime, nullable=False),
    Index("ix_assets_machine_id", "machine_id"),
    Index("ix_assets_serial_key", "serial_key"),
    Index("ix_assets_tag_key", "tag_key"),
    Index("ix_assets_host_key", "host_key"),
)

# One row per import, for the audit trail ("which register are these figures from?").
asset_imports = Table(
    "asset_imports", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("file_name", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("matched", Integer, nullable=False),
    Column("imported_at", UTCDateTime, nullable=False),
)

# One row per machine: what its depreciation depends on, and the dates the engine derived
# from it. Nothing here depends on today's date, so a row is only written when its inputs
# change; status, age and the replacement year are derived from the dates on read and on
# scrape. `unit_id` repeats the machine's unit so /metrics groups this table alone.
machine_depreciation = Table(
    "machine_depreciation", metadata,
    Column("machine_id", String(32), primary_key=True),
    Column("unit_id", Integer, nullable=False),
    Column("asset_id", Integer, nullable=True),
    Column("serial_key", String(128), nullable=True),
    Column("tag_key", String(128), nullable=True),
    Column("host_key", String(255), nullable=True),
    Column("category", String(64), nullable=True),
    Column("estimated", Boolean, nullable=False),
    Column("start_date", Date, nullable=True),
    Column("cost", BigInteger, nullable=True),
    Column("useful_life_years", Integer, nullable=True),
    Column("fully_depreciated_on", Date, nullable=True),
    Column("overdue_from", Date, nullable=True),
    # The three dates as YYYYMMDD integers: /metrics derives status, replacement year and
    # age from them with integer arithmetic, several times cheaper than date comparisons.
    Column("start_key", Integer, nullable=True),
    Column("done_key", Integer, nullable=True),
    Column("overdue_key", Integer, nullable=True),
    Column("reason", Text, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_machine_depreciation_unit_id", "unit_id", "estimated", "done_key",
          "overdue_key", "start_key"),
    Index("ix_machine_depreciation_serial_key", "serial_key"),
    Index("ix_machine_depreciation_tag_key", "tag_key"),
    Index("ix_machine_depreciation_host_key", "host_key"),
)

# One row (id = 1): bumped in the same transaction as every change to machine_depreciation,
# so each collector process can keep its last /metrics aggregate until the table or the
# day changes.
asset_state = Table(
    "asset_state", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)
