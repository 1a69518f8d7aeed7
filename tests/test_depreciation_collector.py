"""Depreciation per machine through the collector (engine arithmetic, stored dates, SQL
aggregates at month boundaries) on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from assets_helpers import (
    asset_app_fixture,  # noqa: F401 - provides the asset_app fixture
    depreciation_rows,
    do_import,
    machine_report,
    report_machine,
    write_csv,
)
from collector_helpers import add_units
from reports import UNIT_NAME
from sqlalchemy import insert, select

from kiemke.collector.assets import depreciation as dep
from kiemke.collector.db.asset_tables import machine_depreciation
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.timeutil import utcnow
from kiemke.compliance import depreciation as engine
from kiemke.compliance.config import DEFAULT_DEPRECIATION

D = dt.date


def test_values_at_month_boundaries(asset_app, tmp_path):
    app, client = asset_app, asset_app.test_client()
    unit = add_units(app, UNIT_NAME)[0]
    mid = report_machine(app, client, unit, "PC-TAIVU-01", serial="7XK2P53")
    do_import(app, write_csv(tmp_path / "a.csv", [
        ",7XK2P53,,desktop_computer,31/01/2020,60.000.000,,Máy tính Tài vụ"]))
    row = depreciation_rows(app)[mid]
    assert (row.start_date, row.fully_depreciated_on, row.overdue_from, row.cost,
            row.useful_life_years, row.estimated) == (
        D(2020, 1, 31), D(2025, 1, 1), D(2026, 1, 1), 60_000_000, 5, False)
    config = app.extensions["kiemke"].assets.config
    expected = {
        # day: (status, book value, (age years, months), replacement year)
        D(2020, 1, 31): ("in_service", 60_000_000, (0, 0), 2025),
        D(2020, 2, 29): ("in_service", 59_000_000, (0, 1), 2025),  # January charged
        D(2024, 12, 31): ("in_service", 1_000_000, (4, 11), 2025),
        D(2025, 1, 1): ("fully_depreciated", 0, (4, 11), 2025),
        D(2025, 1, 31): ("fully_depreciated", 0, (5, 0), 2025),
        D(2025, 12, 31): ("fully_depreciated", 0, (5, 11), 2025),
        D(2026, 1, 1): ("overdue", 0, (5, 11), 2026),
        D(2027, 6, 1): ("overdue", 0, (7, 4), 2027),
    }
    with app.extensions["kiemke"].engine.connect() as conn:
        for day, (status, value, age, year) in expected.items():
            view = dep.on_day(row, day, config)
            assert (view.status, view.book_value, (view.age_years, view.age_months),
                    view.replacement_year) == (status, value, age, year), day
            agg = dep.aggregate(conn, day)
            assert agg.by_status == {(unit, (status, False)): 1}, day
            assert agg.by_age == {(unit, str(age[0])): 1}, day
            assert agg.forecast == ({(unit, year): 1} if year <= day.year + 5 else {}), day


def test_sql_age_buckets_equal_the_engine(asset_app):
    """Whole years of age from SQL integer keys == engine.age_months // 12, including
    29 February starts, month ends and the day before an anniversary."""
    app = asset_app
    unit = add_units(app, UNIT_NAME)[0]
    starts = [D(2016, 2, 29), D(2020, 2, 29), D(2019, 2, 28), D(2019, 3, 1), D(2020, 1, 31),
              D(2021, 12, 31), D(2022, 6, 15), D(2014, 6, 16), D(2023, 11, 30)]
    days = [D(2021, 2, 27), D(2021, 2, 28), D(2024, 2, 28), D(2024, 2, 29), D(2025, 2, 28),
            D(2024, 6, 14), D(2024, 6, 15), D(2024, 6, 16), D(2024, 12, 31), D(2025, 3, 1)]
    now = utcnow()
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        for i, start in enumerate(starts):
            report = {"hardware": {"chassis": "desktop", "manufacture_date": {
                "value": start.isoformat(), "estimated": True}}}
            conn.execute(insert(machine_depreciation).values(
                **dep.compute_row(machine_id=f"{i:032x}", unit_id=unit, report=report,
                                  asset=None, config=DEFAULT_DEPRECIATION,
                                  keys=(None, None, None), now=now), updated_at=now))
    with app.extensions["kiemke"].engine.connect() as conn:
        for day in days:
            got = dep.aggregate(conn, day).by_age
            want: dict = {}
            for start in starts:
                years = engine.age_months(start, day) // 12
                bucket = "10+" if years >= 10 else str(years)
                want[(unit, bucket)] = want.get((unit, bucket), 0) + 1
            assert got == want, day


def test_age_key_matches_engine_for_every_day_of_four_years():
    starts = [D(2020, 2, 29), D(2019, 2, 28), D(2019, 3, 1), D(2019, 12, 31), D(2020, 7, 31)]
    day = D(2021, 1, 1)
    for _ in range(4 * 366):
        for start in starts:
            by_key = max((dep.age_key(day) - dep.date_key(start)) // 10000, 0)
            assert by_key == engine.age_months(start, day) // 12, (start, day)
        day += dt.timedelta(days=1)


def test_unknown_and_estimated(asset_app):
    app, client = asset_app, asset_app.test_client()
    unit = add_units(app, UNIT_NAME)[0]
    vm = report_machine(app, client, unit, "VM-01", serial=None, chassis="virtual")
    old = report_machine(app, client, unit, "PC-CU", serial="OLD1", made=D(2012, 5, 20))
    rows = depreciation_rows(app)
    assert (rows[vm].fully_depreciated_on, rows[vm].reason) == (
        None, "no useful life configured for chassis 'virtual'")
    assert (rows[old].estimated, rows[old].start_date, rows[old].fully_depreciated_on,
            rows[old].cost) == (True, D(2012, 5, 20), D(2017, 5, 1), None)
    config = app.extensions["kiemke"].assets.config
    view = dep.on_day(rows[old], D(2024, 6, 1), config)
    assert (view.status, view.estimated, view.book_value, view.age_years) == (
        "overdue", True, None, 12)
    assert dep.on_day(rows[vm], D(2024, 6, 1), config).status == "unknown"
    with app.extensions["kiemke"].engine.connect() as conn:
        agg = dep.aggregate(conn, D(2024, 6, 1))
        n = conn.execute(select(machine_depreciation.c.machine_id)).all()
    assert len(n) == 2
    assert agg.by_status == {(unit, ("unknown", True)): 1, (unit, ("overdue", True)): 1}
    assert agg.by_age == {(unit, "unknown"): 1, (unit, "10+"): 1}
    assert agg.forecast == {(unit, 2024): 1}


def test_late_report_changes_nothing(asset_app):
    """A report collected before the stored one must not overwrite the machine's row."""
    from collector_helpers import enroll_agent, enrollment_token
    from reports import new_machine_id

    app, client = asset_app, asset_app.test_client()
    unit = add_units(app, UNIT_NAME)[0]
    mid = new_machine_id()
    headers = enroll_agent(client, enrollment_token(app, unit), mid, "PC-01")
    newer = machine_report(mid, "PC-01", made=D(2021, 3, 1))
    late = machine_report(mid, "PC-01", made=D(2015, 3, 1))
    late["collected_at"] = "2020-01-01T00:00:00Z"
    for report in (newer, late):
        assert client.post("/api/v1/reports", json=report, headers=headers).status_code == 202
    assert depreciation_rows(app)[mid].start_date == D(2021, 3, 1)


def test_moved_machine_counts_in_its_new_unit(asset_app):
    from kiemke.collector.assets.store import current_version, move_machine

    app, client = asset_app, asset_app.test_client()
    old_unit, new_unit = add_units(app, UNIT_NAME, "LĐLĐ huyện Yên Thế")
    mid = report_machine(app, client, old_unit, "PC-01", serial="SN1", made=D(2020, 5, 1))
    day = D(2024, 6, 1)
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        before = current_version(conn)
        move_machine(conn, mid, new_unit)
        move_machine(conn, mid, new_unit)  # already there: nothing changes
        assert current_version(conn) == before + 1
        assert dep.aggregate(conn, day).by_status == {(new_unit, ("in_service", True)): 1}
