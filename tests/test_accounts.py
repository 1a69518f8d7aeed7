"""People, roles, sessions, lockout, scoped API tokens and the audit log (no browser:
tests/test_console_browser.py drives the pages in Chromium). About 30 s."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
from compliance_helpers import DISTRICT_A, DISTRICT_B, build_tree, make_app, populate_fleet
from conftest import REPO, collector_cmd

from kiemke.collector.accounts.roles import cli_principal
from kiemke.collector.accounts.tokens import create_api_token
from kiemke.collector.accounts.users import LOCK_AFTER, add_user
from kiemke.collector.console.i18n import VI
from kiemke.collector.db.engine import write_transaction

PASSWORD = "Mật-khẩu-thử-2026"


@pytest.fixture
def app(sqlite_url, tmp_path):
    application = make_app(sqlite_url, tmp_path, None)
    yield application
    application.extensions["kiemke"].engine.dispose()


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _login(client, name: str, password: str = PASSWORD, **kwargs):
    token = _csrf(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"name": name, "password": password,
                                       "csrf_token": token}, **kwargs)


def _add(app, name: str, role: str = "viewer", unit=None) -> None:
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        add_user(conn, name, PASSWORD, role=role, unit=unit, actor=cli_principal("tests"))


def test_users_cli_add_list_passwd_disable_and_every_change_is_audited(tmp_path: Path) -> None:
    env = {"KIEMKE_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
           "KIEMKE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([*collector_cmd(), *args], env=env, cwd=REPO, input=stdin,
                              capture_output=True, text=True, timeout=60)

    assert cli("db", "upgrade").returncode == 0
    unit = cli("units", "add", "LĐLĐ huyện Yên Dũng", "--code", "YD").stdout.strip()
    short = cli("users", "add", "lan", "--role", "viewer", "--password-stdin", stdin="ngắn\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    done = cli("users", "add", "Lan.Nguyen", "--role", "viewer", "--unit", "YD",
               "--display-name", "Nguyễn Thị Lan", "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    listed = cli("users", "list").stdout
    assert "lan.nguyen" in listed and "Nguyễn Thị Lan" in listed and "viewer" in listed
    assert "LĐLĐ huyện Yên Dũng" in listed
    assert cli("users", "passwd", "lan.nguyen", "--password-stdin",
               stdin="Mật-khẩu-mới-2027\n").returncode == 0
    assert cli("users", "disable", "lan.nguyen").returncode == 0
    token = cli("read-tokens", "create", "grafana", "--unit", unit)
    assert token.returncode == 0 and len(token.stdout.strip()) == 43
    from sqlalchemy import create_engine, select

    from kiemke.collector.db.account_tables import audit_log

    engine = create_engine(env["KIEMKE_DATABASE_URL"])
    with engine.connect() as conn:
        entries = [(r.actor_kind, r.action) for r in conn.execute(
            select(audit_log).order_by(audit_log.c.id))]
        actors = {r.actor for r in conn.execute(select(audit_log))}
    engine.dispose()
    assert entries == [("cli", "unit.add"), ("cli", "user.add"), ("cli", "user.password"),
                       ("cli", "user.disable"), ("cli", "token.add")]
    assert all(a.startswith("cli:") for a in actors)


def test_lockout_after_repeated_failures_and_a_new_password_lifts_it(app) -> None:
    _add(app, "lan")
    from kiemke.collector.accounts.users import UserError

    with pytest.raises(UserError) as taken:  # login names are unique, case and NFC folded
        _add(app, "LAN")
    assert taken.value.field == "name" and taken.value.status == 409
    client = app.test_client()
    for _ in range(LOCK_AFTER - 1):
        assert _login(client, "lan", "sai-mat-khau").status_code == 401
    resp = _login(client, "lan", "sai-mat-khau")
    assert resp.status_code == 401 and "tạm khóa 15 phút" in resp.get_data(as_text=True)
    # locked: the right password does not open it either
    assert _login(client, "lan").status_code == 401
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        from kiemke.collector.accounts.users import set_password

        set_password(conn, "lan", PASSWORD, actor=cli_principal("tests"))
    assert _login(client, "lan").status_code == 302


def test_failed_logins_from_one_address_are_rate_limited(app, monkeypatch) -> None:
    from kiemke.collector.accounts import throttle

    monkeypatch.setattr(throttle, "MAX_FAILURES", 4)  # the rule, not the number, is tested
    client = app.test_client()
    for i in range(throttle.MAX_FAILURES):
        assert _login(client, f"nobody{i}", "x").status_code == 401
    resp = _login(client, "nobody", "x")
    assert resp.status_code == 429 and "15 phút" in resp.get_data(as_text=True)


def test_session_cookie_flags_logout_disable_and_password_change_end_sessions(app) -> None:
    _add(app, "lan")
    client = app.test_client()
    resp = _login(client, "lan", headers={"X-Forwarded-Proto": "https"})
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if "kiemke_session=" in c)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    plain = app.test_client()
    cookie = next(c for c in _login(plain, "lan").headers.getlist("Set-Cookie")
                  if "kiemke_session=" in c)
    assert "Secure" not in cookie  # plain HTTP on loopback: a Secure cookie would be lost
    assert client.get("/").status_code == 200
    # a password change here ends the other session, keeps this one
    page = client.get("/account/password").get_data(as_text=True)
    resp = client.post("/account/password", data={
        "csrf_token": _csrf(page), "current": PASSWORD, "new": "Mật-khẩu-mới-2027",
        "again": "Mật-khẩu-mới-2027"})
    assert resp.status_code == 200
    assert client.get("/").status_code == 200
    assert plain.get("/").status_code == 302
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        from kiemke.collector.accounts.users import disable_user

        disable_user(conn, "lan", actor=cli_principal("tests"))
    assert client.get("/").status_code == 302


def test_tokens_scopes_and_the_audit_api(app) -> None:
    units = build_tree(app)
    fleet = populate_fleet(app, units)
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        _id, read_a = create_api_token(conn, "grafana", role="viewer", unit=units[DISTRICT_A],
                                       actor=cli_principal("tests"))
        _id, admin = create_api_token(conn, "scripts", role="admin",
                                      actor=cli_principal("tests"))
    client = app.test_client()
    a = {"Authorization": f"Bearer {read_a}"}
    adm = {"Authorization": f"Bearer {admin}"}
    assert client.get(f"/api/v1/compliance?unit={units[DISTRICT_B]}", headers=a).status_code \
        == 403
    body = client.get(f"/api/v1/machines/{fleet['PC-LUCNAM-01']}", headers=a).get_json()
    assert body["error"] == "outside_scope" and body["field"] == "machine_id"
    waiver = {"machine_id": fleet["PC-YENDUNG-02"], "rule": "os-supported",
              "reason": "Máy chờ thanh lý", "expires_at": "2099-01-31"}
    refused = client.post("/api/v1/waivers", json=waiver, headers=a)
    assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"
    assert client.get("/api/v1/audit", headers=a).status_code == 403  # viewers: no audit
    made = client.post("/api/v1/waivers", json={**waiver, "author": "anyone at all"},
                       headers=adm)
    assert made.status_code == 201 and made.get_json()["author"] == "token:scripts"
    entries = client.get("/api/v1/audit?action=waiver", headers=adm).get_json()
    assert entries["total"] == 1
    entry = entries["items"][0]
    assert (entry["actor"], entry["action"], entry["unit_id"]) == (
        "token:scripts", "waiver.add", units[DISTRICT_A])
    assert entry["details"]["author_given"] == "anyone at all"
    bad = client.get("/api/v1/audit?since=yesterday", headers=adm)
    assert bad.status_code == 400 and bad.get_json()["field"] == "since"
    doc = client.get("/api/v1/openapi.json").get_json()
    assert "get" in doc["paths"]["/api/v1/audit"]


def test_a_viewer_page_post_needs_the_right_role_and_csrf(app) -> None:
    units = build_tree(app)
    _add(app, "lan", "viewer", units[DISTRICT_A])
    client = app.test_client()
    _login(client, "lan")
    page = client.get("/waivers").get_data(as_text=True)
    assert "Cấp miễn trừ" not in page  # no form for a viewer
    resp = client.post("/waivers", data={"csrf_token": _csrf(page), "machine": "x",
                                         "rule": "os-supported", "reason": "x",
                                         "expires": "2099-01-01"})
    assert resp.status_code == 403


def _template_texts() -> set[str]:
    root = REPO / "kiemke" / "collector" / "console"
    found: set[str] = set()
    for html in (root / "templates").glob("*.html"):
        found |= set(re.findall(r'''\b_\(\s*"([^"]+)"''', html.read_text("utf-8")))
        found |= set(re.findall(r"""\b_\(\s*'([^']+)'""", html.read_text("utf-8")))
    for py in root.glob("*.py"):
        for node in ast.walk(ast.parse(py.read_text("utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_" and \
                    node.args and isinstance(node.args[0], ast.Constant):
                found.add(node.args[0].value)
    return found


def test_every_console_text_has_its_vietnamese() -> None:
    texts = _template_texts()
    assert len(texts) > 150
    assert sorted(t for t in texts if t not in VI) == []
