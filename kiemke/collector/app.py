"""create_app(config) -> Flask app: the one place where the collector's parts are put
together. All state lives on the app (app.extensions["kiemke"], kiemke.collector.extension).

Order: the parts' own objects first (the evaluator reads asset data through the asset
register's lookup), then the extension object holding them, then each part's init_app
(blueprints, metric providers), then the ingest pipeline, and last the start-up work
that needs everything plugged in (re-evaluation after a rule change, maintenance, the
raw report retention job).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry

from kiemke.collector import accounts, api, console, metrics
from kiemke.collector.api import inputs, outage
from kiemke.collector.assets import store as asset_store
from kiemke.collector.assets import wiring as assets
from kiemke.collector.config import CollectorConfig
from kiemke.collector.db.engine import make_engine
from kiemke.collector.evaluation import wiring as evaluation
from kiemke.collector.extension import KEY, Kiemke
from kiemke.collector.metrics import IngestMetrics
from kiemke.collector.pipeline import build_pipeline
from kiemke.collector.reports import wiring as reports
from kiemke.collector.retention import RetentionThread
from kiemke.collector.validation import compile_validator


def create_app(config: CollectorConfig | dict[str, Any] | None = None) -> Flask:
    if config is None:
        config = CollectorConfig.from_env()
    elif isinstance(config, dict):
        config = CollectorConfig.from_mapping(config)
    config.ensure_data_dir()
    app = Flask("kiemke.collector")
    inputs.init_app(app)  # JSON/parameter bounds and NFC, before any blueprint
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Vietnamese stays readable
    app.json.sort_keys = False  # type: ignore[attr-defined]

    engine = make_engine(config.database_url)
    multiproc = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    # In multiprocess mode counters write to files and are merged on scrape; registering
    # them in a registry as well would report them twice.
    registry = CollectorRegistry(auto_describe=False)
    ext = Kiemke(
        config=config, engine=engine, validate=compile_validator(),
        ingest_metrics=IngestMetrics(None if multiproc else registry), registry=registry,
        compliance=evaluation.create_evaluator(engine, config, asset_lookup=asset_store.lookup),
        assets=assets.load_state(engine, config),
        reports=reports.load_state(config),
    )
    app.extensions[KEY] = ext

    api.init_app(app)
    outage.init_app(app)  # 503 + Retry-After while the database is away
    metrics.init_app(app)
    evaluation.init_app(app)
    assets.init_app(app)
    accounts.init_app(app)
    console.init_app(app)
    reports.init_app(app)
    ext.pipeline = build_pipeline(ext)

    evaluation.start(app)
    reports.start(app)
    if config.maintenance_interval > 0 and config.report_retention_days > 0:
        ext.retention = RetentionThread(engine, config.report_retention_days)
        ext.retention.start()
    logging.getLogger("kiemke").setLevel(config.log_level)
    return app
