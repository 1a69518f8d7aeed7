"""create_app(config) -> Flask app. All state lives on the app (app.extensions["kiemke"])."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry

from kiemke.collector.api import enroll, ops, read, reports, units
from kiemke.collector.api import openapi as openapi_api
from kiemke.collector.api.errors import register_error_handlers
from kiemke.collector.config import CollectorConfig
from kiemke.collector.db.engine import make_engine
from kiemke.collector.extension import Kiemke
from kiemke.collector.metrics import (
    DatabaseCollector,
    IngestMetrics,
    agent_versions,
    machines_by_status,
)
from kiemke.collector.validation import compile_validator

# Integrations plugged in when their module exists: each has init_app(app), which may set
# ext.on_report and append to ext.metric_providers (the rules engine lives there).
INTEGRATIONS = ("kiemke.compliance.integration", "kiemke.collector.evaluation",
                # after compliance: it chains its ingest step in front of theirs
                "kiemke.collector.assets.integration")


def create_app(config: CollectorConfig | dict[str, Any] | None = None) -> Flask:
    if config is None:
        config = CollectorConfig.from_env()
    elif isinstance(config, dict):
        config = CollectorConfig.from_mapping(config)
    config.ensure_data_dir()
    app = Flask("kiemke.collector")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.json.ensure_ascii = False  # Vietnamese names stay readable in API bodies
    app.json.sort_keys = False

    engine = make_engine(config.database_url)
    multiproc = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    # In multiprocess mode counters write to files and are merged on scrape; registering
    # them in a registry as well would report them twice.
    registry = CollectorRegistry(auto_describe=False)
    ingest_metrics = IngestMetrics(None if multiproc else registry)
    ext = Kiemke(config=config, engine=engine, validate=compile_validator(),
                 ingest_metrics=ingest_metrics, registry=registry)
    ext.metric_providers.extend([machines_by_status(config.stale_after), agent_versions])
    ext.db_collector = DatabaseCollector(engine, ext.metric_providers)
    registry.register(ext.db_collector)
    app.extensions["kiemke"] = ext

    register_error_handlers(app)
    for module in (enroll, reports, read, units, openapi_api, ops):
        app.register_blueprint(module.bp)

    for name in INTEGRATIONS:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).init_app(app)
    # Start-up work of integrations that needs all of them plugged in (the compliance
    # re-evaluation after a rule change reads asset data through another integration).
    for hook in ext.startup_hooks:
        hook()
    logging.getLogger("kiemke").setLevel(config.log_level)
    return app
