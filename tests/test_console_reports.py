"""The console's period-report and ranking pages against the real reports code, and the
scope of GET /api/v1/period-reports|rankings, on a SIMULATED fleet with a closed daily
history (kiemke/collector/reports/simulate.py), through the Flask test client.

The page shows the API's figures; its downloads are the API's (and so the CLI's) files;
a viewer or read-only token of district A gets 403 for district B, and A's ranking holds
nothing of B. The last test opens both pages in a real headless Chromium against a real
collector (gunicorn) on the same fleet: accessibility basics, no sideways scroll on a
phone, and the 1366x768 screenshots reports.png / ranking.png (copied to docs/console/
with KIEMKE_UPDATE_SCREENSHOTS=1, as tests/test_console_browser.py does for the other
pages). About 35 s (WeasyPrint lays out the PDFs; the collector and the browser start).
"""

from __future__ import annotations

import html
import io
import os
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import admin_token
from conftest import REPO, start_collector, stop_collector
from console_browser import A11Y_JS, DESKTOP, PHONE, browser, click_and_wait
from openpyxl import load_workbook
from selenium.webdriver.common.by import By

from kiemke.collector.accounts.roles import cli_principal
from kiemke.collector.accounts.tokens import create_api_token
from kiemke.collector.accounts.users import add_user
from kiemke.collector.app import create_app
from kiemke.collector.db.engine import make_engine, write_transaction
from kiemke.collector.db.migrate import upgrade
from kiemke.collector.reports import simulate
from kiemke.collector.reports.periods import local_day, month
from kiemke.collector.units import all_units, find_unit, subtree_ids
from kiemke.compliance import default_rules_dir, load_rules

TZ = "Asia/Ho_Chi_Minh"
PASSWORD = "Mật-khẩu-thử-2026"
SEED = 13
# Where tests/test_console_browser.py saves its screenshots.
SHOTS = Path(os.environ.get("KIEMKE_SCREENSHOT_DIR", REPO / "build" / "console-screenshots"))


def last_month() -> str:
    today = local_day(datetime.now(timezone.utc), TZ)
    first = today.replace(day=1) - timedelta(days=1)
    return month(first.year, first.month).text


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("console-reports")
    url = f"sqlite:///{folder / 'kiemke.db'}"
    upgrade(url)
    engine = make_engine(url)
    ruleset = load_rules([default_rules_dir()])
    today = local_day(datetime.now(timezone.utc), TZ)
    sim = simulate.Simulation(ruleset.machine_rules, start=today - timedelta(days=70), days=70,
                              seed=SEED, districts=2, offices_per_district=3,
                              machines_per_office=(3, 5), tz=TZ)
    simulate.load(engine, ruleset, sim)
    engine.dispose()
    app = create_app({"database_url": url, "data_dir": str(folder / "data"),
                      "maintenance_interval": 0, "timezone": TZ})
    engine = app.extensions["kiemke"].engine
    with write_transaction(engine) as conn:
        units = all_units(conn)
        a = find_unit(conn, f"SIM-{SEED}-1")
        b = find_unit(conn, f"SIM-{SEED}-2")
        root = find_unit(conn, f"SIM-{SEED}")
        add_user(conn, "admin", PASSWORD, role="admin", actor=cli_principal("tests"))
        add_user(conn, "lan", PASSWORD, role="viewer", unit=a.id,
                 display_name="Nguyễn Thị Lan", actor=cli_principal("tests"))
        _id, read_token = create_api_token(conn, "grafana-yen-dung", role="viewer",
                                           unit=a.id, actor=cli_principal("tests"))
    b_units = [u for u in units if u.id in set(subtree_ids(units, b.id))]
    yield {"app": app, "a": a, "b": b, "root": root, "b_units": b_units, "url": url,
           "folder": folder, "admin": admin_token(app), "read": read_token,
           "period": last_month()}
    engine.dispose()


def login(app: Any, name: str) -> Any:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf, "the login form carries a CSRF token"
    resp = client.post("/login", data={"name": name, "password": PASSWORD,
                                       "csrf_token": csrf.group(1)})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return client


def api(fleet: Any, path: str, token: str) -> Any:
    return fleet["app"].test_client().get(path, headers={"Authorization": f"Bearer {token}"})


def vi_pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.1f}".rstrip("0").rstrip(".").replace(".", ",") + "%"


def test_reports_page_shows_the_api_figures_and_downloads_the_api_files(fleet: Any) -> None:
    a, period = fleet["a"], fleet["period"]
    client = login(fleet["app"], "admin")
    page = client.get(f"/units/{a.id}/reports?period={period}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    data = api(fleet, f"/api/v1/period-reports?unit={a.id}&period={period}&format=json",
               fleet["admin"]).get_json()
    assert data["rules"], "the simulated fleet gives rule figures"
    shown = dict(re.findall(r'<tr data-rule="([^"]+)">.*?<td data-figure="end">([^<]*)</td>',
                            text, re.S))
    assert shown == {r["rule_id"]: vi_pct(r["end_value"]) for r in data["rules"]}
    assert f"{data['coverage']['active']} / {data['coverage']['machines']}" in text
    for child in data["children"]:
        assert f'data-unit="{child["unit_id"]}"' in text

    # The page's download links are the API's (the CLI's) files.
    links = re.findall(rf'href="(/units/{a.id}/reports\?[^"]*format=(pdf|xlsx|csv))"', text)
    assert sorted(f for _h, f in links) == ["csv", "pdf", "xlsx"]
    files = {f: client.get(html.unescape(h)) for h, f in links}
    assert all(r.status_code == 200 for r in files.values())
    assert files["pdf"].data.startswith(b"%PDF")
    assert "attachment" in files["pdf"].headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(files["xlsx"].data))
    cells = [c for ws in book.worksheets for row in ws.iter_rows(values_only=True)
             for c in row if c is not None]
    assert a.name in cells or any(a.name in str(c) for c in cells)
    api_csv = api(fleet, f"/api/v1/period-reports?unit={a.id}&period={period}&format=csv",
                  fleet["admin"])
    assert files["csv"].data == api_csv.data
    assert files["csv"].headers["Content-Disposition"] == \
        api_csv.headers["Content-Disposition"].replace("inline", "attachment")


def test_ranking_page_shows_the_api_rows_and_downloads_xlsx(fleet: Any) -> None:
    root, period = fleet["root"], fleet["period"]
    client = login(fleet["app"], "admin")
    text = client.get(f"/units/{root.id}/ranking?period={period}").get_data(as_text=True)
    data = api(fleet, f"/api/v1/rankings?parent={root.id}&period={period}&format=json",
               fleet["admin"]).get_json()
    rows = re.findall(r'<tr data-unit="(\d+)"><td>([^<]*)</td>', text)
    assert rows == [(str(r["unit_id"]), str(r["rank"] or "–")) for r in data["rows"]]
    assert {fleet["a"].id, fleet["b"].id} == {r["unit_id"] for r in data["rows"]}
    xlsx = client.get(f"/units/{root.id}/ranking?period={period}&format=xlsx")
    assert xlsx.status_code == 200
    book = load_workbook(io.BytesIO(xlsx.data))
    assert any(fleet["b"].name in str(c) for ws in book.worksheets
               for row in ws.iter_rows(values_only=True) for c in row)


def test_a_district_a_viewer_and_token_get_403_for_district_b(fleet: Any) -> None:
    a, b, root, period = fleet["a"], fleet["b"], fleet["root"], fleet["period"]
    client = login(fleet["app"], "lan")
    for path in (f"/units/{b.id}/reports?period={period}",
                 f"/units/{b.id}/ranking?period={period}",
                 f"/units/{b.id}/reports?period={period}&format=pdf",
                 f"/units/{root.id}/ranking?period={period}",
                 f"/reports?unit_id={b.id}&period={period}"):
        assert client.get(path).status_code == 403, path
    for path, field in ((f"/api/v1/period-reports?unit={b.id}&period={period}", "unit"),
                        (f"/api/v1/period-reports?unit={b.code}&period={period}&format=pdf",
                         "unit"),
                        (f"/api/v1/rankings?parent={b.id}&period={period}", "parent"),
                        (f"/api/v1/rankings?parent={root.code}&period={period}", "parent")):
        resp = api(fleet, path, fleet["read"])
        assert resp.status_code == 403, path
        assert resp.get_json()["error"] == "outside_scope"
        assert resp.get_json()["field"] == field

    # A's own report and ranking are open to A's token and viewer, and hold nothing of B.
    b_names = {u.name for u in fleet["b_units"]} - {u.name for u in all_units_of(fleet, a.id)}
    b_ids = {u.id for u in fleet["b_units"]}
    report = api(fleet, f"/api/v1/period-reports?unit={a.id}&period={period}",
                 fleet["read"])
    assert report.status_code == 200
    ranking = api(fleet, f"/api/v1/rankings?parent={a.id}&period={period}", fleet["read"])
    assert ranking.status_code == 200
    assert ranking.get_json()["rows"], "A has child units to rank"
    assert not {r["unit_id"] for r in ranking.get_json()["rows"]} & b_ids
    page = client.get(f"/units/{a.id}/ranking?period={period}")
    assert page.status_code == 200
    for body in (ranking.get_data(as_text=True), page.get_data(as_text=True),
                 client.get(f"/units/{a.id}/ranking?period={period}&format=csv")
                 .get_data(as_text=True)):
        for name in b_names | {b.path}:
            assert name not in body
        assert not set(map(int, re.findall(r'data-unit="(\d+)"', body))) & b_ids


def all_units_of(fleet: Any, unit_id: int) -> list[Any]:
    with fleet["app"].extensions["kiemke"].engine.connect() as conn:
        units = all_units(conn)
    ids = set(subtree_ids(units, unit_id))
    return [u for u in units if u.id in ids]


def test_both_pages_in_a_real_browser_are_accessible_and_screenshotted(fleet: Any) -> None:
    server = start_collector(fleet["url"], fleet["folder"] / "collector",
                             extra_env={"KIEMKE_TIMEZONE": TZ})
    try:
        for d in browser():
            d.get(server.url + "/login")
            d.find_element(By.ID, "f-name").send_keys("admin")
            d.find_element(By.ID, "f-password").send_keys(PASSWORD)
            button = d.find_element(By.CSS_SELECTOR, "form button[type=submit]")
            click_and_wait(d, button)
            SHOTS.mkdir(parents=True, exist_ok=True)
            root, period = fleet["root"], fleet["period"]
            pages = {"reports": f"/units/{root.id}/reports?period={period}",
                     "ranking": f"/units/{root.id}/ranking?period={period}"}
            for name, path in pages.items():
                d.get(server.url + path)
                assert d.find_elements(By.CSS_SELECTOR, "tr[data-unit]"), name
                assert d.execute_script(A11Y_JS) == [], name
                d.save_screenshot(str(SHOTS / f"{name}.png"))
            d.set_window_size(*PHONE)
            try:
                for name, path in pages.items():
                    d.get(server.url + path)
                    overflow = d.execute_script(
                        "return document.documentElement.scrollWidth - window.innerWidth")
                    assert overflow <= 1, f"{name} scrolls sideways by {overflow} px on a phone"
            finally:
                d.set_window_size(*DESKTOP)
    finally:
        stop_collector(server)
    if os.environ.get("KIEMKE_UPDATE_SCREENSHOTS") == "1":
        for name in ("reports", "ranking"):
            shutil.copyfile(SHOTS / f"{name}.png", REPO / "docs" / "console" / f"{name}.png")
