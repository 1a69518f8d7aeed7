"""CLI commands: units rename|move|show, machines move, waivers add|list|revoke,
rules reevaluate and maintain, added to kiemke-collector by kiemke.collector.cli.

Each command builds the app (create_app) so that every integration, such as the
asset register's lookup, takes part; the maintenance thread is not started.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from kiemke.collector.accounts import audit
from kiemke.collector.accounts.cli import cli_actor
from kiemke.collector.cli_common import command_config, open_engine, print_table, say
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation.admin import (
    add_waiver,
    list_waivers,
    machine_row,
    move_machine,
    revoke_target,
    revoke_waiver,
)
from kiemke.collector.evaluation.figures import compute, summary
from kiemke.collector.timeutil import iso_z, utcnow
from kiemke.collector.units import all_units, find_unit, move_unit, rename_unit, subtree_ids


def _app(args: argparse.Namespace) -> Flask:
    # Imported when a command runs, not with the CLI: the app imports prometheus_client,
    # which decides on import whether its counters are per-process or multiprocess
    # (PROMETHEUS_MULTIPROC_DIR, which `serve` sets before gunicorn forks its workers).
    from kiemke.collector.app import create_app

    config = command_config(args)
    with open_engine(config):
        pass  # refuses an unreachable or un-migrated database with a clear message (CliError)
    config.maintenance_interval = 0  # a one-shot command: no background pass
    return create_app(config)


def _parse_expiry(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--expires {text!r} is not a date like 2027-01-31") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _run(args: argparse.Namespace, action: Any) -> int:
    app = _app(args)
    ext = app.extensions["kiemke"]
    # Errors (AdminError, UnitError) are ValueErrors: kiemke-collector prints them as one
    # line and exits with 2.
    try:
        with write_transaction(ext.engine) as conn:
            action(conn, ext.compliance, utcnow())
    finally:
        ext.engine.dispose()
    return 0


def cmd_units_rename(args: argparse.Namespace) -> int:
    def action(conn: Any, ev: Any, now: datetime) -> None:
        old = find_unit(conn, args.unit)
        unit = rename_unit(conn, args.unit, args.name)
        ev.evaluate_units(conn, subtree_ids(all_units(conn), unit.id), now)
        audit.record(conn, cli_actor(), "unit.rename", f"unit {unit.id}", unit_id=unit.id,
                     now=now, details={"from": old.name, "to": unit.name})
        say(f"unit {unit.id} is now {unit.path}")

    return _run(args, action)


def cmd_units_move(args: argparse.Namespace) -> int:
    if not args.parent and not args.top:
        raise ValueError("give --parent UNIT, or --top to make it a root unit")

    def action(conn: Any, ev: Any, now: datetime) -> None:
        old = find_unit(conn, args.unit)
        unit = move_unit(conn, args.unit, None if args.top else args.parent)
        ev.evaluate_units(conn, subtree_ids(all_units(conn), unit.id), now)
        audit.record(conn, cli_actor(), "unit.move", f"unit {unit.id}", unit_id=unit.id,
                     now=now, details={"from_parent_id": old.parent_id,
                                       "to_parent_id": unit.parent_id, "path": unit.path})
        say(f"unit {unit.id} is now {unit.path} (level {unit.level})")

    return _run(args, action)


def cmd_units_show(args: argparse.Namespace) -> int:

    app = _app(args)
    ext = app.extensions["kiemke"]
    ev = ext.compliance
    now = utcnow()
    try:
        with ext.engine.connect() as conn:
            unit = find_unit(conn, args.unit)
            units_ = all_units(conn)
            tree = subtree_ids(units_, unit.id)
            cutoff = now - ext.config.stale_after
            active = conn.execute(select(func.count()).where(
                machines.c.unit_id.in_(tree), machines.c.last_seen >= cutoff)).scalar_one()
            stale = conn.execute(select(func.count()).where(
                machines.c.unit_id.in_(tree), machines.c.last_seen < cutoff)).scalar_one()
            figures = compute(conn, ev.ruleset, now, ext.config.stale_after, units_)
    finally:
        ext.engine.dispose()
    print(f"{unit.path}  (id {unit.id}, code {unit.code or '-'}, level {unit.level})")
    children = [u for u in units_ if u.parent_id == unit.id]
    print(f"children: {', '.join(u.name for u in children) or '-'}")
    print(f"machines (with descendants): {active} active, {stale} stale")
    print(f"{'RULE':<30} {'PASS':>6} {'FAIL':>6} {'UNKN':>6} {'EXEMPT':>6} {'RATIO':>7} "
          f"{'TARGET':>7} {'GAP':>5}")
    for rule in ev.ruleset.rules:
        s = summary(figures.counts(unit.id, rule.id, rule.kind), rule.target)
        c = s["counts"]
        shown = "-" if s["ratio"] is None else f"{s['ratio']:.1%}"
        print(f"{rule.id:<30} {c['pass']:>6} {c['fail']:>6} {c['unknown']:>6} "
              f"{c['exempt']:>6} {shown:>7} {rule.target:>7.0%} {s['gap']:>5}")
    return 0


def cmd_machines_move(args: argparse.Namespace) -> int:
    def action(conn: Any, ev: Any, now: datetime) -> None:
        before = machine_row(conn, args.machine)
        unit = move_machine(conn, ev, args.machine, args.unit, now)
        audit.record(conn, cli_actor(), "machine.move", f"machine {args.machine}",
                     unit_id=unit.id, now=now,
                     details={"hostname": before.hostname, "from_unit_id": before.unit_id,
                              "to_unit_id": unit.id, "to_unit": unit.path})
        say(f"machine {args.machine} now belongs to {unit.path}")

    return _run(args, action)


def cmd_waivers_add(args: argparse.Namespace) -> int:
    expires = _parse_expiry(args.expires)

    def action(conn: Any, ev: Any, now: datetime) -> None:
        actor = cli_actor()
        # The author is who grants it: --author names the person at the server's console,
        # else the login running the command.
        author = args.author or actor.label
        waiver = add_waiver(conn, ev, machine_id=args.machine, rule_id=args.rule,
                            reason=args.reason, author=author, expires_at=expires,
                            now=now)
        audit.record(conn, actor, "waiver.add", f"waiver {waiver['id']}",
                     unit_id=machine_row(conn, args.machine).unit_id, now=now,
                     details={"machine_id": args.machine, "rule": args.rule,
                              "reason": waiver["reason"], "author": author,
                              "expires_at": waiver["expires_at"]})
        print(waiver["id"])
        say(f"waiver {waiver['id']}: {args.machine} exempt from {args.rule} until "
            f"{waiver['expires_at']}")

    return _run(args, action)


def cmd_waivers_list(args: argparse.Namespace) -> int:
    app = _app(args)
    ext = app.extensions["kiemke"]
    try:
        with ext.engine.connect() as conn:
            items, total = list_waivers(conn, utcnow(), machine_id=args.machine,
                                        rule_id=args.rule, state=args.state, limit=10**6)
    finally:
        ext.engine.dispose()
    print_table([[w["id"], w["machine_id"], w["rule"], w["state"], w["expires_at"], w["author"],
                  w["reason"]] for w in items],
                ["ID", "MACHINE", "RULE", "STATE", "EXPIRES", "AUTHOR", "REASON"])
    say(f"{total} waiver(s)")
    return 0


def cmd_waivers_revoke(args: argparse.Namespace) -> int:
    if not args.id.isdigit():
        raise ValueError("waiver ids are numbers; see `kiemke-collector waivers list`")

    def action(conn: Any, ev: Any, now: datetime) -> None:
        before = revoke_target(conn, int(args.id))
        waiver = revoke_waiver(conn, ev, int(args.id), now)
        if before.revoked_at is None:
            audit.record(conn, cli_actor(), "waiver.revoke", f"waiver {args.id}",
                         unit_id=before.unit_id, now=now,
                         details={"machine_id": waiver["machine_id"], "rule": waiver["rule"]})
        say(f"waiver {waiver['id']} revoked ({waiver['machine_id']}, {waiver['rule']})")

    return _run(args, action)


def cmd_rules_reevaluate(args: argparse.Namespace) -> int:
    app = _app(args)
    ext = app.extensions["kiemke"]
    try:
        stats = ext.compliance.ensure_current(force=True)
    finally:
        ext.engine.dispose()
    say(f"re-evaluated {stats['machines']} machines in {stats['seconds']} s, "
        f"{stats['written']} results changed")
    return 0


def cmd_maintain(args: argparse.Namespace) -> int:
    app = _app(args)
    ext = app.extensions["kiemke"]
    try:
        stats = ext.compliance.maintain()
    finally:
        ext.engine.dispose()
    print(json.dumps({**stats, "at": iso_z(utcnow())}, ensure_ascii=False, default=str))
    return 0


def _subparsers(parser: argparse.ArgumentParser) -> Any:
    for action in parser._actions:  # argparse keeps no public handle on them
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise LookupError(f"{parser.prog} has no subcommands")


def add_compliance_commands(sub: Any) -> None:
    """Add the commands to kiemke-collector's subparsers (after its own and the rules')."""
    units = _subparsers(sub.choices["units"])
    p = units.add_parser("rename", help="rename a unit (paths of its subtree follow)")
    p.add_argument("unit", help="unit id, code or path")
    p.add_argument("name", help="the new name")
    p.set_defaults(func=cmd_units_rename)
    p = units.add_parser("move", help="move a unit and its subtree under another parent")
    p.add_argument("unit", help="unit id, code or path")
    p.add_argument("--parent", help="new parent: id, code or path")
    p.add_argument("--top", action="store_true", help="make it a root unit")
    p.set_defaults(func=cmd_units_move)
    p = units.add_parser("show", help="a unit, its machines and its compliance per rule")
    p.add_argument("unit", help="unit id, code or path")
    p.set_defaults(func=cmd_units_show)

    machines = sub.add_parser("machines", help="machines").add_subparsers(
        dest="machines_cmd", required=True)
    p = machines.add_parser("move", help="put a machine in another unit")
    p.add_argument("machine", help="machine id")
    p.add_argument("--unit", required=True, help="unit id, code or path")
    p.set_defaults(func=cmd_machines_move)

    waivers = sub.add_parser("waivers", help="exempt a machine from a rule for a time"
                             ).add_subparsers(dest="waivers_cmd", required=True)
    p = waivers.add_parser("add", help="add a waiver (prints its id)")
    p.add_argument("--machine", required=True, help="machine id")
    p.add_argument("--rule", required=True, help="rule id, e.g. av-approved-active")
    p.add_argument("--reason", required=True)
    p.add_argument("--author", help="who grants it (default: cli:<your login>)")
    p.add_argument("--expires", required=True, help="date (UTC midnight) or ISO time")
    p.set_defaults(func=cmd_waivers_add)
    p = waivers.add_parser("list", help="list waivers")
    p.add_argument("--machine")
    p.add_argument("--rule")
    p.add_argument("--state", choices=["active", "expired", "revoked", "all"], default="all")
    p.set_defaults(func=cmd_waivers_list)
    p = waivers.add_parser("revoke", help="end a waiver now")
    p.add_argument("id")
    p.set_defaults(func=cmd_waivers_revoke)

    if "rules" in sub.choices:
        p = _subparsers(sub.choices["rules"]).add_parser(
            "reevaluate", help="re-evaluate every machine now (after changing rules/)")
        p.set_defaults(func=cmd_rules_reevaluate, rules_command="reevaluate")

    sub.add_parser("maintain", help="run one maintenance pass (waiver expiry, unit rules, "
                   "today's history)").set_defaults(func=cmd_maintain)
