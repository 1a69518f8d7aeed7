"""Plug the asset register into a collector app: ingest step, asset lookup, metrics, API.

`init_app(app)` chains this part's ingest step in front of whatever `on_report` is
already set (the rules evaluation), so that a machine matched on this report already
has its register entry when the rules read `asset.*` facts through `asset_lookup`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import Connection

from kiemke.collector.assets import store
from kiemke.collector.assets.metrics import DepreciationMetrics
from kiemke.collector.assets.state import AssetsState, load_depreciation

EXTENSION = "kiemke_assets"


def init_app(app: Flask) -> None:
    from kiemke.collector.assets.api import bp

    ext = app.extensions["kiemke"]
    state = AssetsState(engine=ext.engine, config=load_depreciation(ext.config.rules_dir))
    app.extensions[EXTENSION] = state
    chain_on_report(ext, state)
    ext.asset_lookup = store.lookup
    ext.metric_providers.append(DepreciationMetrics())
    app.register_blueprint(bp)


def chain_on_report(ext: Any, state: AssetsState) -> None:
    """Run the asset step first, then the hook that was there (idempotent per app)."""
    if getattr(ext.on_report, "_kiemke_assets", False):
        return
    following = ext.on_report

    def on_report(conn: Connection, machine_row: dict[str, Any], report: dict[str, Any]) -> None:
        store.on_report(conn, machine_row, report, config=state.config,
                        now=machine_row["last_seen"])
        following(conn, machine_row, report)

    on_report._kiemke_assets = True  # type: ignore[attr-defined]
    ext.on_report = on_report
