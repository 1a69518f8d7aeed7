"""CollectorConfig: environment, config file, defaults, durations and sizes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kiemke.collector.config import CollectorConfig, ConfigError, parse_duration, parse_size


def test_defaults():
    cfg = CollectorConfig.from_env(environ={})
    assert cfg.max_body_bytes == 1024 * 1024
    assert cfg.stale_after == timedelta(days=3)
    assert cfg.timezone == "Asia/Ho_Chi_Minh"
    assert cfg.rules_dir.name == "rules"
    assert cfg.database_url == f"sqlite:///{cfg.data_dir / 'kiemke.db'}"


def test_env_overrides_file(tmp_path: Path):
    env_file = tmp_path / "collector.env"
    env_file.write_text('KIEMKE_STALE_AFTER="12h"\nKIEMKE_TIMEZONE=Asia/Bangkok\n'
                        "KIEMKE_DATA_DIR=/srv/kiemke\n", "utf-8")
    cfg = CollectorConfig.from_env(environ={"KIEMKE_TIMEZONE": "UTC",
                                            "KIEMKE_MAX_BODY_BYTES": "2MiB"},
                                   config_file=env_file)
    assert cfg.stale_after == timedelta(hours=12)
    assert cfg.timezone == "UTC"
    assert cfg.max_body_bytes == 2 * 1024 * 1024
    assert cfg.data_dir == Path("/srv/kiemke")
    assert cfg.database_url == "sqlite:////srv/kiemke/kiemke.db"


def test_bad_values_say_where():
    with pytest.raises(ConfigError, match="KIEMKE_TIMEZONE.*Asia/Ho_Chi_Minh"):
        CollectorConfig.from_env(environ={"KIEMKE_TIMEZONE": "Hà Nội"})
    with pytest.raises(ConfigError, match="KIEMKE_STALE_AFTER"):
        CollectorConfig.from_env(environ={"KIEMKE_STALE_AFTER": "three days"})


@pytest.mark.parametrize(("text", "seconds"), [("3d", 259200), ("12h", 43200), ("90m", 5400),
                                               ("45", 45), ("2w", 1209600)])
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


def test_parse_size():
    assert parse_size("1048576") == 1048576
    assert parse_size("512KiB") == 524288
    assert parse_size("1 MiB") == 1048576
    with pytest.raises(ValueError):
        parse_size("1 GB")
