"""Operations endpoints: /healthz (process), /readyz (database), /metrics (Prometheus)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from kiemke import __version__
from kiemke.collector.db.migrate import current_revision, head_revision, is_up_to_date
from kiemke.collector.metrics import metrics_chunks

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
    # Ingest counters (merged over gunicorn workers in multiprocess mode) + the database
    # families, whose text is kept per process while the database has not changed.
    # Prometheus always accepts gzip: the body is then cached gzip members (about 7 times
    # smaller at 100,000 machines); plain text for clients that do not. The parts go out
    # as they are kept (a list: Werkzeug sets Content-Length), not joined into one copy.
    gzip = request.accept_encodings.quality("gzip") > 0
    resp = Response(metrics_chunks(current_app.extensions["kiemke"], gzip=gzip),
                    mimetype=CONTENT_TYPE_LATEST)
    if gzip:
        resp.headers["Content-Encoding"] = "gzip"
    resp.vary.add("Accept-Encoding")
    return resp
