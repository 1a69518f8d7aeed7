"""The console in a real headless Chromium against a real collector (gunicorn, SQLite).

One collector and one browser for the module. The fleet is populate_fleet's (known
results of os-supported, stale machines included) in a tree with two districts; people
and the read-only token are made with the CLI. Every page is screenshotted at 1366x768
into $KIEMKE_SCREENSHOT_DIR (default build/console-screenshots); with
KIEMKE_UPDATE_SCREENSHOTS=1 they replace the ones in docs/console/.
Takes about a minute.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from compliance_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    OFFICE,
    ROOT,
    build_tree,
    make_app,
    populate_fleet,
)
from conftest import REPO, CollectorServer, start_collector, stop_collector
from console_browser import A11Y_JS, DESKTOP, PHONE, browser, click_and_wait
from selenium.webdriver.common.by import By
from sqlalchemy import create_engine, insert, select

from kiemke.collector.accounts.roles import cli_principal
from kiemke.collector.accounts.tokens import create_api_token
from kiemke.collector.accounts.users import add_user
from kiemke.collector.db.compliance_tables import compliance_daily

PASSWORD = "Mật-khẩu-thử-2026"
SHOTS = Path(os.environ.get("KIEMKE_SCREENSHOT_DIR", REPO / "build" / "console-screenshots"))
B_HOSTS = ("PC-LUCNAM-01", "PC-LUCNAM-CU")


class Site:
    def __init__(self, server: CollectorServer, units: dict[str, int], fleet: dict[str, str],
                 driver: Any, read_token: str) -> None:
        self.server, self.units, self.fleet, self.driver = server, units, fleet, driver
        self.read_token = read_token

    def api(self, path: str, token: str | None = None) -> requests.Response:
        return requests.get(self.server.url + path, timeout=10, headers={
            "Authorization": f"Bearer {token or self.server.admin_token}"})

    def login(self, name: str, password: str = PASSWORD) -> None:
        d = self.driver
        d.delete_all_cookies()
        d.get(self.server.url + "/login")
        d.find_element(By.ID, "f-name").send_keys(name)
        d.find_element(By.ID, "f-password").send_keys(password)
        click_and_wait(d, d.find_element(By.CSS_SELECTOR, "form button[type=submit]"))

    def open(self, path: str) -> str:
        self.driver.get(self.server.url + path)
        return self.driver.page_source

    def h1(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "h1").text

    def http(self) -> requests.Session:
        """A requests session carrying the browser's cookies (to read status codes)."""
        s = requests.Session()
        for c in self.driver.get_cookies():
            s.cookies.set(c["name"], c["value"])
        return s

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(SHOTS / f"{name}.png"))


def _history(db_url: str, units: dict[str, int]) -> None:
    """60 days of daily rows before today, drifting up towards today's figures: a trend
    for the charts (the maintenance pass writes today's row itself)."""
    engine = create_engine(db_url)
    with engine.begin() as conn:
        today = list(conn.execute(select(compliance_daily)))
        rows = []
        for row in today:
            for back in range(1, 61):
                denominator = row.__getattribute__("pass") + row.fail + row.unknown
                passed = max(0, row.__getattribute__("pass") - (back // 20))
                rows.append({**row._asdict(), "day": row.day - dt.timedelta(days=back),
                             "pass": passed, "fail": denominator - passed - row.unknown,
                             "ratio": passed / denominator if denominator else None})
        if rows:
            conn.execute(insert(compliance_daily), rows)
    engine.dispose()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("console")
    db_url = f"sqlite:///{tmp / 'kiemke.db'}"
    app = make_app(db_url, tmp, None)
    units = build_tree(app)
    fleet = populate_fleet(app, units)
    app.extensions["kiemke"].compliance.maintain()
    app.extensions["kiemke"].engine.dispose()
    _history(db_url, units)
    server = start_collector(db_url, tmp / "collector")
    try:
        # In-process (the CLI has its own tests in test_accounts.py): each CLI start
        # costs seconds on a loaded machine.
        engine = create_engine(db_url)
        with engine.begin() as conn:
            for name, role, unit, full in (
                    ("admin", "admin", None, "Quản trị"),
                    ("lan", "viewer", units[DISTRICT_A], "Nguyễn Thị Lan"),
                    ("minh", "manager", units[DISTRICT_A], "Trần Văn Minh")):
                add_user(conn, name, PASSWORD, role=role, unit=unit, display_name=full,
                         actor=cli_principal("tests"))
            _id, read_token = create_api_token(conn, "grafana-yen-dung", role="viewer",
                                               unit=units[DISTRICT_A],
                                               actor=cli_principal("tests"))
        engine.dispose()
        for driver in browser():
            yield Site(server, units, fleet, driver, read_token)
    finally:
        stop_collector(server)


def vi_pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.1f}".rstrip("0").rstrip(".").replace(".", ",") + "%"


def _cell(row: Any, figure: str) -> str:
    return row.find_element(By.CSS_SELECTOR, f'[data-figure="{figure}"]').text.strip()


def test_login_refuses_a_wrong_password_then_logs_in(site: Site) -> None:
    site.login("admin", "not the password")
    assert "/login" in site.driver.current_url
    error = site.driver.find_element(By.ID, "err-form").text
    assert "không đúng" in error
    site.login("admin")
    assert site.driver.current_url.rstrip("/") == site.server.url
    assert site.h1() == "Toàn hệ thống"
    cookie = next(c for c in site.driver.get_cookies() if c["name"] == "kiemke_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"


def test_every_page_shows_the_api_numbers(site: Site) -> None:
    site.login("admin")
    for unit_name in (ROOT, DISTRICT_A, OFFICE):
        uid = site.units[unit_name]
        site.open(f"/units/{uid}")
        assert site.h1() == unit_name
        api = site.api(f"/api/v1/compliance?unit={uid}").json()
        for rule in api["rules"]:
            row = site.driver.find_element(By.CSS_SELECTOR, f'tr[data-rule="{rule["rule"]}"]')
            assert _cell(row, "ratio") == vi_pct(rule["ratio"]), (unit_name, rule["rule"])
            assert _cell(row, "target") == vi_pct(rule["target"])
            for result in ("pass", "fail", "unknown", "exempt"):
                assert int(_cell(row, result)) == rule["counts"][result], (rule["rule"], result)
            assert int(_cell(row, "gap")) == rule["gap"]
            assert int(_cell(row, "stale")) == rule["stale"]
            for child in rule["children"]:
                cell = site.driver.find_element(
                    By.CSS_SELECTOR, f'tr[data-unit="{child["unit"]["id"]}"] '
                                     f'td[data-rule="{rule["rule"]}"]').text
                assert (vi_pct(child["ratio"]) in cell) if child["ratio"] is not None \
                    else cell == "–"
        shown = site.api(f"/api/v1/units/{uid}").json()["machines"]
        assert int(site.driver.find_element(By.CSS_SELECTOR, '[data-figure="active"]').text) \
            == shown["active"]
        assert int(site.driver.find_element(By.CSS_SELECTOR, '[data-figure="stale"]').text) \
            == shown["stale"]
    # the rule page: figures and the failing machines with their reasons
    uid = site.units[DISTRICT_A]
    site.open(f"/units/{uid}/rules/os-supported")
    api = site.api(f"/api/v1/compliance/rules/os-supported?unit={uid}").json()
    assert site.driver.find_element(By.CSS_SELECTOR, '[data-figure="ratio"]').text \
        == vi_pct(api["ratio"])
    assert int(site.driver.find_element(By.CSS_SELECTOR, '[data-figure="gap"]').text) \
        == api["gap"]
    failing = site.api(f"/api/v1/compliance/rules/os-supported/failing?unit={uid}").json()
    page = site.driver.page_source
    assert failing["total"] > 0
    assert site.driver.find_element(By.ID, "h-list").text.endswith(f": {failing['total']}")
    for item in failing["items"]:
        assert item["hostname"] in page and item["reason"] in page
    # the machine page: every result with its reason, not_applicable included
    machine_id = site.fleet["PC-YENDUNG-02"]
    site.open(f"/machines/{machine_id}")
    results = site.api(f"/api/v1/machines/{machine_id}/results").json()["results"]
    for r in results:
        row = site.driver.find_element(By.CSS_SELECTOR, f'tr[data-rule="{r["rule"]}"]')
        assert row.get_attribute("data-result") == r["result"]
        if r["reason"]:
            assert r["reason"] in row.text
        if r["result"] == "not_applicable":
            assert r["reason"] and "Không áp dụng" in r["reason"]


def test_viewer_of_one_district_sees_nothing_of_the_other(site: Site) -> None:
    a, b = site.units[DISTRICT_A], site.units[DISTRICT_B]
    site.login("lan")
    assert site.h1() == DISTRICT_A  # the home page is their own unit
    http = site.http()
    b_machine = site.fleet["PC-LUCNAM-01"]
    for path in (f"/units/{b}", f"/units/{b}/rules/os-supported", f"/machines/{b_machine}",
                 f"/units/{site.units[ROOT]}", f"/reports?unit_id={b}", f"/units/{b}/ranking"):
        assert http.get(site.server.url + path, timeout=10).status_code == 403, path
        site.open(path)
        assert site.h1() == "Không được phép"
    for path in ("/tokens", "/agents", "/users", "/audit"):  # a viewer's role has no such pages
        assert http.get(site.server.url + path, timeout=10).status_code == 403, path
    # the read-only token of district A: 403 for B, and B's machines in no list
    token = site.read_token
    assert site.api(f"/api/v1/compliance?unit={b}", token).status_code == 403
    assert site.api(f"/api/v1/machines/{b_machine}", token).status_code == 403
    assert site.api(f"/api/v1/units/{b}", token).status_code == 403
    listed = site.api("/api/v1/machines?limit=1000", token).json()["items"]
    assert listed and not {m["hostname"] for m in listed} & set(B_HOSTS)
    assert {u["id"] for u in site.api("/api/v1/units", token).json()["items"]} == {
        a, site.units[OFFICE]}
    whole = site.api("/api/v1/compliance", token).json()
    assert whole["unit"]["id"] == a  # without a unit: the token's own subtree
    assert site.api("/api/v1/waivers", token).status_code == 200
    denied = requests.post(site.server.url + "/api/v1/units", json={"name": "X"}, timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    # A's pages, reports, ranking and search never name B's machines
    for path in ("/", f"/units/{a}", f"/units/{a}/rules/os-supported",
                 f"/units/{a}/rules/os-supported?result=unknown", "/waivers?state=all",
                 f"/units/{a}/reports", f"/units/{a}/ranking", "/machines?q=PC"):
        page = site.open(path)
        for host in B_HOSTS:
            assert host not in page, (path, host)
        assert DISTRICT_B not in page, path


def test_a_form_without_its_csrf_token_is_refused_and_writes_nothing(site: Site) -> None:
    site.login("minh")
    machine_id = site.fleet["PC-YENDUNG-02"]
    before = site.api("/api/v1/waivers?state=all").json()["total"]
    site.open(f"/machines/{machine_id}")
    site.driver.execute_script(
        "document.querySelectorAll('form input[name=csrf_token]').forEach(e => e.remove())")
    _fill_waiver(site, "os-supported", "Máy thử nghiệm", _tomorrow())
    assert site.h1() == "Yêu cầu bị từ chối"
    assert "mã bảo mật" in site.driver.page_source
    http = site.http()
    resp = http.post(site.server.url + f"/machines/{machine_id}/waivers", timeout=10,
                     data={"machine": machine_id, "rule": "os-supported", "reason": "x",
                           "expires": _tomorrow()})
    assert resp.status_code == 400
    bad = http.post(site.server.url + "/logout", data={"csrf_token": "forged"}, timeout=10)
    assert bad.status_code == 400
    assert site.api("/api/v1/waivers?state=all").json()["total"] == before


def _tomorrow() -> str:
    return (dt.date.today() + dt.timedelta(days=30)).isoformat()


def _fill_waiver(site: Site, rule: str, reason: str, expires: str) -> None:
    d = site.driver
    from selenium.webdriver.support.ui import Select

    Select(d.find_element(By.ID, "w-rule")).select_by_value(rule) if rule else None
    d.find_element(By.ID, "w-reason").clear()
    d.find_element(By.ID, "w-reason").send_keys(reason)
    # a date input takes what a person types; set the value the way the picker does
    d.execute_script("document.getElementById('w-expires').value = arguments[0]", expires)
    click_and_wait(d, d.find_element(By.CSS_SELECTOR, "form.grid-form button[type=submit]"))


def test_waiver_flow_exempts_the_machine_then_revoke_restores_it_and_both_are_audited(
        site: Site) -> None:
    site.login("minh")
    machine_id = site.fleet["PC-YENDUNG-02"]
    uid = site.units[DISTRICT_A]
    before = site.api(f"/api/v1/compliance/rules/os-supported?unit={uid}").json()
    site.open(f"/machines/{machine_id}")
    _fill_waiver(site, "os-supported", "Máy chờ thanh lý, đã có quyết định", _tomorrow())
    row = site.driver.find_element(By.CSS_SELECTOR, 'tr[data-rule="os-supported"]')
    assert row.get_attribute("data-result") == "exempt"
    assert "Máy chờ thanh lý" in row.text
    result = next(r for r in site.api(f"/api/v1/machines/{machine_id}/results").json()[
        "results"] if r["rule"] == "os-supported")
    assert result["result"] == "exempt"
    after = site.api(f"/api/v1/compliance/rules/os-supported?unit={uid}").json()
    assert after["counts"]["exempt"] == before["counts"]["exempt"] + 1
    assert after["counts"]["fail"] == before["counts"]["fail"] - 1
    waiver = site.api(f"/api/v1/waivers?machine={machine_id}").json()["items"][0]
    assert waiver["author"] == "minh" and waiver["state"] == "active"
    site.shot("machine-exempt")
    site.open("/waivers")
    assert f'data-waiver="{waiver["id"]}"' in site.driver.page_source
    site.shot("waivers")
    click_and_wait(site.driver, site.driver.find_element(
        By.CSS_SELECTOR, f'tr[data-waiver="{waiver["id"]}"] button'))
    assert site.api(f"/api/v1/waivers?machine={machine_id}&state=revoked").json()["total"] == 1
    result = next(r for r in site.api(f"/api/v1/machines/{machine_id}/results").json()[
        "results"] if r["rule"] == "os-supported")
    assert result["result"] == "fail"
    entries = site.api("/api/v1/audit?action=waiver").json()["items"]
    assert [e["action"] for e in entries[:2]] == ["waiver.revoke", "waiver.add"]
    assert {e["actor"] for e in entries[:2]} == {"minh"}
    assert entries[1]["details"]["reason"] == "Máy chờ thanh lý, đã có quyết định"
    site.open("/audit")
    page = site.driver.page_source
    assert "cấp miễn trừ" in page and "thu hồi miễn trừ" in page and "minh" in page
    site.shot("audit")


def test_every_form_error_is_shown_next_to_its_field_and_writes_nothing(site: Site) -> None:
    site.login("minh")
    machine_id = site.fleet["PC-YENDUNG-01"]
    waivers_before = site.api("/api/v1/waivers?state=all").json()["total"]
    audit_before = site.api("/api/v1/audit").json()["total"]
    tokens_before = _count(site, "enrollment_tokens")
    site.open(f"/machines/{machine_id}")
    _fill_waiver(site, "", " ", "2001-01-01")
    for field, words in (("rule", "Chọn quy tắc"), ("reason", "Nhập lý do"),
                         ("expires", "từ hôm nay")):
        error = site.driver.find_element(By.ID, f"err-{field}")
        assert words in error.text
        control = site.driver.find_element(By.CSS_SELECTOR, f'[name="{field}"][aria-invalid]')
        assert control.get_attribute("aria-describedby") == f"err-{field}"
        # next to its field: in the same .field box
        box = control.find_element(By.XPATH, "./ancestor::div[contains(@class,'field')][1]")
        assert error in box.find_elements(By.CLASS_NAME, "field-error")
    site.driver.execute_script(
        "document.getElementById('h-waive').scrollIntoView({block: 'start'})")
    site.shot("form-errors")
    site.open("/tokens")
    site.driver.find_element(By.ID, "t-days").send_keys("9999")
    site.driver.find_element(By.ID, "t-max_uses").send_keys("nhiều")
    click_and_wait(site.driver, site.driver.find_element(By.CSS_SELECTOR, "form.grid-form button"))
    assert "Chọn một đơn vị" in site.driver.find_element(By.ID, "err-unit").text
    assert "365" in site.driver.find_element(By.ID, "err-days").text
    assert "100000" in site.driver.find_element(By.ID, "err-max_uses").text
    site.open("/account/password")
    site.driver.find_element(By.ID, "f-current").send_keys("sai")
    site.driver.find_element(By.ID, "f-new").send_keys("ngan")
    site.driver.find_element(By.ID, "f-again").send_keys("khac")
    click_and_wait(site.driver, site.driver.find_element(By.CSS_SELECTOR, "form button.primary"))
    assert "hiện tại" in site.driver.find_element(By.ID, "err-current").text
    assert "không giống" in site.driver.find_element(By.ID, "err-again").text
    assert site.api("/api/v1/waivers?state=all").json()["total"] == waivers_before
    assert site.api("/api/v1/audit").json()["total"] == audit_before
    assert _count(site, "enrollment_tokens") == tokens_before
    assert _count(site, "users") == 3


def _count(site: Site, table: str) -> int:
    engine = create_engine(site.server.db_url)
    try:
        with engine.connect() as conn:
            # table names are the fixed ones of this module
            return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())  # noqa: S608
    finally:
        engine.dispose()


def _pages(site: Site) -> dict[str, str]:
    a = site.units[DISTRICT_A]
    return {"overview-root": "/", "overview-district": f"/units/{a}",
            "rule": f"/units/{site.units[ROOT]}/rules/os-supported",
            "machine": f"/machines/{site.fleet['PC-YENDUNG-02']}", "waivers": "/waivers",
            "tokens": "/tokens", "agents": "/agents", "audit": "/audit", "people": "/users",
            # reports.png and ranking.png come from tests/test_console_reports.py, on a
            # fleet with a closed daily history (this one has none: the pages say so).
            "reports-no-history": f"/units/{site.units[ROOT]}/reports",
            "password": "/account/password",
            "search": "/machines?q=PC-TAN"}


def test_pages_pass_accessibility_basics_fit_a_phone_and_are_screenshotted(site: Site) -> None:
    d = site.driver
    d.delete_all_cookies()
    site.open("/login")
    assert d.execute_script(A11Y_JS) == []
    site.shot("login")
    site.login("admin")
    problems: dict[str, list[str]] = {}
    for name, path in _pages(site).items():
        site.open(path)
        assert d.find_elements(By.TAG_NAME, "h1"), name
        found = d.execute_script(A11Y_JS)
        if found:
            problems[name] = found
        site.shot(name)
    assert problems == {}
    d.set_window_size(*PHONE)
    try:
        for name, path in _pages(site).items():
            site.open(path)
            overflow = d.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name} scrolls sideways by {overflow} px on a phone"
        site.open(f"/units/{site.units[DISTRICT_A]}")
        site.shot("phone-overview")
    finally:
        d.set_window_size(*DESKTOP)
    if os.environ.get("KIEMKE_UPDATE_SCREENSHOTS") == "1":
        target = REPO / "docs" / "console"
        target.mkdir(parents=True, exist_ok=True)
        for png in SHOTS.glob("*.png"):
            shutil.copyfile(png, target / png.name)


def test_english_switch_and_local_time(site: Site) -> None:
    site.login("admin")
    site.open(f"/units/{site.units[DISTRICT_A]}")
    click_and_wait(site.driver, site.driver.find_element(By.LINK_TEXT, "English"))
    assert site.driver.find_element(By.ID, "h-rules").text == "Rules against their targets"
    assert site.driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    page = site.open(f"/machines/{site.fleet['PC-YENDUNG-02']}")
    assert "Asia/Ho_Chi_Minh" in page
    shown = re.findall(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", site.driver.find_element(
        By.ID, "h-summary").find_element(By.XPATH, "..").text)
    assert shown  # local time, ISO-like in English
    click_and_wait(site.driver, site.driver.find_element(By.LINK_TEXT, "Tiếng Việt"))
    assert site.driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"


def test_logout_ends_the_session(site: Site) -> None:
    site.login("lan")
    http = site.http()
    assert http.get(site.server.url + "/", timeout=10).status_code == 200
    click_and_wait(site.driver, site.driver.find_element(By.CSS_SELECTOR, ".who form button"))
    assert "/login" in site.driver.current_url
    # the old cookie no longer opens anything: the session row is gone
    resp = http.get(site.server.url + "/", timeout=10, allow_redirects=False)
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]

