"""The rule set the collector evaluates: rules/ of the configuration, loaded once."""

from __future__ import annotations

from sqlalchemy import Engine

from kiemke.collector.config import CollectorConfig, ConfigError
from kiemke.collector.evaluation.evaluator import AssetLookup, Evaluator
from kiemke.compliance import RuleLoadError, RuleSet, load_rules


def load_ruleset(config: CollectorConfig) -> RuleSet:
    """The rule set of config.rules_dir; every error is listed with file and line."""
    try:
        return load_rules([config.rules_dir])
    except RuleLoadError as exc:
        lines = "\n  ".join(e.format() for e in exc.errors)
        raise ConfigError(f"the rules in {config.rules_dir} cannot be loaded; fix these and "
                          f"check with `kiemke-collector rules check`:\n  {lines}") from None


def create_evaluator(engine: Engine, config: CollectorConfig, asset_lookup: AssetLookup
                     ) -> Evaluator:
    """An Evaluator of the configured rules; `asset_lookup` gives a machine's register
    entry (kiemke.collector.assets.store.lookup)."""
    return Evaluator(engine, config, load_ruleset(config), asset_lookup=asset_lookup)
