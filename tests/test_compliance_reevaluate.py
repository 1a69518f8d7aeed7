"""A rule change re-evaluates every machine: from stored facts when only rule files
changed, from the stored reports when the configuration the facts depend on changed.
Only one app (worker) does it; a restart with the same rules does nothing."""

from __future__ import annotations

import shutil

from collector_helpers import admin_token
from compliance_helpers import (
    DISTRICT_A,
    OS_FAIL,
    OS_PASS,
    RULE,
    build_tree,
    make_app,
    recent,
    report_at,
)
from sqlalchemy import select

from kiemke.collector.config import DEFAULT_RULES_DIR
from kiemke.collector.db.compliance_tables import rule_counts, rule_results, ruleset_state


def _results(app, rule_id):
    with app.extensions["kiemke"].engine.connect() as conn:
        return dict(conn.execute(select(rule_results.c.machine_id, rule_results.c.result)
                                 .where(rule_results.c.rule_id == rule_id)).all())


def _counts(app, rule_id):
    with app.extensions["kiemke"].engine.connect() as conn:
        return {r: n for r, n in conn.execute(
            select(rule_counts.c.result, rule_counts.c.n)
            .where(rule_counts.c.rule_id == rule_id, rule_counts.c.n != 0))}


def test_rule_change_reevaluates_all_machines(db_url, tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    app = make_app(db_url, tmp_path, monkeypatch, rules_dir=str(rules))
    units = build_tree(app)
    old_w10 = report_at(app, units[DISTRICT_A], "PC-YENDUNG-02", recent(), **OS_FAIL)
    w11 = report_at(app, units[DISTRICT_A], "PC-YENDUNG-01", recent(), **OS_PASS)
    assert _results(app, RULE) == {old_w10: "fail", w11: "pass"}
    assert _results(app, "equipment-min-spec") == {old_w10: "pass", w11: "pass"}
    first_fp = app.extensions["kiemke"].compliance.ruleset.fingerprint
    app.extensions["kiemke"].engine.dispose()

    # 1. A rule file changes: Windows counts as supported whatever its support date.
    os_yml = rules / "os.yml"
    text = os_yml.read_text("utf-8")
    assert "condition: os.supported\n" in text
    os_yml.write_text(text.replace("condition: os.supported\n",
                                   'condition: os.supported or os.family == "windows"\n'),
                      "utf-8")
    app = make_app(db_url, tmp_path, monkeypatch, rules_dir=str(rules))
    ev = app.extensions["kiemke"].compliance
    assert ev.ruleset.fingerprint != first_fp
    assert _results(app, RULE) == {old_w10: "pass", w11: "pass"}
    assert _counts(app, RULE) == {"pass": 2}
    with app.extensions["kiemke"].engine.connect() as conn:
        state = conn.execute(select(ruleset_state)).one()
    assert state.fingerprint == ev.ruleset.fingerprint and state.pending_fingerprint is None
    # Another worker starting with the same rules has nothing to do.
    assert ev.ensure_current() is None
    app.extensions["kiemke"].engine.dispose()

    # 2. The minimum spec (configuration the facts depend on) changes: 8 GB is too little.
    approved = rules / "approved.yml"
    approved.write_text(approved.read_text("utf-8").replace("memory_gb: 4", "memory_gb: 16"),
                        "utf-8")
    app = make_app(db_url, tmp_path, monkeypatch, rules_dir=str(rules))
    try:
        assert _results(app, "equipment-min-spec") == {old_w10: "fail", w11: "fail"}
        assert _counts(app, "equipment-min-spec") == {"fail": 2}
        client = app.test_client()
        auth = {"Authorization": f"Bearer {admin_token(app)}"}
        results = client.get(f"/api/v1/machines/{w11}/results", headers=auth).get_json()
        assert results["facts"]["hardware.meets_min_spec"] is False  # facts recomputed
        # The CLI's forced re-evaluation is idempotent: nothing left to change.
        stats = app.extensions["kiemke"].compliance.ensure_current(force=True)
        assert stats["machines"] == 2 and stats["written"] == 0
    finally:
        app.extensions["kiemke"].engine.dispose()
