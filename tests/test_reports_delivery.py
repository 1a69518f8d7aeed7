"""Scheduled delivery: the night the daily job closes 30 November, the November reports
of the configured units and the ranking are written to the folder and mailed through a
real SMTP server on loopback (aiosmtpd, started here); a failed mail is retried the
next night and nothing is sent twice. About 15 s."""

from __future__ import annotations

import email
import io
from email import policy

import pytest
from aiosmtpd.controller import Controller  # the test extra (setup.cfg)
from compliance_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    OS_FAIL,
    OS_PASS,
    ROOT,
    build_tree,
    make_app,
    utc,
)
from compliance_helpers import report_at as ingest
from conftest import free_port
from openpyxl import load_workbook


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def test_period_end_reports_are_written_and_mailed_once(tmp_path, monkeypatch, sqlite_url):
    port = free_port()
    folder = tmp_path / "bao-cao"
    for key, value in {"KIEMKE_REPORT_DIR": str(folder), "KIEMKE_REPORT_UNITS": "LDLD-BG",
                       "KIEMKE_REPORT_RANKINGS": ROOT, "KIEMKE_REPORT_FORMATS": "xlsx,csv",
                       "KIEMKE_REPORT_PERIODS": "month", "KIEMKE_REPORT_PLACE": "Bắc Giang",
                       "KIEMKE_SMTP_HOST": "127.0.0.1", "KIEMKE_SMTP_PORT": str(port),
                       "KIEMKE_SMTP_TIMEOUT": "5", "KIEMKE_SMTP_FROM": "kiemke@127.0.0.1",
                       "KIEMKE_REPORT_MAIL_TO": "lanhdao@127.0.0.1,thidua@127.0.0.1"}.items():
        monkeypatch.setenv(key, value)
    app = make_app(sqlite_url, tmp_path, monkeypatch)
    state = app.extensions["kiemke"].reports
    units = build_tree(app)
    machines = {}
    for day in (28, 29, 30):
        for host, unit, facts in (("PC-YENDUNG-01", DISTRICT_A, OS_PASS),
                                  ("PC-LUCNAM-01", DISTRICT_B, OS_FAIL)):
            machines[host] = ingest(app, units[unit], host, utc(2026, 11, day, 2),
                                    machine_id=machines.get(host), **facts)
        state.run_job(utc(2026, 11, day, 3) if day == 28 else utc(2026, 11, day - 1, 17, 5))
    # The night 30 November closes: the SMTP server is not running yet.
    stats = state.run_job(utc(2026, 11, 30, 17, 5))
    assert stats["closed_days"] == ["2026-11-30"]
    assert "error" in stats["delivered"][0]
    month = folder / "2026-11"
    assert not (month / ".delivered").exists()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        stats = state.run_job(utc(2026, 12, 1, 17, 5))  # the next night: retried
        assert stats["delivered"][0]["mailed"] is True
        assert state.run_job(utc(2026, 12, 1, 18, 0))["delivered"] == []  # not twice
    finally:
        controller.stop()
    files = sorted(p.name for p in month.iterdir())
    assert files == [".delivered", "bao-cao-Lien-doan-Lao-dong-tinh-Bac-Giang-2026-11.csv",
                     "bao-cao-Lien-doan-Lao-dong-tinh-Bac-Giang-2026-11.xlsx",
                     "xep-hang-Lien-doan-Lao-dong-tinh-Bac-Giang-2026-11.csv",
                     "xep-hang-Lien-doan-Lao-dong-tinh-Bac-Giang-2026-11.xlsx"]
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["Subject"] == "[kiemke] Báo cáo ứng dụng CNTT tháng 11 năm 2026"
    assert msg["To"] == "lanhdao@127.0.0.1, thidua@127.0.0.1"
    attachments = {p.get_filename(): p.get_payload(decode=True) for p in msg.iter_attachments()}
    assert sorted(attachments) == files[1:]
    xlsx = attachments["bao-cao-Lien-doan-Lao-dong-tinh-Bac-Giang-2026-11.xlsx"]
    assert xlsx == (month / "bao-cao-Lien-doan-Lao-dong-tinh-Bac-Giang-2026-11.xlsx").read_bytes()
    rules = load_workbook(io.BytesIO(xlsx))["2-rules"]
    os_row = next(r for r in rules.iter_rows(min_row=3, values_only=True)
                  if r[1] == "Hệ điều hành còn được nhà sản xuất hỗ trợ")
    assert os_row[4] == pytest.approx(0.5)  # one pass, one fail on 30 November
    ranking = attachments["xep-hang-Lien-doan-Lao-dong-tinh-Bac-Giang-2026-11.csv"]
    assert ranking.startswith("\ufeffBẢNG XẾP HẠNG".encode())
    csv_part = next(p for p in msg.iter_attachments() if p.get_filename().endswith(".csv"))
    assert csv_part.get_content_type() == "text/csv"
    assert csv_part.get_param("charset") == "utf-8"
