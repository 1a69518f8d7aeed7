"""Waivers, machine moves, enrolment tokens, agents, people and the audit log.

Every form: CSRF-checked before the view (views_auth.check_csrf); validated field by
field, errors shown next to their field with status 400 and nothing written; the change
and its audit entry in one transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, current_app, redirect, render_template, request, url_for
from sqlalchemy import func, select

from kiemke.collector.accounts import audit
from kiemke.collector.accounts.audit import list_entries
from kiemke.collector.accounts.roles import AUDIT, ENROLMENT, ROLES, USERS, WAIVERS
from kiemke.collector.accounts.users import UserError, add_user, disable_user, list_users
from kiemke.collector.console import web_auth
from kiemke.collector.console.blueprint import bp
from kiemke.collector.console.i18n import gettext as _
from kiemke.collector.console.i18n import pick
from kiemke.collector.console.views_pages import evaluator, render_machine
from kiemke.collector.db.compliance_tables import waivers
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import agents, enrollment_tokens, machines, units
from kiemke.collector.enrollment import (
    create_enrollment_token,
    revoke_agent,
    revoke_enrollment_token,
)
from kiemke.collector.evaluation.admin import (
    AdminError,
    add_waiver,
    list_waivers,
    move_machine,
    revoke_waiver,
)
from kiemke.collector.timeutil import utcnow

PAGE = 50


def _tz() -> ZoneInfo:
    return ZoneInfo(current_app.extensions["kiemke"].config.timezone)


def _offset() -> int:
    raw = request.args.get("offset", "0")
    return int(raw) if raw.isdigit() else 0


def _end_of_local_day(text: str) -> dt.datetime | None:
    """'2027-01-31' -> the first instant after that local day, in UTC (valid through it)."""
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        return None
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), _tz()).astimezone(
        dt.timezone.utc)


def _machine_in_scope(conn: Any, machine_id: str) -> Any:
    row = conn.execute(select(machines.c.machine_id, machines.c.unit_id, machines.c.hostname)
                       .where(machines.c.machine_id == machine_id)).first()
    if row is None:
        return None
    _units, scope = web_auth.units_and_scope(conn)
    return row if scope.contains(row.unit_id) else None


# ------------------------------------------------------------------------------ waivers

def _waiver_form_errors(conn: Any, form: Any) -> tuple[dict[str, str], Any, dt.datetime | None]:
    errors: dict[str, str] = {}
    ev = evaluator()
    machine_ref = form.get("machine", "").strip()
    row = None
    if not machine_ref:
        errors["machine"] = _("Give the machine (its id or exact hostname).")
    else:
        row = _machine_in_scope(conn, machine_ref.lower())
        if row is None:
            # An exact hostname, inside the viewer's scope, naming one machine.
            _units, scope = web_auth.units_and_scope(conn)
            query = select(machines.c.machine_id, machines.c.unit_id, machines.c.hostname).where(
                func.upper(machines.c.hostname) == machine_ref.upper())
            found = [r for r in conn.execute(query) if scope.contains(r.unit_id)]
            if len(found) == 1:
                row = found[0]
            elif len(found) > 1:
                errors["machine"] = _("Several machines have this hostname; give the "
                                      "machine id.")
            else:
                errors["machine"] = _("No machine with this id or hostname in your units.")
    rule = ev.ruleset.by_id.get(form.get("rule", ""))
    if rule is None or rule.kind != "machine" or not rule.enabled:
        errors["rule"] = _("Choose the rule the machine is exempted from.")
    if not " ".join(form.get("reason", "").split()):
        errors["reason"] = _("Give the reason: it is shown with the exempt result.")
    expires = _end_of_local_day(form.get("expires", ""))
    if expires is None:
        errors["expires"] = _("Give the last day of the waiver as a date.")
    elif expires <= utcnow():
        errors["expires"] = _("The last day must be today or later.")
    elif expires > utcnow() + dt.timedelta(days=3 * 366):
        errors["expires"] = _("A waiver lasts at most three years; grant a new one then.")
    return errors, row, expires


def add_waiver_from_form(back: str) -> Any:
    ev = evaluator()
    form = request.form
    with ev.engine.connect() as conn:
        errors, row, expires = _waiver_form_errors(conn, form)
    if errors:
        return errors
    principal = web_auth.principal()
    now = utcnow()
    assert expires is not None and row is not None  # no errors: both were checked
    try:
        with write_transaction(ev.engine) as conn:
            waiver = add_waiver(conn, ev, machine_id=row.machine_id, rule_id=form["rule"],
                                reason=form["reason"], author=principal.label,
                                expires_at=expires, now=now)
            audit.record(conn, principal, "waiver.add", f"waiver {waiver['id']}",
                         unit_id=row.unit_id, now=now,
                         details={"machine_id": row.machine_id, "hostname": row.hostname,
                                  "rule": form["rule"], "reason": waiver["reason"],
                                  "expires_at": waiver["expires_at"]})
    except AdminError as exc:
        return {exc.field if exc.field in ("rule", "reason") else "machine": str(exc)}
    return redirect(back)


@bp.route("/waivers", methods=["GET", "POST"])
@web_auth.page()
def waivers_page() -> Any:
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not web_auth.principal().can(WAIVERS):
            abort(403)
        outcome = add_waiver_from_form(url_for("console.waivers_page", state="active"))
        if not isinstance(outcome, dict):
            return outcome
        errors = outcome
    ev = evaluator()
    state = request.args.get("state", "active")
    if state not in ("active", "expired", "revoked", "all"):
        state = "active"
    now = utcnow()
    with ev.engine.connect() as conn:
        _units, scope = web_auth.units_and_scope(conn)
        items, total = _scoped_waivers(conn, scope, state, now)
    return render_template("waivers.html", items=items, total=total, state=state,
                           errors=errors, values=request.form if errors else {},
                           can_waive=web_auth.principal().can(WAIVERS),
                           rules=[r for r in ev.ruleset.machine_rules if r.enabled],
                           pick=pick), 400 if errors else 200


def _scoped_waivers(conn: Any, scope: Any, state: str, now: dt.datetime
                    ) -> tuple[list[dict[str, Any]], int]:
    items, total = list_waivers(conn, now, state=state, limit=500,
                                unit_ids=None if scope.everything else sorted(scope.ids or ()))
    hostnames = dict(conn.execute(select(machines.c.machine_id, machines.c.hostname).where(
        machines.c.machine_id.in_([w["machine_id"] for w in items]))).all()) if items else {}
    for w in items:
        w["hostname"] = hostnames.get(w["machine_id"], w["machine_id"])
        w["expires"] = dt.datetime.fromisoformat(w["expires_at"].replace("Z", "+00:00"))
        w["created"] = dt.datetime.fromisoformat(w["created_at"].replace("Z", "+00:00"))
    return items, total


@bp.post("/waivers/<int:waiver_id>/revoke")
@web_auth.page(WAIVERS)
def revoke_waiver_view(waiver_id: int) -> Any:
    ev = evaluator()
    now = utcnow()
    principal = web_auth.principal()
    with write_transaction(ev.engine) as conn:
        row = conn.execute(select(waivers).where(waivers.c.id == waiver_id)).first()
        if row is None:
            abort(404)
        machine = _machine_in_scope(conn, row.machine_id)
        if machine is None:
            abort(403)
        if row.revoked_at is None:
            revoke_waiver(conn, ev, waiver_id, now)
            audit.record(conn, principal, "waiver.revoke", f"waiver {waiver_id}",
                         unit_id=machine.unit_id, now=now,
                         details={"machine_id": row.machine_id, "rule": row.rule_id})
    return redirect(web_auth.safe_next(request.form.get("next")
                                       or url_for("console.waivers_page")))


# ------------------------------------------------------------------------------ machine

@bp.post("/machines/<machine_id>/waivers")
@web_auth.page(WAIVERS)
def machine_waiver(machine_id: str) -> Any:
    back = url_for("console.machine_page", machine_id=machine_id)
    outcome = add_waiver_from_form(back)
    if isinstance(outcome, dict):
        return render_machine(machine_id, outcome, dict(request.form), 400)
    return outcome


@bp.post("/machines/<machine_id>/move")
@web_auth.page("machines.move")
def machine_move(machine_id: str) -> Any:
    ev = evaluator()
    now = utcnow()
    principal = web_auth.principal()
    target = request.form.get("unit", "")
    with ev.engine.connect() as conn:
        row = _machine_in_scope(conn, machine_id)
        if row is None:
            abort(403)
        _units, scope = web_auth.units_and_scope(conn)
    if not target.isdigit() or not scope.contains(int(target)) or not any(
            u.id == int(target) for u in _units):
        return render_machine(machine_id, {"unit": _("Choose one of your units.")},
                              dict(request.form), 400)
    if int(target) != row.unit_id:
        with write_transaction(ev.engine) as conn:
            unit = move_machine(conn, ev, machine_id, int(target), now)
            audit.record(conn, principal, "machine.move", f"machine {machine_id}",
                         unit_id=unit.id, now=now,
                         details={"hostname": row.hostname, "from_unit_id": row.unit_id,
                                  "to_unit_id": unit.id, "to_unit": unit.path})
            # The old unit's people see that it left, too.
            audit.record(conn, principal, "machine.move", f"machine {machine_id}",
                         unit_id=row.unit_id, now=now,
                         details={"hostname": row.hostname, "from_unit_id": row.unit_id,
                                  "to_unit_id": unit.id, "to_unit": unit.path})
    return redirect(url_for("console.machine_page", machine_id=machine_id))


# ------------------------------------------------------------------------------ tokens

@bp.route("/tokens", methods=["GET", "POST"])
@web_auth.page(ENROLMENT)
def tokens_page() -> Any:
    engine = web_auth.engine()
    errors: dict[str, str] = {}
    created = None
    with engine.connect() as conn:
        units_, scope = web_auth.units_and_scope(conn)
    mine = [u for u in units_ if scope.contains(u.id)]
    if request.method == "POST":
        form = request.form
        unit_id = int(form["unit"]) if form.get("unit", "").isdigit() else None
        if unit_id is None or not scope.contains(unit_id) or unit_id not in {u.id for u in mine}:
            errors["unit"] = _("Choose one of your units.")
        days = form.get("days", "").strip()
        if days and (not days.isdigit() or not 1 <= int(days) <= 365):
            errors["days"] = _("A number of days from 1 to 365, or empty for no expiry.")
        uses = form.get("max_uses", "").strip()
        if uses and (not uses.isdigit() or not 1 <= int(uses) <= 100_000):
            errors["max_uses"] = _("A number from 1 to 100000, or empty for no limit.")
        if not errors and unit_id is not None:
            now = utcnow()
            with write_transaction(engine) as conn:
                token_id, token = create_enrollment_token(
                    conn, unit_id, expires_in=dt.timedelta(days=int(days)) if days else None,
                    max_uses=int(uses) if uses else None,
                    description=" ".join(form.get("description", "").split()) or None)
                audit.record(conn, web_auth.principal(), "enrolment_token.add",
                             f"enrolment token {token_id}", unit_id=unit_id, now=now,
                             details={"expires_days": days or None, "max_uses": uses or None,
                                      "description": form.get("description") or None})
            created = {"id": token_id, "token": token,
                       "unit": next(u for u in mine if u.id == unit_id)}
    with engine.connect() as conn:
        query = (select(enrollment_tokens, units.c.path.label("unit_path"))
                 .join(units, units.c.id == enrollment_tokens.c.unit_id)
                 .order_by(enrollment_tokens.c.id.desc()))
        if not scope.everything:
            query = query.where(enrollment_tokens.c.unit_id.in_(sorted(scope.ids or ())))
        rows = list(conn.execute(query.limit(500)))
    return render_template("tokens.html", rows=rows, units=mine, errors=errors,
                           values=request.form if errors else {}, created=created,
                           now=utcnow()), 400 if errors else 200


@bp.post("/tokens/<int:token_id>/revoke")
@web_auth.page(ENROLMENT)
def revoke_token_view(token_id: int) -> Any:
    engine = web_auth.engine()
    with write_transaction(engine) as conn:
        unit_id = conn.execute(select(enrollment_tokens.c.unit_id).where(
            enrollment_tokens.c.id == token_id)).scalar()
        if unit_id is None:
            abort(404)
        if not web_auth.units_and_scope(conn)[1].contains(unit_id):
            abort(403)
        if revoke_enrollment_token(conn, token_id):
            audit.record(conn, web_auth.principal(), "enrolment_token.revoke",
                         f"enrolment token {token_id}", unit_id=unit_id)
    return redirect(url_for("console.tokens_page"))


@bp.get("/agents")
@web_auth.page(ENROLMENT)
def agents_page() -> Any:
    show_all = request.args.get("all") == "1"
    with web_auth.engine().connect() as conn:
        _units, scope = web_auth.units_and_scope(conn)
        conds = [] if show_all else [agents.c.revoked_at.is_(None)]
        if not scope.everything:
            conds.append(agents.c.unit_id.in_(sorted(scope.ids or ())))
        total = conn.execute(select(func.count()).select_from(agents).where(*conds)).scalar()
        rows = list(conn.execute(
            select(agents, units.c.path.label("unit_path"))
            .join(units, units.c.id == agents.c.unit_id).where(*conds)
            .order_by(agents.c.enrolled_at.desc()).limit(500)))
    return render_template("agents.html", rows=rows, total=total, show_all=show_all)


@bp.post("/agents/<agent_id>/revoke")
@web_auth.page(ENROLMENT)
def revoke_agent_view(agent_id: str) -> Any:
    with write_transaction(web_auth.engine()) as conn:
        row = conn.execute(select(agents.c.unit_id, agents.c.machine_id, agents.c.hostname)
                           .where(agents.c.id == agent_id)).first()
        if row is None:
            abort(404)
        if not web_auth.units_and_scope(conn)[1].contains(row.unit_id):
            abort(403)
        if revoke_agent(conn, agent_id):
            audit.record(conn, web_auth.principal(), "agent.revoke", f"agent {agent_id}",
                         unit_id=row.unit_id, details={"machine_id": row.machine_id,
                                                       "hostname": row.hostname})
    return redirect(url_for("console.agents_page"))


# ------------------------------------------------------------------------------ audit

@bp.get("/audit")
@web_auth.page(AUDIT)
def audit_page() -> Any:
    offset = _offset()
    action = request.args.get("action", "").strip() or None
    with web_auth.engine().connect() as conn:
        units_, scope = web_auth.units_and_scope(conn)
        items, total = list_entries(conn, scope, action=action, limit=PAGE, offset=offset)
    by_id = {u.id: u for u in units_}
    for item in items:
        item["at_dt"] = dt.datetime.fromisoformat(item["at"].replace("Z", "+00:00"))
        item["unit"] = by_id.get(item["unit_id"]) if item["unit_id"] is not None else None
    return render_template("audit.html", items=items, total=total, offset=offset, page=PAGE,
                           action=action or "")


# ------------------------------------------------------------------------------ people

@bp.route("/users", methods=["GET", "POST"])
@web_auth.page(USERS)
def users_page() -> Any:
    engine = web_auth.engine()
    errors: dict[str, str] = {}
    with engine.connect() as conn:
        units_, scope = web_auth.units_and_scope(conn)
    mine = [u for u in units_ if scope.contains(u.id)]
    if request.method == "POST":
        form = request.form
        unit_ref = form.get("unit", "")
        if scope.everything and unit_ref == "":
            unit = None
        elif unit_ref.isdigit() and scope.contains(int(unit_ref)):
            unit = int(unit_ref)
        else:
            unit = None
            errors["unit"] = _("Choose one of your units.")
        if form.get("role") not in ROLES:
            errors["role"] = _("Choose a role.")
        if form.get("password", "") != form.get("again", ""):
            errors["again"] = _("The two new passwords differ.")
        if not errors:
            try:
                with write_transaction(engine) as conn:
                    add_user(conn, form.get("name", ""), form.get("password", ""),
                             role=form["role"], unit=unit,
                             display_name=form.get("display_name") or None,
                             actor=web_auth.principal())
            except UserError as exc:
                errors[exc.field] = _(str(exc))
        if not errors:
            return redirect(url_for("console.users_page"))
    with engine.connect() as conn:
        people = list_users(conn, None if scope.everything else scope.ids)
    return render_template("users.html", people=people, units=mine, errors=errors,
                           values=request.form if errors else {}, roles=ROLES,
                           unscoped=scope.everything), 400 if errors else 200


@bp.post("/users/<int:user_id>/disable")
@web_auth.page(USERS)
def disable_user_view(user_id: int) -> Any:
    with write_transaction(web_auth.engine()) as conn:
        people = {u.id: u for u in list_users(conn)}
        person = people.get(user_id)
        if person is None:
            abort(404)
        scope = web_auth.units_and_scope(conn)[1]
        if not scope.everything and not scope.contains(person.unit_id):
            abort(403)
        if person.id == web_auth.principal().user_id:
            abort(400)
        disable_user(conn, user_id, actor=web_auth.principal())
    return redirect(url_for("console.users_page"))
