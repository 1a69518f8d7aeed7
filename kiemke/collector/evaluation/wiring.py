"""How the evaluation part is put into an app (called by create_app, in this order):

- `create_evaluator` (kiemke.collector.evaluation.ruleset) builds the Evaluator;
- `init_app` registers the compliance API and the rule metric families;
- `start`, once every part is plugged in: re-evaluate stored results if the rules changed,
  and start the periodic maintenance thread (config.maintenance_interval,
  KIEMKE_MAINTENANCE_INTERVAL: seconds, default 60, 0 = off).
Its ingest step is kiemke.collector.pipeline.evaluate.

Not in the package's __init__: the CLI imports this package, and must not import
prometheus_client (which these metric families need) before `serve` has set up the
multiprocess directory.
"""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy.exc import DBAPIError

from kiemke.collector.evaluation import api
from kiemke.collector.evaluation.maintenance import MaintenanceThread
from kiemke.collector.evaluation.metrics import machine_series, rule_compliance, rule_definitions
from kiemke.collector.evaluation.ruleset import create_evaluator, load_ruleset
from kiemke.collector.metrics_snapshot import SnapshotStore

__all__ = ["create_evaluator", "init_app", "load_ruleset", "start"]

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """The compliance API and the rule metric families."""
    ext = app.extensions["kiemke"]
    ruleset, stale_after = ext.compliance.ruleset, ext.config.stale_after
    # The large families' states, saved for the next process (metrics_snapshot).
    saved = ext.config.data_dir / "metrics-state"
    extra = f"{ruleset.fingerprint}\n{stale_after.total_seconds()}"
    ext.metric_providers.add("rule_definitions", rule_definitions(ruleset))
    ext.metric_providers.add("rule_compliance", rule_compliance(
        ruleset, stale_after, SnapshotStore(saved, "rule_compliance", extra)))
    ext.metric_providers.add("machine_series", machine_series(
        ruleset, stale_after, SnapshotStore(saved, "machine_series", extra)))
    app.register_blueprint(api.bp)


def start(app: Flask) -> None:
    """Bring stored results up to the rules, then start the maintenance thread."""
    ext = app.extensions["kiemke"]
    evaluator = ext.compliance
    try:
        evaluator.ensure_current()
    except DBAPIError as exc:
        # Not migrated yet or unreachable: /readyz says so; the maintenance pass retries.
        log.warning("cannot check the stored results against the rules yet: %s", exc.orig)
    interval = ext.config.maintenance_interval
    if interval > 0:
        ext.maintenance = MaintenanceThread(evaluator, interval)
        ext.maintenance.start()
