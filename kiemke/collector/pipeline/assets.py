"""assets: match the machine to the asset register and refresh its depreciation."""

from __future__ import annotations

from typing import ClassVar

from kiemke.collector.assets import store
from kiemke.collector.pipeline.base import Ingest
from kiemke.compliance.config import DepreciationConfig


class AssetsStep:
    """Before `evaluate`: a machine matched on this report already has its register
    entry when the rules read `asset.*` and `depreciation.*` facts."""

    name: ClassVar[str] = "assets"
    in_transaction: ClassVar[bool] = True

    def __init__(self, config: DepreciationConfig) -> None:
        self.config = config

    def run(self, ingest: Ingest) -> None:
        store.on_report(ingest.db, ingest.machine, ingest.report, config=self.config,
                        now=ingest.machine["last_seen"])
