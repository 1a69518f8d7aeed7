"""Helpers for the compliance tests: an in-process app on any database, a unit tree
with Vietnamese names, and machines reporting known facts at a chosen time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from collector_helpers import enroll_agent, enrollment_token
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from reports import make_report, new_machine_id

from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.migrate import upgrade
from kiemke.collector.ingest import load_agent
from kiemke.collector.units import add_unit

ROOT = "Liên đoàn Lao động tỉnh Bắc Giang"
DISTRICT_A = "LĐLĐ huyện Yên Dũng"
OFFICE = "Công đoàn xã Tân An"
DISTRICT_B = "LĐLĐ huyện Lục Nam"
RULE = "os-supported"

OS_PASS = {"os": {"supported": True, "end_of_support": "2031-10-14",
                  "name": "Microsoft Windows 11 Pro"}}
OS_FAIL: dict[str, Any] = {}  # make_report's Windows 10 is past its end of support
OS_UNKNOWN = {"os": {"supported": None, "end_of_support": None}}


def make_app(db_url: str, tmp_path: Path, monkeypatch: Any, **config: Any) -> Flask:
    from kiemke.collector.app import create_app

    upgrade(db_url)
    app = create_app({"database_url": db_url, "data_dir": str(tmp_path / "data"),
                      "maintenance_interval": 0, **config})
    app.config["TESTING"] = True
    return app


def build_tree(app: Flask) -> dict[str, int]:
    """Tỉnh (0) -> two districts (1) -> one office (2) under the first district."""
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        root = add_unit(conn, ROOT, code="LDLD-BG")
        a = add_unit(conn, DISTRICT_A, parent=root.id)
        office = add_unit(conn, OFFICE, parent=a.id)
        b = add_unit(conn, DISTRICT_B, parent=root.id)
    return {ROOT: root.id, DISTRICT_A: a.id, OFFICE: office.id, DISTRICT_B: b.id}


def report_at(app: Flask, unit_id: int, hostname: str, when: datetime,
              machine_id: str | None = None, **overrides: Any) -> str:
    """Enrol a machine into the unit (first time) and ingest one report received at `when`."""
    ext = app.extensions["kiemke"]
    client = app.test_client()
    machine_id = machine_id or new_machine_id()
    headers = enroll_agent(client, enrollment_token(app, unit_id), machine_id, hostname)
    agent_id = headers["Authorization"].split()[1].split(".")[0]
    report = make_report(machine_id, hostname=hostname, **overrides)
    report["collected_at"] = when.isoformat().replace("+00:00", "Z")
    assert ext.pipeline.ingest(load_agent(ext.engine, agent_id), report, now=when)
    return machine_id


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def recent(minutes: int = 5) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=minutes)


def unit_paths(text: str) -> dict[str, str]:
    """unit_id -> path, from the scrape's kiemke_unit_info."""
    return {s.labels["unit_id"]: s.labels["path"]
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "kiemke_unit_info"}


def metric_samples(text: str, name: str, *, join_units: bool = True
                   ) -> list[tuple[dict[str, str], float]]:
    """The samples of `name`; with `join_units`, `unit_id` is replaced by `unit`, the
    unit's path from kiemke_unit_info in the same scrape (the join a dashboard makes)."""
    paths = unit_paths(text) if join_units else {}
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                labels = dict(sample.labels)
                if join_units and "unit_id" in labels:
                    unit_id = labels.pop("unit_id")
                    assert unit_id in paths, f"{name}: unit_id {unit_id} has no unit_info"
                    labels["unit"] = paths[unit_id]
                out.append((labels, sample.value))
    return out


def by_labels(samples: list[tuple[dict[str, str], float]], **match: str
              ) -> dict[tuple[str, ...], float]:
    """Samples whose labels match, keyed by the remaining label values (sorted by name)."""
    out = {}
    for labels, value in samples:
        if all(labels.get(k) == v for k, v in match.items()):
            rest = tuple(v for k, v in sorted(labels.items()) if k not in match)
            out[rest] = value
    return out


def populate_fleet(app: Flask, units: dict[str, int]) -> dict[str, str]:
    """Known machines (rule os-supported), hostname -> machine id.

    root: 1 pass | Yên Dũng: 1 pass, 1 fail | Tân An: 1 pass, 1 unknown, 1 fail (stale)
    | Lục Nam: 1 fail, 1 pass (stale).
    """
    now, old = recent(), recent() - timedelta(days=10)
    fleet = [
        (ROOT, "PC-VANPHONG-01", OS_PASS, now),
        (DISTRICT_A, "PC-YENDUNG-01", OS_PASS, now),
        (DISTRICT_A, "PC-YENDUNG-02", OS_FAIL, now),
        (OFFICE, "PC-TANAN-01", OS_PASS, now),
        (OFFICE, "PC-TANAN-02", OS_UNKNOWN, now),
        (OFFICE, "PC-TANAN-CU", OS_FAIL, old),
        (DISTRICT_B, "PC-LUCNAM-01", OS_FAIL, now),
        (DISTRICT_B, "PC-LUCNAM-CU", OS_PASS, old),
    ]
    return {host: report_at(app, units[unit], host, when, **overrides)
            for unit, host, overrides, when in fleet}


def path(*names: str) -> str:
    return " / ".join(names)


# (unit path, parent path, level) -> expected os-supported counts over active machines
EXPECTED = {
    (ROOT, "", "0"): {"pass": 3, "fail": 2, "unknown": 1},
    (path(ROOT, DISTRICT_A), ROOT, "1"): {"pass": 2, "fail": 1, "unknown": 1},
    (path(ROOT, DISTRICT_A, OFFICE), path(ROOT, DISTRICT_A), "2"):
        {"pass": 1, "fail": 0, "unknown": 1},
    (path(ROOT, DISTRICT_B), ROOT, "1"): {"pass": 0, "fail": 1, "unknown": 0},
}
EXPECTED_STALE = {ROOT: 2, path(ROOT, DISTRICT_A): 1, path(ROOT, DISTRICT_A, OFFICE): 1,
                  path(ROOT, DISTRICT_B): 1}


def check_metrics(text: str, fleet: dict[str, str]) -> None:
    """Every rule metric of the fleet above, value by value."""
    machines = by_labels(metric_samples(text, "kiemke_rule_machines"), rule=RULE)
    ratios = by_labels(metric_samples(text, "kiemke_rule_compliance_ratio"), rule=RULE)
    # the unit (a path, joined from kiemke_unit_info): its parent and level
    info = {lab["path"]: lab for lab, _ in
            metric_samples(text, "kiemke_unit_info", join_units=False)}
    ids = {lab["unit_id"]: path for path, lab in info.items()}
    for (unit, parent, level) in EXPECTED:
        assert (ids.get(info[unit]["parent_id"], ""), info[unit]["level"]) == (parent, level)
    # label order after removing rule: result, unit
    for (unit, _parent, _level), counts in EXPECTED.items():
        for result in ("pass", "fail", "unknown"):  # always exported, zeros included
            assert machines[(result, unit)] == counts.get(result, 0), (unit, result)
        for result in ("not_applicable", "exempt"):  # exported only when non-zero
            assert (result, unit) not in machines, (unit, result)
        denominator = counts["pass"] + counts["fail"] + counts["unknown"]
        assert ratios[(unit,)] == counts["pass"] / denominator, unit
    status = by_labels(metric_samples(text, "kiemke_machines"), status="stale")
    for (unit, _parent, _level) in EXPECTED:
        assert status[(unit,)] == EXPECTED_STALE[unit], unit
    failing = by_labels(metric_samples(text, "kiemke_machine_rule_failing"), rule=RULE)
    hosts = sorted(key[0] for key in failing)  # hostname sorts first among the rest
    assert hosts == ["PC-LUCNAM-01", "PC-YENDUNG-02"]  # the stale failing machine pages not
    failing_labels = {lab["hostname"]: lab for lab, _ in
                      metric_samples(text, "kiemke_machine_rule_failing") if lab["rule"] == RULE}
    assert failing_labels["PC-LUCNAM-01"]["unit"] == path(ROOT, DISTRICT_B)
    assert failing_labels["PC-LUCNAM-01"]["machine_id"] == fleet["PC-LUCNAM-01"]
    assert failing_labels["PC-LUCNAM-01"]["severity"] == "high"
    # the rule's stable code, not the reason text (which names the OS end-of-support date)
    assert failing_labels["PC-YENDUNG-02"]["reason_code"] == "os_unsupported"
    assert "reason" not in failing_labels["PC-YENDUNG-02"]
    # ... whose text comes from kiemke_reason_info, the machine's values elided
    [(reason_info, one)] = [(lab, v) for lab, v in metric_samples(text, "kiemke_reason_info")
                            if lab["rule"] == RULE]
    assert one == 1 and reason_info["reason_code"] == "os_unsupported"
    assert "…" in reason_info["text_vi"] and "{" not in reason_info["text_vi"] + \
        reason_info["text_en"]
    stale = {lab["hostname"]: (lab, v) for lab, v in metric_samples(text, "kiemke_machine_stale")}
    assert sorted(stale) == ["PC-LUCNAM-CU", "PC-TANAN-CU"]
    assert stale["PC-TANAN-CU"][0]["unit"] == path(ROOT, DISTRICT_A, OFFICE)
    targets = {lab["rule"]: v for lab, v in metric_samples(text, "kiemke_rule_target_ratio")}
    assert targets[RULE] == 1.0
    info = {lab["rule"]: lab for lab, _ in metric_samples(text, "kiemke_rule_info")}
    assert info[RULE]["scope"] == "machine" and info["unit-has-lan"]["scope"] == "unit"


def stable_lines(body: bytes) -> list[bytes]:
    """The lines of a scrape without the timings, which differ between two scrapes."""
    return [line for line in body.split(b"\n")
            if not line.startswith((b"kiemke_scrape_duration_seconds ",
                                    b"kiemke_metrics_provider_duration_seconds{"))]


def database_text(app) -> bytes:
    """The database collector's exposition text of `app`, joined."""
    return b"".join(app.extensions["kiemke"].db_collector.exposition())
