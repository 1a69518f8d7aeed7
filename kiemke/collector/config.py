"""CollectorConfig: settings from the environment and an optional config file.

The config file uses the same KEY=VALUE format as the systemd EnvironmentFile
(deploy/collector.example.env), so one file serves both. The environment wins over
the file. See docs/deployment.md for every setting.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kiemke.compliance.rule_loader import default_rules_dir

# The rules shipped in the package; KIEMKE_RULES_DIR points at an operator's own copy.
DEFAULT_RULES_DIR = default_rules_dir()
REPO_RULES_DIR = DEFAULT_RULES_DIR  # the former name, still imported by tests and benches
SYSTEM_DATA_DIR = Path("/var/lib/kiemke-collector")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message says where and what to do."""


def parse_duration(text: str) -> timedelta:
    """'3d', '12h', '90m', '30s', '2w' or plain seconds -> timedelta."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration: write a number with s, m, h, d or w "
                         f"(for example 3d or 12h)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_size(text: str) -> int:
    """'1048576', '1MiB', '512KiB', '2M' -> bytes."""
    match = re.match(r"^\s*(\d+)\s*(k|ki|kib|kb|m|mi|mib|mb)?\s*$", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not a size: write bytes, or a number with KiB or MiB")
    unit = (match.group(2) or "").lower()
    factor = 1024 if unit.startswith("k") else 1024 * 1024 if unit.startswith("m") else 1
    return int(match.group(1)) * factor


def default_data_dir() -> Path:
    """/var/lib/kiemke-collector when it exists and is writable (packaged install), else ./var."""
    if SYSTEM_DATA_DIR.is_dir() and os.access(SYSTEM_DATA_DIR, os.W_OK):
        return SYSTEM_DATA_DIR
    return Path("var").resolve()


@dataclass
class CollectorConfig:
    database_url: str = ""
    data_dir: Path = field(default_factory=default_data_dir)
    max_body_bytes: int = 1024 * 1024
    stale_after: timedelta = timedelta(days=3)
    timezone: str = "Asia/Ho_Chi_Minh"
    rules_dir: Path = DEFAULT_RULES_DIR
    log_level: str = "INFO"
    # Seconds between maintenance passes (waiver expiry, unit rules, daily snapshot); 0: off.
    maintenance_interval: float = 60.0
    # A report collected further ahead of the collector's clock than this is refused: a
    # machine with a clock in the future must not freeze its own current state.
    max_clock_skew: timedelta = timedelta(minutes=15)
    # ... and one collected longer ago than this (a clock in 1900 or 0001, or a dead CMOS
    # battery's 2000-01-01; an agent's spool holds weeks, not years).
    max_report_age: timedelta = timedelta(days=3650)
    # Raw reports older than this many days are deleted by the retention job (the latest
    # report of each machine is kept); 0 keeps them all (kiemke.collector.retention).
    report_retention_days: int = 30

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.rules_dir = Path(self.rules_dir)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'kiemke.db'}"

    def ensure_data_dir(self) -> None:
        """Create the data dir (it holds the default SQLite file and metrics files)."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the data directory {self.data_dir}: "
                              f"{exc.strerror}; set KIEMKE_DATA_DIR to a writable "
                              f"directory") from None


    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> CollectorConfig:
        """Build from {field: value}; strings are parsed like environment values."""
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ConfigError(f"unknown collector setting(s): {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if name == "max_body_bytes" and isinstance(value, str):
                value = parse_size(value)
            elif name in ("stale_after", "max_clock_skew", "max_report_age") \
                    and isinstance(value, (str, int, float)):
                value = (parse_duration(value) if isinstance(value, str)
                         else timedelta(seconds=value))
            elif name == "maintenance_interval" and isinstance(value, str):
                value = _parse_interval(value)
            elif name == "report_retention_days" and isinstance(value, str):
                value = _parse_retention(value)
            kwargs[name] = value
        return cls(**kwargs)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None,
                 config_file: str | Path | None = None) -> CollectorConfig:
        """Settings from KIEMKE_* variables, over the file named by --config or KIEMKE_CONFIG."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, tuple[str, str]] = {}  # field -> (raw value, where it came from)
        path = config_file or environ.get("KIEMKE_CONFIG")
        if path:
            values.update(read_env_file(Path(path)))
        for env_name, name in ENV_VARS.items():
            if env_name in environ and environ[env_name] != "":
                values[name] = (environ[env_name], f"environment variable {env_name}")
        parsed: dict[str, Any] = {}
        for name, (raw, where) in values.items():
            try:
                parsed[name] = _PARSERS.get(name, str)(raw)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        return cls(**parsed)


def _parse_level(text: str) -> str:
    level = text.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"{text!r} is not a log level: use DEBUG, INFO, WARNING or ERROR")
    return level


def _parse_timezone(text: str) -> str:
    try:
        ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r} is not a time zone name (for example Asia/Ho_Chi_Minh)") \
            from None
    return text.strip()


def _parse_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ValueError(f"{text!r}: give the seconds between maintenance passes "
                         "(for example 60), or 0 to turn them off")
    return value


# Raw reports are the duplicate check of agents' retries (a re-sent report is known by its
# id), and agents keep unsent reports for weeks: a shorter retention is refused.
MIN_RETENTION_DAYS = 7


def _parse_retention(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if value != 0 and value < MIN_RETENTION_DAYS:
        raise ValueError(f"{text!r}: give the days raw reports are kept (at least "
                         f"{MIN_RETENTION_DAYS}, default 30), or 0 to keep them all")
    return value


ENV_VARS: dict[str, str] = {
    "KIEMKE_DATABASE_URL": "database_url",
    "KIEMKE_DATA_DIR": "data_dir",
    "KIEMKE_MAX_BODY_BYTES": "max_body_bytes",
    "KIEMKE_STALE_AFTER": "stale_after",
    "KIEMKE_TIMEZONE": "timezone",
    "KIEMKE_RULES_DIR": "rules_dir",
    "KIEMKE_LOG_LEVEL": "log_level",
    "KIEMKE_MAINTENANCE_INTERVAL": "maintenance_interval",
    "KIEMKE_MAX_CLOCK_SKEW": "max_clock_skew",
    "KIEMKE_MAX_REPORT_AGE": "max_report_age",
    "KIEMKE_REPORT_RETENTION_DAYS": "report_retention_days",
}

_PARSERS: dict[str, Any] = {
    "data_dir": lambda s: Path(s).expanduser(),
    "rules_dir": lambda s: Path(s).expanduser(),
    "max_body_bytes": parse_size,
    "stale_after": parse_duration,
    "max_clock_skew": parse_duration,
    "max_report_age": parse_duration,
    "timezone": _parse_timezone,
    "log_level": _parse_level,
    "maintenance_interval": _parse_interval,
    "report_retention_days": _parse_retention,
}


def read_env_file(path: Path) -> dict[str, tuple[str, str]]:
    """Read KEY=VALUE lines (# comments, optional quotes); errors name the file and line."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    values: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{path}, line {number}"
        key, sep, value = stripped.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep:
            raise ConfigError(f"{where}: expected KEY=VALUE, found {stripped!r}")
        if key not in ENV_VARS:
            known = ", ".join(ENV_VARS)
            raise ConfigError(f"{where}: unknown setting {key!r}; known settings: {known}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[ENV_VARS[key]] = (value, where)
    return values
