"""The ingest pipeline: how an agent's report becomes stored state, rule results and
change versions, in named steps.

    validate -> unchanged -> store -> assets -> evaluate -> changes

Each step is a small class in its own module here (`name`, `in_transaction`, `run`);
`build_pipeline` below is the one list of them, in order. Adding a step is one module
plus one line in that list. Steps outside the transaction come first (a rejected report
costs no write); the others share one write transaction, committed before the agent is
answered (POST /api/v1/reports, kiemke.collector.api.reports). `unchanged` ends the
pipeline for a report whose facts the collector already holds (docs/report-format.md,
"Unchanged reports").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiemke.collector.pipeline.assets import AssetsStep
from kiemke.collector.pipeline.base import Ingest, Pipeline, Rejected, Step
from kiemke.collector.pipeline.changes import ChangesStep
from kiemke.collector.pipeline.evaluate import EvaluateStep
from kiemke.collector.pipeline.store import StoreStep
from kiemke.collector.pipeline.unchanged import UnchangedStep
from kiemke.collector.pipeline.validate import ValidateStep

if TYPE_CHECKING:  # the extension holds the pipeline: a type-only import
    from kiemke.collector.extension import Kiemke

__all__ = ["AssetsStep", "ChangesStep", "EvaluateStep", "Ingest", "Pipeline", "Rejected",
           "Step", "StoreStep", "UnchangedStep", "ValidateStep", "build_pipeline"]


def build_pipeline(ext: Kiemke) -> Pipeline:
    """The ingest steps of this app, in order."""
    return Pipeline(ext.engine, [
        ValidateStep(ext.validate, ext.config.max_clock_skew, ext.config.max_report_age),
        UnchangedStep(),
        StoreStep(),
        AssetsStep(ext.assets.config),
        EvaluateStep(ext.compliance),
        ChangesStep(),
    ])
