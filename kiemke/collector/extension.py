"""The per-app state kept in app.extensions["kiemke"]: no module globals anywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from kiemke.collector.config import CollectorConfig

# Called inside the ingest transaction after the machine and report rows are written.
OnReport = Callable[[Connection, dict[str, Any], dict[str, Any]], None]
# (conn, now) -> metric families, run on every /metrics scrape inside one read transaction.
MetricsProvider = Callable[[Connection, datetime], Iterable[Any]]


def _no_op(_conn: Connection, _machine: dict[str, Any], _report: dict[str, Any]) -> None:
    return None


@dataclass
class Kiemke:
    config: CollectorConfig
    engine: Engine
    validate: Callable[[Any], Any]
    ingest_metrics: Any
    registry: Any
    db_collector: Any = None
    on_report: OnReport = _no_op
    metric_providers: list[MetricsProvider] = field(default_factory=list)
    # Set by the integrations (kiemke.collector.evaluation, kiemke.collector.assets):
    compliance: Any = None  # the Evaluator
    maintenance: Any = None  # the MaintenanceThread, when running
    asset_lookup: Callable[[Connection, str], dict[str, Any] | None] | None = None
    startup_hooks: list[Callable[[], None]] = field(default_factory=list)
    openapi_extenders: list[Callable[..., Any]] = field(default_factory=list)
    # (conn, machine_id) -> extra keys for GET /api/v1/machines/<id>
    machine_detail_extenders: list[Callable[[Connection, str], dict[str, Any]]] = \
        field(default_factory=list)
