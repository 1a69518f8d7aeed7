"""The rule engine: facts from reports, the expression language, rules, evaluation and
depreciation. Pure Python (no Flask, no database): the collector calls it."""

from .config import ComplianceConfig, load_config
from .evaluate import count_results, evaluate_machine, evaluate_unit, gap, ratio
from .facts import FACTS, facts_from_json, facts_from_report, facts_to_json
from .rule_loader import default_rules_dir, load_rules, parse_duration
from .rules import RESULTS, Rule, RuleLoadError, RuleSet
from .units import UNIT_FACTS, unit_facts

__all__ = [
    "FACTS", "UNIT_FACTS", "RESULTS", "ComplianceConfig", "Rule", "RuleLoadError", "RuleSet",
    "count_results", "default_rules_dir", "evaluate_machine", "evaluate_unit",
    "facts_from_json", "facts_from_report", "facts_to_json", "gap", "load_config",
    "load_rules", "parse_duration", "ratio", "unit_facts",
]
