"""Agent configuration: an INI file plus KIEMKE_* environment overrides.

INI because Windows administrators edit it in Notepad and push it by GPO, and because
the agent must not need PyYAML. Every key is documented in docs/agent-config.md.
Environment overrides: KIEMKE_<KEY> (or KIEMKE_AGENT_<KEY>) for the [agent] section,
KIEMKE_<SECTION>_<KEY> for the others (for example KIEMKE_SERVER, KIEMKE_NETWORK_INTERNET_PROBES).
"""

from __future__ import annotations

import configparser
import os
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """The configuration is wrong; the message says where and what to do."""


def default_config_dir() -> Path:
    if sys.platform.startswith("win"):
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "kiemke"
    return Path("/etc/kiemke")


def default_state_dir() -> Path:
    if sys.platform.startswith("win"):
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "kiemke"
    return Path("/var/lib/kiemke")


def default_config_path() -> Path:
    return Path(os.environ.get("KIEMKE_CONFIG", default_config_dir() / "agent.conf"))


def _split(value: str) -> list[str]:
    """Comma- or newline-separated list, blanks dropped."""
    items: list[str] = []
    for line in value.replace(",", "\n").splitlines():
        line = line.strip()
        if line:
            items.append(line)
    return items


@dataclass
class AgentConfig:
    # [agent]
    server: str | None = None
    unit: str | None = None
    state_dir: Path = field(default_factory=default_state_dir)
    interval: float = 3600.0  # seconds between periodic reports
    jitter: float = 300.0  # random extra delay per run, seconds
    start_delay_max: float = 600.0  # random offset before the first run, seconds
    full_interval: float = 86400.0  # seconds between full inventories
    timeout: float = 15.0  # HTTP timeout per request, seconds
    retries: int = 5  # HTTP attempts per report before it stays spooled
    backoff_base: float = 2.0  # seconds; doubled per attempt, with full jitter
    backoff_max: float = 300.0
    spool_max_reports: int = 1000
    spool_max_bytes: int = 50 * 1024 * 1024
    ca_bundle: str | None = None  # path to a CA file for a private PKI
    verify_tls: bool = True
    # Lab networks only: allow plain http:// to a collector that is not on loopback, for
    # enrol, send, run and the collector check (docs/agent-config.md). Installers set it.
    allow_insecure_http: bool = False
    log_level: str = "INFO"
    proxy: str | None = None  # http://proxy:3128 for the collector; environment ignored
    # [collectors]
    collectors_enabled: list[str] = field(default_factory=list)  # empty: all
    collectors_disabled: list[str] = field(default_factory=list)
    collector_timeout: float = 20.0  # per collector, seconds
    # [network]
    gateway_check: str = "off"  # off | tcp:PORT | icmp
    internet_probes: list[str] = field(default_factory=list)  # http(s)://..., tcp://host:port
    dns_names: list[str] = field(default_factory=list)  # names to resolve; default: server host
    # Ask each of the machine's DNS servers directly as well as the system resolver. Off by
    # default: it sends UDP 53 to every resolver the machine has, which the operator chose
    # to name nowhere else (docs/agent-network-probes.md).
    dns_direct: bool = False
    probe_timeout: float = 2.0
    check_collector: bool = True
    # [antivirus] / [security_monitoring]: extra names, added to the built-in vendor list
    antivirus_extra: list[str] = field(default_factory=list)  # "Product name:service,process"
    monitoring_agents: list[str] = field(default_factory=list)  # "Name:service,process"
    max_signature_age_days: float = 7.0
    # [signing]: more certification authorities, "id:Name:kind:match1|match2"
    signing_extra_authorities: list[str] = field(default_factory=list)
    # [meeting]: meeting programs to look for, "Name:match1|match2" (default list if empty)
    meeting_software: list[str] = field(default_factory=list)
    source: Path | None = None  # the file this came from

    def collector_enabled(self, name: str) -> bool:
        if name in self.collectors_disabled:
            return False
        return not self.collectors_enabled or name in self.collectors_enabled


# (section, key) -> (attribute, type)
_KEYS: dict[tuple[str, str], tuple[str, str]] = {
    ("agent", "server"): ("server", "str"),
    ("agent", "unit"): ("unit", "str"),
    ("agent", "state_dir"): ("state_dir", "path"),
    ("agent", "interval"): ("interval", "seconds"),
    ("agent", "jitter"): ("jitter", "seconds"),
    ("agent", "start_delay_max"): ("start_delay_max", "seconds"),
    ("agent", "full_interval"): ("full_interval", "seconds"),
    ("agent", "timeout"): ("timeout", "seconds"),
    ("agent", "retries"): ("retries", "int"),
    ("agent", "backoff_base"): ("backoff_base", "seconds"),
    ("agent", "backoff_max"): ("backoff_max", "seconds"),
    ("agent", "spool_max_reports"): ("spool_max_reports", "int"),
    ("agent", "spool_max_bytes"): ("spool_max_bytes", "int"),
    ("agent", "ca_bundle"): ("ca_bundle", "str"),
    ("agent", "verify_tls"): ("verify_tls", "bool"),
    ("agent", "allow_insecure_http"): ("allow_insecure_http", "bool"),
    ("agent", "log_level"): ("log_level", "str"),
    ("agent", "proxy"): ("proxy", "str"),
    ("collectors", "enabled"): ("collectors_enabled", "list"),
    ("collectors", "disabled"): ("collectors_disabled", "list"),
    ("collectors", "timeout"): ("collector_timeout", "seconds"),
    ("network", "gateway_check"): ("gateway_check", "str"),
    ("network", "internet_probes"): ("internet_probes", "list"),
    ("network", "dns_names"): ("dns_names", "list"),
    ("network", "dns_direct"): ("dns_direct", "bool"),
    ("network", "probe_timeout"): ("probe_timeout", "seconds"),
    ("network", "check_collector"): ("check_collector", "bool"),
    ("antivirus", "extra_products"): ("antivirus_extra", "list"),
    ("antivirus", "max_signature_age_days"): ("max_signature_age_days", "days"),
    ("security_monitoring", "agents"): ("monitoring_agents", "list"),
    ("signing", "extra_authorities"): ("signing_extra_authorities", "list"),
    ("meeting", "software"): ("meeting_software", "list"),
}

_BOOL = {"1": True, "true": True, "yes": True, "on": True,
         "0": False, "false": False, "no": False, "off": False}


def _convert(kind: str, raw: str, where: str) -> object:
    raw = unicodedata.normalize("NFC", raw.strip())  # a unit name typed in NFD is the same
    try:
        if kind == "str":
            return raw or None
        if kind == "path":
            return Path(raw).expanduser()
        if kind == "list":
            return _split(raw)
        if kind == "int":
            return int(raw)
        if kind in ("seconds", "days"):
            value = float(raw)
            if value < 0:
                raise ValueError
            return value
        if kind == "bool":
            return _BOOL[raw.lower()]
    except (ValueError, KeyError):
        pass
    expected = {"int": "a whole number", "seconds": "a number of seconds (0 or more)",
                "days": "a number of days (0 or more)",
                "bool": "true or false"}.get(kind, "a value")
    raise ConfigError(f"{where}: {raw!r} is not {expected}. Fix the value and run the agent again.")


def _line_of(path: Path, section: str, key: str) -> int | str:
    """The line number of `key` in `[section]` (for messages), "?" when not found."""
    current = None
    with open(path, encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, start=1):
            text = line.strip()
            if text.startswith("[") and text.endswith("]"):
                current = text[1:-1].strip()
            elif current == section and text.split("=", 1)[0].split(":", 1)[0].strip() \
                    .lower() == key:
                return number
    return "?"


def load_config(path: Path | str | None = None, env: dict[str, str] | None = None,
                must_exist: bool = False) -> AgentConfig:
    """Read the INI file (if present) then apply KIEMKE_* environment overrides."""
    env = dict(os.environ if env is None else env)
    cfg = AgentConfig()
    cfg_path = Path(path) if path else default_config_path()
    if cfg_path.exists():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(cfg_path, encoding="utf-8-sig") as fh:  # Notepad writes a BOM
                parser.read_file(fh)
        except configparser.Error as exc:
            line = getattr(exc, "lineno", None)
            detail = exc.message
            if isinstance(exc, configparser.ParsingError) and exc.errors:
                line, bad = exc.errors[0]
                detail = f"{bad.strip()!r} is not a key = value line"
            elif isinstance(exc, configparser.MissingSectionHeaderError):
                detail = "the file must start with a [section] header such as [agent]"
            at = f"{cfg_path}, line {line}" if line else str(cfg_path)
            raise ConfigError(f"{at}: cannot read the configuration ({detail}). "
                              "Check the [section] headers and key = value lines.") from exc
        for section in parser.sections():
            for key, raw in parser.items(section):
                spec = _KEYS.get((section, key))
                if spec is None:
                    known = ", ".join(sorted(f"[{s}] {k}" for s, k in _KEYS))
                    raise ConfigError(f"{cfg_path}, line {_line_of(cfg_path, section, key)}: "
                                      f"unknown setting [{section}] {key}. "
                                      f"Known settings: {known}.")
                attr, kind = spec
                where = f"{cfg_path}, line {_line_of(cfg_path, section, key)}: [{section}] {key}"
                setattr(cfg, attr, _convert(kind, raw, where))
        cfg.source = cfg_path
    elif must_exist:
        raise ConfigError(f"{cfg_path} does not exist. Create it (see docs/agent-config.md) "
                          "or pass --config PATH.")
    for (section, key), (attr, kind) in _KEYS.items():
        # [agent] keys: KIEMKE_<KEY>, or KIEMKE_AGENT_<KEY> like the other sections (wins).
        names = [f"KIEMKE_{key.upper()}", f"KIEMKE_AGENT_{key.upper()}"] \
            if section == "agent" else [f"KIEMKE_{section.upper()}_{key.upper()}"]
        for name in names:
            if name in env:
                setattr(cfg, attr, _convert(kind, env[name], f"environment variable {name}"))
    if cfg.server:
        cfg.server = cfg.server.rstrip("/")
        if not cfg.server.startswith(("http://", "https://")):
            raise ConfigError(f"server {cfg.server!r} must start with http:// or https://, "
                              "for example https://kiemke.example.gov.vn")
    return cfg
