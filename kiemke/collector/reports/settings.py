"""Settings of reports and their delivery, from KIEMKE_REPORT_* / KIEMKE_SMTP_* variables
(docs/reports.md, "Scheduled delivery")."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kiemke.collector.config import ConfigError
from kiemke.collector.reports.render import FORMATS


@dataclass
class ReportSettings:
    place: str = ""  # "Bắc Giang": the place in "Bắc Giang, ngày … tháng … năm …"
    deliver_dir: Path | None = None  # where period-end reports are written
    units: list[str] = field(default_factory=list)  # unit refs (id, code or path)
    rankings: list[str] = field(default_factory=list)  # parents whose ranking is sent
    formats: list[str] = field(default_factory=lambda: ["pdf", "xlsx"])
    kinds: list[str] = field(default_factory=lambda: ["month", "quarter", "year"])
    lang: str = "vi"
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_timeout: float = 30.0
    mail_from: str = ""
    mail_to: list[str] = field(default_factory=list)
    history_job: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReportSettings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str = "") -> str:
            return env.get(name, default).strip()

        def split(name: str, sep: str = ";") -> list[str]:
            return [x.strip() for x in get(name).split(sep) if x.strip()]

        formats = split("KIEMKE_REPORT_FORMATS", ",") or ["pdf", "xlsx"]
        bad = [f for f in formats if f not in FORMATS]
        if bad:
            raise ConfigError(f"KIEMKE_REPORT_FORMATS: unknown format {bad[0]!r}; use "
                              f"{', '.join(FORMATS)}")
        kinds = split("KIEMKE_REPORT_PERIODS", ",") or ["month", "quarter", "year"]
        if any(k not in ("month", "quarter", "year") for k in kinds):
            raise ConfigError("KIEMKE_REPORT_PERIODS: use month, quarter and/or year")
        lang = get("KIEMKE_REPORT_LANG", "vi")
        if lang not in ("vi", "en"):
            raise ConfigError("KIEMKE_REPORT_LANG: use vi or en")
        try:
            port = int(get("KIEMKE_SMTP_PORT", "25"))
            timeout = float(get("KIEMKE_SMTP_TIMEOUT", "30"))
        except ValueError:
            raise ConfigError("KIEMKE_SMTP_PORT and KIEMKE_SMTP_TIMEOUT must be numbers") \
                from None
        folder = get("KIEMKE_REPORT_DIR")
        mail_to = split("KIEMKE_REPORT_MAIL_TO", ",")
        settings = cls(
            place=get("KIEMKE_REPORT_PLACE"), deliver_dir=Path(folder) if folder else None,
            units=split("KIEMKE_REPORT_UNITS"), rankings=split("KIEMKE_REPORT_RANKINGS"),
            formats=formats, kinds=kinds, lang=lang, smtp_host=get("KIEMKE_SMTP_HOST"),
            smtp_port=port, smtp_user=get("KIEMKE_SMTP_USER"),
            smtp_password=env.get("KIEMKE_SMTP_PASSWORD", ""),
            smtp_starttls=get("KIEMKE_SMTP_STARTTLS", "false").lower() in ("1", "true", "yes"),
            smtp_timeout=timeout, mail_from=get("KIEMKE_SMTP_FROM"), mail_to=mail_to,
            history_job=get("KIEMKE_HISTORY_JOB", "on").lower() not in ("0", "off", "false"))
        if settings.smtp_host and (not settings.mail_from or not settings.mail_to):
            raise ConfigError("KIEMKE_SMTP_HOST is set: set KIEMKE_SMTP_FROM and "
                              "KIEMKE_REPORT_MAIL_TO (comma-separated addresses) too")
        return settings
