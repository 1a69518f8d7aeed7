"""/metrics from the database: unit roll-up over 3 levels, active vs stale, agent versions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from collector_helpers import add_units, enroll_agent, enrollment_token
from prometheus_client.parser import text_string_to_metric_families
from reports import UNIT_NAME, make_report, new_machine_id
from sqlalchemy import text, update

from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines
from kiemke.collector.timeutil import utcnow

PROVINCE = UNIT_NAME
DISTRICT = f"{UNIT_NAME} / LĐLĐ huyện Yên Thế"
OFFICE = f"{DISTRICT} / Công đoàn xã Bố Hạ"
OTHER = "Công đoàn Viên chức tỉnh"


def scrape(client) -> dict[tuple[str, tuple], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(resp.get_data(as_text=True))
            for s in f.samples}


def unit_info(samples) -> dict[str, dict[str, str]]:
    """path -> the labels of its kiemke_unit_info series."""
    return {dict(k[1])["path"]: dict(k[1]) for k in samples if k[0] == "kiemke_unit_info"}


def machines_metric(samples, unit, status):
    """{parent path: machines} for the unit `unit` (a path), joined like a dashboard."""
    info = unit_info(samples)
    paths = {labels["unit_id"]: path for path, labels in info.items()}
    return {paths.get(info[unit]["parent_id"], ""): v for k, v in samples.items()
            if k[0] == "kiemke_machines" and dict(k[1])["unit_id"] == info[unit]["unit_id"]
            and dict(k[1])["status"] == status}


def report_from(app, client, unit_id, hostname, version="0.1.0"):
    mid = new_machine_id()
    headers = enroll_agent(client, enrollment_token(app, unit_id), mid, hostname)
    report = make_report(mid, hostname=hostname, identity={"agent_version": version})
    assert client.post("/api/v1/reports", json=report, headers=headers).status_code == 202
    return mid


def test_machines_roll_up_and_stale(app, client):
    province, district, office = add_units(app, UNIT_NAME, "LĐLĐ huyện Yên Thế",
                                           "Công đoàn xã Bố Hạ")
    other = add_units(app, "Công đoàn Viên chức tỉnh")[0]
    report_from(app, client, province, "TINH-01")
    report_from(app, client, district, "HUYEN-01", version="0.2.0")
    report_from(app, client, office, "XA-01")
    stale_mid = report_from(app, client, office, "XA-02")
    report_from(app, client, other, "VC-01", version="0.2.0")
    stale_after = app.extensions["kiemke"].config.stale_after
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        conn.execute(update(machines).where(machines.c.machine_id == stale_mid)
                     .values(last_seen=utcnow() - stale_after - timedelta(minutes=1)))

    s = scrape(client)
    ids = {PROVINCE: province, DISTRICT: district, OFFICE: office, OTHER: other}
    expected = {
        # unit: (parent, level, active, stale); a unit includes its descendants
        PROVINCE: (None, "0", 3, 1),
        DISTRICT: (PROVINCE, "1", 2, 1),
        OFFICE: (DISTRICT, "2", 1, 1),
        OTHER: (None, "0", 1, 0),
    }
    for unit, (parent, level, active, stale) in expected.items():
        unit_id = str(ids[unit])
        assert s[("kiemke_machines", (("status", "active"), ("unit_id", unit_id)))] == active
        assert s[("kiemke_machines", (("status", "stale"), ("unit_id", unit_id)))] == stale
        info = (("level", level), ("name", unit.rsplit(" / ", 1)[-1]),
                ("parent_id", "" if parent is None else str(ids[parent])), ("path", unit),
                ("unit_id", unit_id))
        assert s[("kiemke_unit_info", info)] == 1, unit
    assert len([k for k in s if k[0] == "kiemke_machines"]) == 8
    assert len([k for k in s if k[0] == "kiemke_unit_info"]) == 4
    assert s[("kiemke_agent_version_machines", (("version", "0.1.0"),))] == 3
    assert s[("kiemke_agent_version_machines", (("version", "0.2.0"),))] == 2
    assert s[("kiemke_database_up", ())] == 1
    assert s[("kiemke_build_info", (("version", "0.1.0"),))] == 1
    assert 0 < s[("kiemke_scrape_duration_seconds", ())] < 5


def test_empty_unit_reports_zero(app, client):
    [unit_id] = add_units(app, UNIT_NAME)
    s = scrape(client)
    assert s[("kiemke_machines", (("status", "active"), ("unit_id", str(unit_id))))] == 0


def test_database_down(app, client, tmp_path):
    app.extensions["kiemke"].engine.dispose()
    db_file = tmp_path / "kiemke.db"
    db_file.unlink()
    db_file.mkdir()  # the database path is now a directory: SQLite cannot open it
    s = scrape(client)
    assert s[("kiemke_database_up", ())] == 0
    assert not [k for k in s if k[0] == "kiemke_machines"]


def test_metric_provider_extension_point(app, client):
    from prometheus_client.core import GaugeMetricFamily

    def provider(conn, now):
        yield GaugeMetricFamily("kiemke_test_extra", "from a plugged-in provider", value=7)

    app.extensions["kiemke"].metric_providers.add("test_extra", provider)
    assert scrape(client)[("kiemke_test_extra", ())] == 7


def provider_series(samples, name):
    return {dict(k[1])["provider"]: v for k, v in samples.items() if k[0] == name}


def test_every_provider_reports_its_success_and_duration(app, client):
    s = scrape(client)
    names = app.extensions["kiemke"].metric_providers.names()
    assert {"units", "machines", "agent_versions", "rule_compliance", "depreciation"} \
        <= set(names)
    assert provider_series(s, "kiemke_metrics_provider_success") == dict.fromkeys(names, 1)
    durations = provider_series(s, "kiemke_metrics_provider_duration_seconds")
    assert set(durations) == set(names) and all(0 <= v < 5 for v in durations.values())


@pytest.mark.parametrize("failure", ["exception", "sql"])
def test_a_failing_provider_costs_only_its_own_families(db_url, tmp_path, monkeypatch,
                                                        failure):
    from compliance_helpers import make_app
    from prometheus_client.core import GaugeMetricFamily

    app = make_app(db_url, tmp_path, monkeypatch)
    client = app.test_client()
    office = add_units(app, UNIT_NAME, "LĐLĐ huyện Yên Thế", "Công đoàn xã Bố Hạ")[2]
    report_from(app, client, office, "PC-BOHA-01")

    def broken(conn, now):
        yield GaugeMetricFamily("kiemke_test_broken", "never exported", value=1)
        if failure == "sql":  # a failed statement (aborts a PostgreSQL transaction)
            conn.execute(text("SELECT no_such_column FROM machines"))
        raise RuntimeError("this provider is broken")

    def after(conn, now):
        n = conn.execute(text("SELECT count(*) FROM machines")).scalar_one()
        yield GaugeMetricFamily("kiemke_test_after", "read after the failure", value=n)

    ext = app.extensions["kiemke"]
    ext.metric_providers.add("broken", broken)
    ext.metric_providers.add("after", after)
    s = scrape(client)
    success = provider_series(s, "kiemke_metrics_provider_success")
    assert success.pop("broken") == 0
    assert success and all(v == 1 for v in success.values()), success
    assert s[("kiemke_database_up", ())] == 1
    assert not [k for k in s if k[0] == "kiemke_test_broken"]
    assert s[("kiemke_test_after", ())] == 1
    assert machines_metric(s, OFFICE, "active") == {DISTRICT: 1}
    assert any(k[0] == "kiemke_rule_compliance_ratio" for k in s)
    assert "broken" in provider_series(s, "kiemke_metrics_provider_duration_seconds")
