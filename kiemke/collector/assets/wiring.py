"""How the asset register part is put into an app (called by create_app): `load_state`
(its configuration), `init_app` (its API and metric families). The evaluator reads a
machine's register entry through kiemke.collector.assets.store.lookup; the ingest step
is kiemke.collector.pipeline.assets.

Not in the package's __init__: the CLI imports this package, and must not import
prometheus_client before `serve` has set up the multiprocess directory.
"""


from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine

from kiemke.collector.assets.api import bp
from kiemke.collector.assets.metrics import DepreciationMetrics
from kiemke.collector.assets.state import AssetsState, load_depreciation
from kiemke.collector.config import CollectorConfig


def load_state(engine: Engine, config: CollectorConfig) -> AssetsState:
    return AssetsState(engine=engine, config=load_depreciation(config.rules_dir))


def init_app(app: Flask) -> None:
    """The register's API and its metric families."""
    ext = app.extensions["kiemke"]
    ext.metric_providers.add("depreciation", DepreciationMetrics())
    app.register_blueprint(bp)
