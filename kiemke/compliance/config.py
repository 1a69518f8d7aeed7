"""Configuration the fact builder needs: approved products, minimum spec, useful lives.

Loaded from rules/approved.yml and rules/depreciation.yml (see docs/rules.md). Every
problem is reported as file:line with what to change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .yamlsource import LineDict, LineList, SourceError, load_yaml

APPROVED_FILE = "approved.yml"
DEPRECIATION_FILE = "depreciation.yml"
# Not rules either: how the collector ranks units (kiemke/collector/reports/ranking.py).
RANKING_FILE = "ranking.yml"
CONFIG_FILES = (APPROVED_FILE, DEPRECIATION_FILE, RANKING_FILE)
LICENCE_KINDS = ("reported", "bundled", "free")
START_CONVENTIONS = ("purchase_month", "next_month")


@dataclass(frozen=True)
class Product:
    name: str
    match: tuple[str, ...]
    licence: str = "reported"

    def matches(self, reported_name: str) -> bool:
        low = reported_name.casefold()
        return any(m in low for m in self.match)


@dataclass(frozen=True)
class Category:
    key: str
    title_vi: str
    years: int
    rate: float


@dataclass(frozen=True)
class DepreciationConfig:
    regulation: str  # key of the active regulation
    document: str
    start: str
    categories: dict[str, Category]
    chassis_category: dict[str, str]
    overdue_after_months: int


@dataclass(frozen=True)
class ComplianceConfig:
    antivirus: tuple[Product, ...]
    monitoring: tuple[Product, ...]
    max_signature_age_days: float = 7
    unknown_licence: str = "unknown"  # or "accept"
    min_memory_gb: float = 4
    min_cpu_cores: int = 2
    min_disk_total_gb: float = 100
    require_ssd: bool = False
    depreciation: DepreciationConfig = field(default_factory=lambda: DEFAULT_DEPRECIATION)
    # signing: CA ids (vn_ca.json) or kinds ("government", "public") whose certificates count
    signing_authorities: tuple[str, ...] = ("government", "public")
    signing_expiring_days: float = 30
    # email: official domains (an account counts when its domain is one of these or a
    # subdomain), for every machine and, per unit code, for that unit and its subtree
    official_domains: tuple[str, ...] = ("gov.vn",)
    unit_domains: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # meeting: programs that count (names as the agent reports them); empty = any
    meeting_software: tuple[str, ...] = ()

    def approved_antivirus(self, name: str) -> Product | None:
        return next((p for p in self.antivirus if p.matches(name)), None)

    def approved_monitoring(self, name: str) -> Product | None:
        return next((p for p in self.monitoring if p.matches(name)), None)

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


DEFAULT_DEPRECIATION: DepreciationConfig = DepreciationConfig(
    regulation="tt-23-2023",
    document="Thông tư 23/2023/TT-BTC",
    start="purchase_month",
    categories={
        "desktop_computer": Category("desktop_computer", "Máy vi tính để bàn", 5, 0.20),
        "laptop_computer": Category("laptop_computer", "Máy vi tính xách tay", 5, 0.20),
    },
    chassis_category={"desktop": "desktop_computer", "all-in-one": "desktop_computer",
                      "laptop": "laptop_computer"},
    overdue_after_months=12,
)


def _require(mapping: Any, key: str, path: Path, parent_line: int, kind: type | tuple[type, ...],
             what: str) -> Any:
    if not isinstance(mapping, LineDict):
        raise SourceError(path, parent_line, f"expected a mapping with '{key}'")
    if key not in mapping:
        raise SourceError(path, mapping.line, f"'{key}' is missing: add {what}")
    value = mapping[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise SourceError(path, mapping.line_of(key), f"'{key}' must be {what}")
    return value


def _products(items: Any, path: Path, line: int, *, with_licence: bool) -> tuple[Product, ...]:
    if not isinstance(items, LineList):
        raise SourceError(path, line, "'products' must be a list of {name, match: [...]}")
    out = []
    for i, item in enumerate(items):
        item_line = items.line_of(i)
        name = _require(item, "name", path, item_line, str, "the product name in quotes")
        match = _require(item, "match", path, item_line, list, 'a list like ["kaspersky"]')
        if not match or not all(isinstance(m, str) and m.strip() for m in match):
            raise SourceError(path, item.line_of("match"),
                              f"product '{name}': 'match' needs at least one non-empty text")
        licence = "reported"
        if with_licence:
            licence = item.get("licence", "reported")
            if licence not in LICENCE_KINDS:
                raise SourceError(path, item.line_of("licence"),
                                  f"product '{name}': licence must be one of "
                                  f"{', '.join(LICENCE_KINDS)}, not {licence!r}")
        out.append(Product(name, tuple(m.casefold() for m in match), licence))
    return tuple(out)


def _number(mapping: LineDict, key: str, default: float, path: Path) -> float:
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SourceError(path, mapping.line_of(key), f"'{key}' must be a number ≥ 0")
    return value


def load_approved(path: Path) -> dict[str, Any]:
    data = load_yaml(path)
    if not isinstance(data, LineDict):
        raise SourceError(path, 1, "expected sections antivirus:, security_monitoring:, "
                                   "minimum_spec:")
    unknown = set(data) - {"antivirus", "security_monitoring", "minimum_spec", "signing",
                           "email", "meeting"}
    if unknown:
        key = sorted(unknown, key=str)[0]
        raise SourceError(path, data.line_of(key), f"unknown section '{key}'")
    av = _require(data, "antivirus", path, 1, dict, "the antivirus section")
    mon = _require(data, "security_monitoring", path, 1, dict, "the security_monitoring section")
    spec = data.get("minimum_spec", LineDict())
    policy = av.get("unknown_licence", "unknown")
    if policy not in ("unknown", "accept"):
        raise SourceError(path, av.line_of("unknown_licence"),
                          "unknown_licence must be \"unknown\" or \"accept\"")
    require_ssd = spec.get("require_ssd", False)
    if not isinstance(require_ssd, bool):
        raise SourceError(path, spec.line_of("require_ssd"), "require_ssd must be true or false")
    return {
        **_workplace(data, path),
        "antivirus": _products(av.get("products"), path, av.line, with_licence=True),
        "monitoring": _products(mon.get("products"), path, mon.line, with_licence=False),
        "max_signature_age_days": _number(av, "max_signature_age_days", 7, path),
        "unknown_licence": policy,
        "min_memory_gb": _number(spec, "memory_gb", 4, path),
        "min_cpu_cores": int(_number(spec, "cpu_cores", 2, path)),
        "min_disk_total_gb": _number(spec, "disk_total_gb", 100, path),
        "require_ssd": require_ssd,
    }


def _texts(mapping: LineDict, key: str, path: Path, default: tuple[str, ...],
           *, lower: bool = True) -> tuple[str, ...]:
    value = mapping.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SourceError(path, mapping.line_of(key), f"'{key}' must be a list of texts")
    return tuple(v.strip().casefold() if lower else v.strip() for v in value)


def _workplace(data: LineDict, path: Path) -> dict[str, Any]:
    """signing:, email:, meeting: (plans 000-003): all optional, defaults as documented."""
    sign = data.get("signing") or LineDict()
    mail = data.get("email") or LineDict()
    meet = data.get("meeting") or LineDict()
    for name, section in (("signing", sign), ("email", mail), ("meeting", meet)):
        if not isinstance(section, LineDict):
            raise SourceError(path, data.line_of(name), f"'{name}' must be a mapping")
    units = mail.get("units") or LineDict()
    if not isinstance(units, LineDict):
        raise SourceError(path, mail.line_of("units"),
                          "email 'units' must map a unit code to a list of domains")
    unit_domains = []
    for code in units:
        unit_domains.append((str(code), _texts(units, code, path, ())))
    return {
        "signing_authorities": _texts(sign, "authorities", path, ("government", "public")),
        "signing_expiring_days": _number(sign, "expiring_days", 30, path),
        "official_domains": _texts(mail, "official_domains", path, ("gov.vn",)),
        "unit_domains": tuple(unit_domains),
        "meeting_software": _texts(meet, "software", path, (), lower=False),
    }


def load_depreciation(path: Path) -> DepreciationConfig:
    data = load_yaml(path)
    if not isinstance(data, LineDict):
        raise SourceError(path, 1, "expected active:, regulations:, chassis_category:")
    active = _require(data, "active", path, 1, str, "the key of the regulation in force")
    regs = _require(data, "regulations", path, 1, dict, "the regulations section")
    if active not in regs:
        raise SourceError(path, data.line_of("active"),
                          f"active regulation '{active}' is not under regulations: "
                          f"(have {', '.join(map(str, regs))})")
    reg = regs[active]
    line = regs.line_of(active)
    document = _require(reg, "document", path, line, str, "the document number")
    start = reg.get("start", "purchase_month")
    if start not in START_CONVENTIONS:
        raise SourceError(path, reg.line_of("start"),
                          f"start must be one of {', '.join(START_CONVENTIONS)}")
    for key in ("issued", "effective"):
        if key in reg and not isinstance(reg[key], dt.date):
            raise SourceError(path, reg.line_of(key), f"'{key}' must be a date like 2023-06-10")
    cats_raw = _require(reg, "categories", path, line, dict, "the asset categories")
    categories: dict[str, Category] = {}
    for key, cat in cats_raw.items():
        cline = cats_raw.line_of(key)
        years = _require(cat, "years", path, cline, int, "the useful life in whole years")
        if years <= 0:
            raise SourceError(path, cat.line_of("years"), "years must be at least 1")
        rate = _require(cat, "rate", path, cline, (int, float), "the yearly rate, e.g. 0.20")
        if abs(rate * years - 1.0) > 0.01:
            raise SourceError(path, cat.line_of("rate"),
                              f"category '{key}': rate {rate} does not match {years} years "
                              f"(straight line needs rate = 1 / years = {1 / years:.4f})")
        categories[str(key)] = Category(str(key), str(cat.get("title_vi", key)), years,
                                        float(rate))
    chassis = _require(data, "chassis_category", path, 1, dict, "chassis → category mapping")
    for ch, cat_key in chassis.items():
        if cat_key not in categories:
            raise SourceError(path, chassis.line_of(ch),
                              f"chassis '{ch}' maps to unknown category '{cat_key}'")
    overdue = data.get("overdue_after_months", 12)
    if isinstance(overdue, bool) or not isinstance(overdue, int) or overdue < 0:
        raise SourceError(path, data.line_of("overdue_after_months"),
                          "overdue_after_months must be a whole number ≥ 0")
    return DepreciationConfig(active, document, start, categories,
                              {str(k): str(v) for k, v in chassis.items()}, overdue)


def load_config(directory: str | Path | None) -> ComplianceConfig:
    """Load approved.yml and depreciation.yml from `directory`; built-in defaults if absent."""
    kwargs: dict[str, Any] = {"antivirus": (), "monitoring": ()}
    if directory is None:
        return ComplianceConfig(**kwargs)
    directory = Path(directory)
    if (directory / APPROVED_FILE).exists():
        kwargs.update(load_approved(directory / APPROVED_FILE))
    if (directory / DEPRECIATION_FILE).exists():
        kwargs["depreciation"] = load_depreciation(directory / DEPRECIATION_FILE)
    return ComplianceConfig(**kwargs)
