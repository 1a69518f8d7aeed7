"""Operations endpoints: /healthz (process), /readyz (database), /metrics (Prometheus)."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from kiemke import __version__
from kiemke.collector.db.migrate import current_revision, head_revision, is_up_to_date

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok", "version": __version__})


@bp.get("/readyz")
def readyz():
    engine = current_app.extensions["kiemke"].engine
    try:
        ready = is_up_to_date(engine)
        revision = current_revision(engine) if not ready else head_revision()
    except Exception as exc:  # noqa: BLE001 - any database failure means "not ready"
        current_app.logger.warning("readiness check: database unreachable: %s", exc)
        resp = jsonify({"status": "unavailable", "error": "database_unreachable",
                        "field": "KIEMKE_DATABASE_URL",
                        "message": "the database does not answer; check that it runs and "
                                   "that KIEMKE_DATABASE_URL points to it"})
        resp.status_code = 503
        return resp
    if not ready:
        resp = jsonify({"status": "unavailable", "error": "database_not_migrated",
                        "field": "database", "revision": revision, "expected": head_revision(),
                        "message": "the database schema is not up to date; run "
                                   "`kiemke-collector db upgrade`"})
        resp.status_code = 503
        return resp
    return jsonify({"status": "ready", "revision": revision})


@bp.get("/metrics")
def metrics():
    ext = current_app.extensions["kiemke"]
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        # Under gunicorn each worker writes its counters to files in this dir; merge them.
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiproc_dir)
        registry.register(ext.db_collector)
    else:
        registry = ext.registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
