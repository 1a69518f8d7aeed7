"""The kiemke-collector CLI: units, tokens, agents, admin tokens, errors for people."""

from __future__ import annotations

import subprocess

import pytest
from conftest import REPO, collector_cmd
from reports import UNIT_NAME


@pytest.fixture
def cli(tmp_path, sqlite_url, monkeypatch, capsys):
    """Runs kiemke-collector's main() in-process (a subprocess costs ~1 s of imports)."""
    from kiemke.collector.cli import main

    monkeypatch.setenv("KIEMKE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("KIEMKE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("KIEMKE_CONFIG", raising=False)

    def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        assert code == expect, err
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def test_cli_subprocess_utf8(tmp_path, sqlite_url):
    """The real console script under a C locale keeps Vietnamese names intact."""
    env = {"KIEMKE_DATABASE_URL": sqlite_url, "KIEMKE_DATA_DIR": str(tmp_path / "data"),
           "PATH": "/usr/bin:/bin", "LANG": "C"}
    from kiemke.collector.db.migrate import upgrade

    upgrade(sqlite_url)
    result = subprocess.run([*collector_cmd(), "units", "add", UNIT_NAME], env=env, cwd=REPO,
                            capture_output=True, text=True, encoding="utf-8", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    assert f"created unit 1: {UNIT_NAME}" in result.stderr


def test_units_tokens_agents(cli):
    assert cli("units", "list", expect=2).stderr.count("db upgrade") == 1
    cli("db", "upgrade")
    root = cli("units", "add", UNIT_NAME, "--code", "LDLD-BG").stdout.strip()
    child = cli("units", "add", "Ban Tuyên giáo", "--parent", "LDLD-BG").stdout.strip()
    assert (root, child) == ("1", "2")
    listing = cli("units", "list").stdout
    assert f"{UNIT_NAME} / Ban Tuyên giáo" in listing
    err = cli("units", "add", "Ban Tuyên giáo", "--parent", "1", expect=2).stderr
    assert "already exists" in err
    err = cli("units", "add", "X", "--parent", "Không tồn tại", expect=2).stderr
    assert "units list" in err

    token = cli("tokens", "create", "--unit", f"{UNIT_NAME} / Ban Tuyên giáo",
                "--expires", "30d", "--max-uses", "5").stdout.strip()
    assert len(token) == 43
    tokens = cli("tokens", "list").stdout
    assert "Ban Tuyên giáo" in tokens and token not in tokens and "active" in tokens
    cli("tokens", "revoke", "1")
    assert "revoked" in cli("tokens", "list").stdout
    assert "no active token" in cli("tokens", "revoke", "1", expect=2).stderr
    assert "not a duration" in cli("tokens", "create", "--unit", "1", "--expires", "soon",
                                   expect=2).stderr

    admin = cli("admin-tokens", "create", "Grafana").stdout.strip()
    assert len(admin) == 43 and admin not in cli("admin-tokens", "list").stdout
    assert "agent" in cli("agents", "revoke", "nope", expect=2).stderr


def test_config_file_errors_name_file_and_line(cli, tmp_path):
    bad = tmp_path / "collector.env"
    bad.write_text("# kiemke\nKIEMKE_STALE_AFTER=3d\nKIEMKE_MAX_BODY_BYTES=lots\n", "utf-8")
    err = cli("--config", str(bad), "db", "upgrade", expect=2).stderr
    assert f"{bad}, line 3" in err and "KIEMKE_MAX_BODY_BYTES" not in err.split("line 3")[0]
    bad.write_text("KIEMKE_STALE=3d\n", "utf-8")
    err = cli("--config", str(bad), "db", "upgrade", expect=2).stderr
    assert f"{bad}, line 1" in err and "unknown setting" in err


def test_serve_refuses_unmigrated_database(cli):
    err = cli("serve", "--bind", "127.0.0.1:1", expect=2).stderr
    assert "kiemke-collector db upgrade" in err


def test_compliance_commands_refuse_unmigrated_database_in_one_line(cli):
    # The compliance commands use the core CLI's database check: the error is the one
    # main() reports (exit 2, one line), not a traceback.
    for command in (("maintain",), ("rules", "reevaluate")):
        err = cli(*command, expect=2).stderr
        assert "kiemke-collector db upgrade" in err
        assert "Traceback" not in err


def test_the_cli_does_not_import_prometheus_client_before_serve():
    """prometheus_client chooses per-process or multiprocess counters when it is first
    imported; `serve` sets PROMETHEUS_MULTIPROC_DIR before gunicorn forks, so building
    the CLI (every command group) must not import it, or the workers' counters would not
    be merged on /metrics."""
    import sys

    code = ("import sys\nfrom kiemke.collector.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in sys.modules if m.startswith('prometheus_client')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout
