"""Scheduled delivery: when the daily job closes the last day of a month, quarter or
year, the reports of the configured units (and rankings of the configured parents) are
written to KIEMKE_REPORT_DIR/<period>/ and, when SMTP is configured, mailed in one
message per period. A period already delivered is not sent again: its `.delivered`
marker in the folder, and a `delivered:<period>` row in `history_lock` for collector
instances on other hosts (each with its own folder). deliver_due runs under the
`delivery` lock (kiemke.collector.db.job_locks), so a re-run of the job or a second
instance sends nothing twice.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select

from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.history_tables import history_lock
from kiemke.collector.db.job_locks import exclusive
from kiemke.collector.reports.periods import Period, month, quarter, year_period
from kiemke.collector.reports.ranking import RankingConfig
from kiemke.collector.reports.service import (
    Output,
    ParameterError,
    ranking_output,
    report_output,
)
from kiemke.collector.reports.settings import ReportSettings

log = logging.getLogger(__name__)
MARKER = ".delivered"


def periods_ending(day: date, kinds: Iterable[str]) -> list[Period]:
    """The months, quarters and years whose last day is `day`."""
    if (day + timedelta(days=1)).day != 1:
        return []
    out = []
    wanted = set(kinds)
    if "month" in wanted:
        out.append(month(day.year, day.month))
    if "quarter" in wanted and day.month % 3 == 0:
        out.append(quarter(day.year, day.month // 3))
    if "year" in wanted and day.month == 12:
        out.append(year_period(day.year))
    return out


def _row_name(period: Period) -> str:
    return f"delivered:{period.text}"  # at most 10 + 22 characters: fits history_lock.name


def delivered_at(engine: Engine, period: Period) -> datetime | None:
    """When any instance delivered `period` (None: not yet)."""
    with engine.connect() as conn:
        value: datetime | None = conn.execute(select(history_lock.c.synced_at).where(
            history_lock.c.name == _row_name(period))).scalar()
    return value


def forget_delivery(engine: Engine, period: Period) -> None:
    """Let `period` be delivered again (`reports deliver --again`)."""
    with write_transaction(engine) as conn:
        conn.execute(delete(history_lock).where(history_lock.c.name == _row_name(period)))


def deliver(engine: Engine, settings: ReportSettings, period: Period, *, now: datetime,
            timezone: str, ranking_config: RankingConfig | None = None) -> dict[str, Any]:
    """Generate and (if configured) mail one period's reports; idempotent."""
    if settings.deliver_dir is None or not (settings.units or settings.rankings):
        return {"period": period.text, "skipped": "no KIEMKE_REPORT_DIR or no units"}
    folder = settings.deliver_dir / period.text.replace("..", "_")
    if (folder / MARKER).exists() or delivered_at(engine, period) is not None:
        return {"period": period.text, "skipped": "already delivered"}
    folder.mkdir(parents=True, exist_ok=True)
    outputs: list[Output] = []
    errors: list[str] = []
    with engine.connect() as conn:
        for unit in settings.units:
            for fmt in settings.formats:
                try:
                    outputs.append(report_output(conn, unit, period.text, fmt, settings.lang,
                                                 now=now, timezone=timezone,
                                                 place=settings.place))
                except ParameterError as exc:
                    errors.append(f"report of {unit!r}: {exc}")
        for parent in settings.rankings:
            for fmt in settings.formats:
                try:
                    outputs.append(ranking_output(conn, parent, period.text, fmt, settings.lang,
                                                  now=now, timezone=timezone,
                                                  config=ranking_config, place=settings.place))
                except ParameterError as exc:
                    errors.append(f"ranking of {parent!r}: {exc}")
    for out in outputs:
        tmp = folder / f".{out.filename}.tmp"
        tmp.write_bytes(out.body)
        tmp.replace(folder / out.filename)
    for error in errors:
        log.warning("period delivery %s: %s (check KIEMKE_REPORT_UNITS)", period.text, error)
    mailed = False
    if settings.smtp_host and outputs:
        send_mail(settings, period, outputs)
        mailed = True
    # Written last: a failed mail leaves no marker, so the next run tries again.
    (folder / MARKER).write_text(now.isoformat() + "\n", encoding="utf-8")
    with write_transaction(engine) as conn:
        conn.execute(delete(history_lock).where(history_lock.c.name == _row_name(period)))
        conn.execute(history_lock.insert().values(name=_row_name(period), synced_at=now))
    return {"period": period.text, "files": sorted(o.filename for o in outputs),
            "folder": str(folder), "mailed": mailed, "errors": errors}


def send_mail(settings: ReportSettings, period: Period, outputs: list[Output]) -> None:
    msg = EmailMessage()
    label = period.label(settings.lang)
    msg["Subject"] = (f"[kiemke] Báo cáo ứng dụng CNTT {label}" if settings.lang == "vi"
                      else f"[kiemke] IT application reports, {label}")
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(settings.mail_to)
    body = ("Kính gửi,\n\nĐính kèm các báo cáo định kỳ {label} do kiemke tạo tự động.\n"
            if settings.lang == "vi" else
            "Hello,\n\nAttached are the periodic reports for {label}, generated by kiemke.\n")
    msg.set_content(body.format(label=label) + "\n" + "\n".join(
        f"- {o.filename}" for o in outputs) + "\n")
    for out in outputs:
        maintype, _, subtype = out.content_type.split(";")[0].partition("/")
        # Text files keep their charset, so mail clients show the Vietnamese right.
        params = {"charset": "utf-8"} if maintype == "text" else {}
        msg.add_attachment(out.body, maintype=maintype, subtype=subtype, filename=out.filename,
                           params=params)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                      timeout=settings.smtp_timeout) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(msg)


def due_periods(last_closed: date, kinds: Iterable[str], within_days: int = 7) -> list[Period]:
    """Periods that ended in the `within_days` up to the last closed day: each run of the
    job delivers those not delivered yet, so a failed mail is retried the next night."""
    out: list[Period] = []
    for back in range(within_days):
        out.extend(periods_ending(last_closed - timedelta(days=back), kinds))
    return out


def deliver_due(engine: Engine, settings: ReportSettings, last_closed: date | None, *,
                now: datetime, timezone: str,
                ranking_config: RankingConfig | None = None) -> list[dict[str, Any]]:
    if last_closed is None or settings.deliver_dir is None:
        return []
    with exclusive(engine, "delivery", now) as got:
        if not got:
            return []  # another instance is delivering
        return _deliver_each(engine, settings, due_periods(last_closed, settings.kinds),
                             now=now, timezone=timezone, ranking_config=ranking_config)


def _deliver_each(engine: Engine, settings: ReportSettings, periods: list[Period], *,
                  now: datetime, timezone: str,
                  ranking_config: RankingConfig | None) -> list[dict[str, Any]]:
    done = []
    for period in periods:
        try:
            result = deliver(engine, settings, period, now=now, timezone=timezone,
                             ranking_config=ranking_config)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("period delivery %s failed: %s; retried at the next run of the daily "
                        "job, or run `kiemke-collector reports deliver --period %s`",
                        period.text, exc, period.text)
            result = {"period": period.text, "error": str(exc)}
        if "skipped" not in result:
            done.append(result)
    return done


def folder_of(settings: ReportSettings, period: Period) -> Path | None:
    return None if settings.deliver_dir is None else \
        settings.deliver_dir / period.text.replace("..", "_")
