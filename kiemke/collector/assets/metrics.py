"""Depreciation metric families for /metrics (docs/metrics.md, "Depreciation").

One GROUP BY over machine_depreciation (aggregate()), rolled up over the unit tree like
every per-unit family. The per-unit counts change only when a machine_depreciation row
changes (asset_state.version, bumped in the same transaction) or the day changes, so
each process keeps the last aggregate and a scrape usually costs one primary-key read.
Every unit gets every label combination, zeros included, so that a dashboard shows 0
rather than "no data".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import Metric
from sqlalchemy import Connection

from kiemke.collector.assets.depreciation import (
    AGE_BUCKETS,
    STATUSES,
    Aggregates,
    aggregate,
    utc_today,
)
from kiemke.collector.assets.store import current_version
from kiemke.collector.exposition import RowsFamily
from kiemke.collector.scrape import UNIT_LABELS, rollup, scrape_units, unit_labels
from kiemke.collector.units import Unit


class DepreciationMetrics:
    """The metrics provider: (conn, now) -> families, cached per process until
    machine_depreciation (its version), the day or the unit tree changes."""

    def __init__(self) -> None:
        self._cached: tuple[Any, list[Metric]] | None = None

    def __call__(self, conn: Connection, now: datetime) -> list[Metric]:
        today = utc_today(now)
        units_ = scrape_units(conn)
        key = (current_version(conn), today, units_)
        cached = self._cached
        if cached is not None and cached[0] == key:
            return cached[1]
        families = list(depreciation_families(list(units_), aggregate(conn, today)))
        self._cached = (key, families)  # one assignment: safe across gunicorn threads
        return families


def depreciation_families(units_: list[Unit], agg: Aggregates) -> Iterator[Metric]:
    by_status = rollup(units_, agg.by_status)
    forecast = rollup(units_, agg.forecast)
    by_age = rollup(units_, agg.by_age)

    status = RowsFamily(
        "kiemke_depreciation_machines",
        "Machines by depreciation status (straight line, rules/depreciation.yml); "
        "estimated=true when the age comes from firmware, not the asset register; "
        "a unit includes its descendants", [*UNIT_LABELS, "status", "estimated"])
    years = RowsFamily(
        "kiemke_replacement_forecast_machines",
        "Machines reaching full depreciation in that year; machines already past it count "
        "in the current year until replaced", [*UNIT_LABELS, "year"])
    ages = RowsFamily(
        "kiemke_machines_by_age", "Machines by whole years of age since purchase (or "
        "estimated manufacture)", [*UNIT_LABELS, "age_years"])
    for unit in units_:
        labels = unit_labels(unit)
        for name in STATUSES:
            for estimated in (False, True):
                status.add([*labels, name, "true" if estimated else "false"],
                                  by_status.get((unit.id, (name, estimated)), 0))
        for year in agg.years:
            years.add([*labels, str(year)], forecast.get((unit.id, year), 0))
        for bucket in AGE_BUCKETS:
            ages.add([*labels, bucket], by_age.get((unit.id, bucket), 0))
    for family in (status, years, ages):
        family.text()  # rendered once, while cached
        yield family
