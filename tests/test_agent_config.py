"""Agent configuration: file + environment, and messages that name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiemke.agent.config import ConfigError, load_config


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "agent.conf"
    p.write_text(text, encoding="utf-8")
    return p


def test_file_values_and_env_override(tmp_path):
    p = _write(tmp_path, """
[agent]
server = https://kiemke.bacgiang.gov.vn/
unit = Liên đoàn Lao động tỉnh Bắc Giang
interval = 1800
spool_max_reports = 20
verify_tls = no

[network]
internet_probes = https://www.gov.vn, tcp://1.1.1.1:53
dns_names = kiemke.bacgiang.gov.vn
""")
    cfg = load_config(p, env={"KIEMKE_INTERVAL": "60", "KIEMKE_NETWORK_PROBE_TIMEOUT": "1.5"})
    assert cfg.server == "https://kiemke.bacgiang.gov.vn"
    assert cfg.unit == "Liên đoàn Lao động tỉnh Bắc Giang"
    assert cfg.interval == 60.0  # environment wins
    assert cfg.probe_timeout == 1.5
    assert cfg.spool_max_reports == 20
    assert cfg.verify_tls is False
    assert cfg.internet_probes == ["https://www.gov.vn", "tcp://1.1.1.1:53"]
    assert cfg.source == p


def test_bom_from_notepad_is_accepted(tmp_path):
    p = tmp_path / "agent.conf"
    p.write_bytes("\ufeff[agent]\nunit = Phòng Tổ chức\n".encode())
    assert load_config(p, env={}).unit == "Phòng Tổ chức"


def test_bad_number_names_file_and_key(tmp_path):
    p = _write(tmp_path, "[agent]\ninterval = hourly\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, env={})
    msg = str(exc.value)
    assert f"{p}, line 2: [agent] interval" in msg and "'hourly'" in msg


def test_unknown_key_is_named(tmp_path):
    p = _write(tmp_path, "[agent]\nintervall = 60\n")
    with pytest.raises(ConfigError, match=r"line 2: unknown setting \[agent\] intervall"):
        load_config(p, env={})


def test_syntax_error_names_line(tmp_path):
    p = _write(tmp_path, "[agent]\nserver = https://x.example\nthis line is wrong\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p, env={})
    assert f"{p}, line 3" in str(exc.value)


def test_bad_env_value_names_variable(tmp_path):
    with pytest.raises(ConfigError, match="KIEMKE_RETRIES"):
        load_config(tmp_path / "missing.conf", env={"KIEMKE_RETRIES": "many"})


def test_missing_file_required_by_cli(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.conf", env={}, must_exist=True)


def test_server_scheme_checked(tmp_path):
    with pytest.raises(ConfigError, match="must start with http:// or https://"):
        load_config(tmp_path / "x.conf", env={"KIEMKE_SERVER": "kiemke.example.gov.vn"})


def test_cli_reports_config_error_with_exit_2(tmp_path, capsys):
    from kiemke.agent.cli import main

    p = _write(tmp_path, "[agent]\nretries = -x\n")
    assert main(["--config", str(p), "status"]) == 2
    err = capsys.readouterr().err
    assert str(p) in err and "[agent] retries" in err


def test_shipped_example_config_is_valid():
    repo = Path(__file__).resolve().parent.parent
    cfg = load_config(repo / "deploy" / "agent.example.conf", env={})
    assert cfg.server == "https://kiemke.bacgiang.gov.vn"
    assert cfg.unit and "Bắc Giang" in cfg.unit
    assert cfg.gateway_check == "tcp:53" and cfg.full_interval == 86400


def test_signature_age_is_read_as_days(tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text("[antivirus]\nmax_signature_age_days = 3.5\n", encoding="utf-8")
    assert load_config(conf, env={}).max_signature_age_days == 3.5
    conf.write_text("[antivirus]\nmax_signature_age_days = bảy\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="a number of days"):
        load_config(conf, env={})
