"""Unit overview, rule page and machine page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from kiemke.collector.accounts.roles import MOVE_MACHINES, WAIVERS
from kiemke.collector.console import charts, data, web_auth
from kiemke.collector.console.blueprint import bp
from kiemke.collector.console.i18n import gettext as _
from kiemke.collector.console.i18n import pick
from kiemke.collector.db.account_tables import audit_log
from kiemke.collector.db.asset_tables import assets, machine_depreciation
from kiemke.collector.db.compliance_tables import rule_results, waivers
from kiemke.collector.db.tables import machines, reports
from kiemke.collector.timeutil import utcnow
from kiemke.collector.units import Unit
from kiemke.compliance import RESULTS
from kiemke.compliance.rules import Rule

TREND_DAYS = 90
PAGE = 50


def evaluator() -> Any:
    return current_app.extensions["kiemke"].compliance


def _today_local() -> dt.date:
    from zoneinfo import ZoneInfo

    return utcnow().astimezone(ZoneInfo(current_app.extensions["kiemke"].config.timezone)).date()


def _unit_in_scope(conn: Any, unit_id: int | None) -> tuple[list[Unit], data.UnitView]:
    """The page's unit (None: the viewer's whole scope); 403 outside it, 404 unknown."""
    units_, scope = web_auth.units_and_scope(conn)
    if unit_id is None:
        unit = scope.root
    else:
        unit = next((u for u in units_ if u.id == unit_id), None)
        if unit is None:
            abort(404)
        if not scope.contains(unit.id):
            abort(403)
    # The unit's subtree (inside the scope by construction: the unit is in it).
    subtree = None if unit is None else sorted(_subtree(units_, unit.id))
    return units_, data.unit_view(units_, unit, subtree)


def _subtree(units_: list[Unit], root: int) -> set[int]:
    from kiemke.collector.units import subtree_ids

    return set(subtree_ids(units_, root))


def _breadcrumb(units_: list[Unit], unit: Unit | None) -> list[Unit]:
    """The unit's ancestors inside the viewer's scope, root first."""
    if unit is None:
        return []
    _units, scope = web_auth.units_and_scope(None)
    by_id = {u.id: u for u in units_}
    chain: list[Unit] = []
    cur: Unit | None = unit
    while cur is not None and scope.contains(cur.id):
        chain.append(cur)
        cur = by_id.get(cur.parent_id) if cur.parent_id is not None else None
    return list(reversed(chain))


def _rule_or_404(rule_id: str) -> Rule:
    rule = evaluator().ruleset.by_id.get(rule_id)
    if rule is None or not rule.enabled:
        abort(404)
    return rule


@bp.get("/")
@web_auth.page()
def home() -> Any:
    return overview(None)


@bp.get("/units/<int:unit_id>")
@web_auth.page()
def unit_page(unit_id: int) -> Any:
    return overview(unit_id)


def overview(unit_id: int | None) -> Any:
    ev = evaluator()
    now = utcnow()
    with ev.engine.connect() as conn:
        units_, view = _unit_in_scope(conn, unit_id)
        figures = data.figures_for(conn, ev.ruleset, now, ev.config.stale_after, units_)
        counts = data.machine_counts(conn, view.subtree, now, ev.ruleset,
                                     ev.config.stale_after)
        since = _today_local() - dt.timedelta(days=TREND_DAYS)
        trend = data.trends(conn, view.sum_ids, since)
    rules = []
    for rule in ev.ruleset.rules:
        fig = data.figure(figures, view.sum_ids, rule)
        title = pick(rule.title)
        rules.append({"rule": rule, "title": title, **fig,
                      "bar": charts.ratio_bar(fig["ratio"], rule.target, _(
                          "{title}: {value} against a target of {target}", title=title,
                          value=_pct(fig["ratio"]), target=_pct(rule.target))),
                      "spark": charts.sparkline(trend.get(rule.id, []), rule.target,
                                                _trend_label(title, trend.get(rule.id, [])))})
    chosen = request.args.get("trend") or _worst(rules)
    chosen_rule = ev.ruleset.by_id.get(chosen) if chosen else None
    chart = None
    if chosen_rule is not None:
        points = trend.get(chosen_rule.id, [])
        chart = charts.trend_chart(points, chosen_rule.target,
                                   _trend_label(pick(chosen_rule.title), points),
                                   "%d/%m" if web_lang() == "vi" else "%m-%d")
    children = [{"unit": c, "figures": {r.id: data.figure(figures, [c.id], r)
                                        for r in ev.ruleset.rules}} for c in view.children]
    return render_template("overview.html", view=view, unit=view.unit, rules=rules,
                           counts=counts, children=children, chart=chart,
                           chart_rule=chosen_rule, trend_days=TREND_DAYS,
                           breadcrumb=_breadcrumb(units_, view.unit),
                           all_rules=ev.ruleset.rules, generated_at=now)


def web_lang() -> str:
    from kiemke.collector.console.i18n import current_lang

    return current_lang()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}".rstrip("0").rstrip(".") + "%"


def _worst(rules: list[dict[str, Any]]) -> str | None:
    """The rule with the largest gap (the one to look at first)."""
    measured = [r for r in rules if r["ratio"] is not None]
    if not measured:
        return None
    return max(measured, key=lambda r: (r["gap"], -r["ratio"]))["rule"].id


def _trend_label(title: str, points: list[tuple[dt.date, float | None]]) -> str:
    values = [(d, v) for d, v in points if v is not None]
    if not values:
        return _("{title}: no daily history yet", title=title)
    return _("{title}: {first} on {first_day}, {last} on {last_day}", title=title,
             first=_pct(values[0][1]), first_day=values[0][0].isoformat(),
             last=_pct(values[-1][1]), last_day=values[-1][0].isoformat())


@bp.get("/units/<int:unit_id>/rules/<rule_id>")
@web_auth.page()
def rule_page(unit_id: int, rule_id: str) -> Any:
    return _rule_view(unit_id, rule_id)


@bp.get("/rules/<rule_id>")
@web_auth.page()
def rule_page_all(rule_id: str) -> Any:
    return _rule_view(None, rule_id)


def _rule_view(unit_id: int | None, rule_id: str) -> Any:
    ev = evaluator()
    rule = _rule_or_404(rule_id)
    result = request.args.get("result", "fail")
    if result not in RESULTS:
        abort(404)
    try:
        offset = max(int(request.args.get("offset", "0")), 0)
    except ValueError:
        offset = 0
    now = utcnow()
    cutoff = now - ev.config.stale_after
    with ev.engine.connect() as conn:
        units_, view = _unit_in_scope(conn, unit_id)
        figures = data.figures_for(conn, ev.ruleset, now, ev.config.stale_after, units_)
        fig = data.figure(figures, view.sum_ids, rule)
        # The figures count active machines per result in the subtree: the list's total.
        items, total = data.listed(conn, rule, result, view.subtree, now, cutoff, False, PAGE,
                                   offset, total=fig["counts"].get(result, 0))
        trend = data.trends(conn, view.sum_ids, _today_local() - dt.timedelta(days=365))
    points = trend.get(rule.id, [])
    chart = charts.trend_chart(points, rule.target, _trend_label(pick(rule.title), points),
                               "%d/%m/%y" if web_lang() == "vi" else "%Y-%m")
    children = [{"unit": c, **data.figure(figures, [c.id], rule)} for c in view.children]
    return render_template("rule.html", rule=rule, title=pick(rule.title), view=view,
                           unit=view.unit, fig=fig, items=items, total=total, result=result,
                           offset=offset, page=PAGE, children=children, chart=chart,
                           breadcrumb=_breadcrumb(units_, view.unit), results=RESULTS)


@bp.get("/machines/<machine_id>")
@web_auth.page()
def machine_page(machine_id: str) -> Any:
    return render_machine(machine_id, {}, {}, 200)


def render_machine(machine_id: str, errors: dict[str, str], values: dict[str, str],
                   status: int) -> Any:
    ev = evaluator()
    now = utcnow()
    with ev.engine.connect() as conn:
        row = conn.execute(select(machines).where(machines.c.machine_id == machine_id)).first()
        if row is None:
            abort(404)
        units_, scope = web_auth.units_and_scope(conn)
        if not scope.contains(row.unit_id):
            abort(403)
        unit = next(u for u in units_ if u.id == row.unit_id)
        results = list(conn.execute(select(rule_results).where(
            rule_results.c.machine_id == machine_id)))
        history = list(conn.execute(
            select(reports.c.report_id, reports.c.kind, reports.c.collected_at,
                   reports.c.received_at).where(reports.c.machine_id == machine_id)
            .order_by(reports.c.received_at.desc()).limit(20)))
        machine_waivers = list(conn.execute(select(waivers).where(
            waivers.c.machine_id == machine_id).order_by(waivers.c.id.desc())))
        moves = list(conn.execute(select(audit_log).where(
            audit_log.c.target == f"machine {machine_id}").order_by(audit_log.c.id.desc())
            .limit(20)))
        dep_row = conn.execute(select(machine_depreciation).where(
            machine_depreciation.c.machine_id == machine_id)).first()
        asset = None
        if dep_row is not None and dep_row.asset_id is not None:
            asset = conn.execute(select(assets).where(assets.c.id == dep_row.asset_id)).first()
    depreciation = None
    assets_state = current_app.extensions["kiemke"].assets
    if dep_row is not None:
        from kiemke.collector.assets.depreciation import on_day

        depreciation = on_day(dep_row, _today_local(), assets_state.config)
    by_rule = {r.rule_id: r for r in results}
    rows = []
    for rule in ev.ruleset.machine_rules:
        r = by_rule.get(rule.id)
        rows.append({"rule": rule, "title": pick(rule.title),
                     "result": r.result if r else None, "reason": r.reason if r else None,
                     "since": r.since if r else None,
                     "days": max((now - r.since).days, 0) if r else None})
    timeline = _timeline(history, results, machine_waivers, moves, ev)
    principal = web_auth.principal()
    movable = [u for u in units_ if scope.contains(u.id)]
    return render_template(
        "machine.html", m=row, unit=unit, rows=rows, facts=sorted((row.facts or {}).items()),
        timeline=timeline, depreciation=depreciation, asset=asset,
        stale=row.last_seen < now - ev.config.stale_after, waivers=machine_waivers,
        can_waive=principal.can(WAIVERS), can_move=principal.can(MOVE_MACHINES),
        movable=movable, errors=errors, values=values,
        breadcrumb=_breadcrumb(units_, unit), now=now,
        waivable=[r for r in ev.ruleset.machine_rules if r.enabled]), status


def _timeline(history: list[Any], results: list[Any], machine_waivers: list[Any],
              moves: list[Any], ev: Any) -> list[dict[str, Any]]:
    """Reports received, result changes, waivers and moves, newest first."""
    events: list[dict[str, Any]] = []
    for h in history:
        events.append({"at": h.received_at, "kind": "report",
                       "text": _("Report received ({kind})", kind=_(h.kind))})
    for r in results:
        rule = ev.ruleset.by_id.get(r.rule_id)
        events.append({"at": r.since, "kind": "result",
                       "text": _("{rule}: became {result}",
                                 rule=pick(rule.title) if rule else r.rule_id,
                                 result=_(r.result))})
    for w in machine_waivers:
        events.append({"at": w.created_at, "kind": "waiver",
                       "text": _("Waiver {id} for {rule} by {author}: {reason}", id=w.id,
                                 rule=w.rule_id, author=w.author, reason=w.reason)})
        if w.revoked_at is not None:
            events.append({"at": w.revoked_at, "kind": "waiver",
                           "text": _("Waiver {id} revoked", id=w.id)})
    for a in moves:
        events.append({"at": a.at, "kind": "audit",
                       "text": _("{action} by {actor}", action=_(a.action), actor=a.actor)})
    events.sort(key=lambda e: e["at"], reverse=True)
    return events[:60]


@bp.get("/machines")
@web_auth.page()
def find_machine() -> Any:
    """The search box in the header: a hostname prefix or a machine id."""
    text = request.args.get("q", "").strip()
    ev = evaluator()
    found: list[Any] = []
    if text:
        with ev.engine.connect() as conn:
            _units, scope = web_auth.units_and_scope(conn)
            query = select(machines.c.machine_id, machines.c.hostname, machines.c.unit_id,
                           machines.c.last_seen).where(
                (machines.c.machine_id == text.lower())
                | machines.c.hostname.startswith(text.upper(), autoescape=True)
                | machines.c.hostname.startswith(text, autoescape=True))
            if not scope.everything:
                query = query.where(machines.c.unit_id.in_(sorted(scope.ids or ())))
            found = list(conn.execute(query.order_by(machines.c.hostname).limit(50)))
        if len(found) == 1:
            return redirect(url_for("console.machine_page", machine_id=found[0].machine_id))
    units_by_id = {u.id: u for u in web_auth.units_and_scope(None)[0]} if text else {}
    return render_template("machines.html", q=text, found=found, units=units_by_id)
