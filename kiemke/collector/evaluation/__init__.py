"""Compliance in the collector: results, units, waivers, rule metrics and API.

`init_app(app)` is called by create_app (INTEGRATIONS): it loads the rule set from
the configured rules directory, plugs the ingest hook and the metric providers in,
registers the API, re-evaluates stored results if the rules changed, and starts the
periodic maintenance thread (config.maintenance_interval, KIEMKE_MAINTENANCE_INTERVAL:
seconds, default 60, 0 = off).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from sqlalchemy.exc import DBAPIError

from kiemke.collector.config import CollectorConfig, ConfigError
from kiemke.collector.evaluation.evaluator import Evaluator, MaintenanceThread
from kiemke.compliance import RuleLoadError, RuleSet, load_rules

log = logging.getLogger(__name__)

def load_ruleset(config: CollectorConfig) -> RuleSet:
    """The rule set of config.rules_dir; every error is listed with file and line."""
    try:
        return load_rules([config.rules_dir])
    except RuleLoadError as exc:
        lines = "\n  ".join(e.format() for e in exc.errors)
        raise ConfigError(f"the rules in {config.rules_dir} cannot be loaded; fix these and "
                          f"check with `kiemke-collector rules check`:\n  {lines}") from None


def _no_asset(_conn: Any, _machine_id: str) -> None:
    return None


def init_app(app: Flask) -> None:
    from kiemke.collector.evaluation import api
    from kiemke.collector.evaluation.metrics import (
        machine_series,
        rule_compliance,
        rule_definitions,
    )
    from kiemke.collector.evaluation.openapi import extend as openapi_extend

    ext = app.extensions["kiemke"]
    ruleset = load_ruleset(ext.config)
    if ext.asset_lookup is None:
        # The asset register (another part) replaces this with its lookup.
        ext.asset_lookup = _no_asset
    evaluator = Evaluator(ext.engine, ext.config, ruleset,
                          asset_lookup=lambda conn, mid: ext.asset_lookup(conn, mid))
    ext.compliance = evaluator
    ext.on_report = evaluator.on_report
    ext.metric_providers.extend([rule_definitions(ruleset),
                                 rule_compliance(ruleset, ext.config.stale_after),
                                 machine_series(ruleset, ext.config.stale_after)])
    app.register_blueprint(api.bp)
    ext.openapi_extenders.append(openapi_extend)
    ext.machine_detail_extenders.append(
        lambda conn, machine_id: {"results": api.machine_results(conn, machine_id)})
    interval = ext.config.maintenance_interval
    ext.maintenance = None

    def start() -> None:
        try:
            evaluator.ensure_current()
        except DBAPIError as exc:
            # Not migrated yet or unreachable: /readyz says so; the maintenance pass retries.
            log.warning("cannot check the stored results against the rules yet: %s", exc.orig)
        if interval > 0:
            ext.maintenance = MaintenanceThread(evaluator, interval)
            ext.maintenance.start()

    # Run by create_app once every integration is plugged in (see app.py).
    ext.startup_hooks.append(start)
