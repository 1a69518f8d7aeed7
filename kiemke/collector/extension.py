"""The per-app state kept in app.extensions["kiemke"]: no module globals anywhere.

create_app (kiemke/collector/app.py) builds every part first and then this object with
all of them, so each field has its concrete type and is set for the app's whole life.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from kiemke.collector.assets.state import AssetsState
from kiemke.collector.config import CollectorConfig
from kiemke.collector.evaluation.evaluator import Evaluator
from kiemke.collector.evaluation.maintenance import MaintenanceThread
from kiemke.collector.metrics import DatabaseCollector, IngestMetrics, MetricsProviders
from kiemke.collector.pipeline import Pipeline
from kiemke.collector.reports.state import ReportsState
from kiemke.collector.retention import RetentionThread
from kiemke.collector.validation import Validator

KEY = "kiemke"


@dataclass
class Kiemke:
    config: CollectorConfig
    engine: Engine
    validate: Validator  # the compiled report schema
    ingest_metrics: IngestMetrics
    registry: CollectorRegistry  # prometheus_client: the ingest counters and db_collector
    compliance: Evaluator  # the rules in the collector (kiemke.collector.evaluation)
    assets: AssetsState  # the asset register's configuration (kiemke.collector.assets)
    reports: ReportsState  # period reports, ranking, daily history job (collector.reports)
    # Metric families by provider name; every part adds its own in its init_app.
    metric_providers: MetricsProviders = field(default_factory=MetricsProviders)
    db_collector: DatabaseCollector = field(init=False)
    # validate -> unchanged -> store -> assets -> evaluate -> changes
    # (kiemke.collector.pipeline)
    pipeline: Pipeline = field(init=False)
    maintenance: MaintenanceThread | None = None  # the periodic pass, when running
    retention: RetentionThread | None = None  # the raw report retention job, when running

    def __post_init__(self) -> None:
        self.db_collector = DatabaseCollector(self.engine, self.metric_providers)


def get_ext(app: Flask | None = None) -> Kiemke:
    """The Kiemke object of `app` (default: the current app), typed."""
    ext = (app or current_app).extensions[KEY]
    assert isinstance(ext, Kiemke)
    return ext
