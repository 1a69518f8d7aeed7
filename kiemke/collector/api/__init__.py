"""HTTP blueprints: enrolment, report ingest, read APIs, units, OpenAPI, health and metrics.

The compliance and asset APIs are registered by their parts (kiemke.collector.evaluation,
kiemke.collector.assets); the OpenAPI document (openapi.py) describes them all.
"""

from __future__ import annotations

from flask import Flask

from kiemke.collector.api import enroll, ops, read, reports, units
from kiemke.collector.api import openapi as openapi_api
from kiemke.collector.api.errors import register_error_handlers


def init_app(app: Flask) -> None:
    """JSON error handlers and the collector's own blueprints."""
    register_error_handlers(app)
    for module in (enroll, reports, read, units, openapi_api, ops):
        app.register_blueprint(module.bp)
