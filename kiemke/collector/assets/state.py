"""What the asset register part keeps per app: its engine and rules/depreciation.yml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from kiemke.collector.config import ConfigError
from kiemke.compliance.config import DepreciationConfig, load_config
from kiemke.compliance.yamlsource import SourceError


@dataclass
class AssetsState:
    engine: Engine
    config: DepreciationConfig  # useful lives per category (rules/depreciation.yml)


def load_depreciation(rules_dir: Path | str) -> DepreciationConfig:
    """rules/depreciation.yml; a mistake in it is a ConfigError naming file and line."""
    try:
        return load_config(rules_dir).depreciation
    except SourceError as exc:
        raise ConfigError(f"{exc}; fix it and check with `kiemke-collector rules check`"
                          ) from None
