"""kiemke-collector: serve, db upgrade, and admin commands for units, tokens and agents.

Secrets (tokens) are printed alone on stdout so scripts can capture them; everything
meant for people goes to stderr. Errors say what is wrong and what to do.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from kiemke import __version__
from kiemke.collector.accounts import audit
from kiemke.collector.accounts.cli import add_users_commands, cli_actor
from kiemke.collector.assets.cli import add_assets_commands
from kiemke.collector.cli_common import (
    CliError,
    Command,
    command_config,
    open_engine,
    print_table,
    safe_url,
    say,
    write_connection,
)
from kiemke.collector.config import CollectorConfig, ConfigError, parse_duration
from kiemke.collector.db.migrate import (
    check_migrated,
    current_revision,
    head_revision,
    is_up_to_date,
    upgrade,
)
from kiemke.collector.enrollment import (
    EnrollmentError,
    create_admin_token,
    create_enrollment_token,
    list_admin_tokens,
    list_agents,
    list_enrollment_tokens,
    revoke_admin_token,
    revoke_agent,
    revoke_enrollment_token,
)
from kiemke.collector.evaluation.cli import add_compliance_commands
from kiemke.collector.reports.cli import add_report_commands
from kiemke.collector.server import serve
from kiemke.collector.setup_cmd import add_setup_command
from kiemke.collector.timeutil import iso_z
from kiemke.collector.units import UnitError, add_unit, all_units, find_unit
from kiemke.compliance.cli import add_rules_commands

# This module's commands take the configuration; with_config makes them Commands.
ConfigCommand = Callable[[CollectorConfig, argparse.Namespace], None]


def with_config(command: ConfigCommand) -> Command:
    """A command of this module, run with the collector configuration (--config)."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        command(command_config(args), args)
        return 0
    return run


# ---------------------------------------------------------------------------- commands

def cmd_serve(config: CollectorConfig, args: argparse.Namespace) -> None:
    if args.migrate:
        upgrade(config.database_url)
    with open_engine(config):
        pass  # refuses to start on an unreachable or un-migrated database
    say(f"kiemke-collector {__version__} serving on http://{args.bind} "
        f"({args.workers} {args.worker} workers), database {safe_url(config.database_url)}")
    serve(config, bind=args.bind, workers=args.workers, threads=args.threads,
          model=args.worker)


def cmd_db_upgrade(config: CollectorConfig, _args: argparse.Namespace) -> None:
    try:
        upgrade(config.database_url)
    except OperationalError as exc:
        raise CliError(f"cannot migrate {safe_url(config.database_url)}: {exc.orig}") from None
    _ok, revision = check_migrated(config.database_url)
    say(f"database {safe_url(config.database_url)} is at revision {revision}")


def cmd_db_current(config: CollectorConfig, _args: argparse.Namespace) -> None:
    with open_engine(config, require_migrated=False) as engine:
        print(f"current: {current_revision(engine)}  head: {head_revision()}  "
              f"up to date: {'yes' if is_up_to_date(engine) else 'no'}")


def cmd_units_add(config: CollectorConfig, args: argparse.Namespace) -> None:
    with write_connection(config) as conn:
        unit = add_unit(conn, args.name, parent=args.parent, code=args.code)
        audit.record(conn, cli_actor(), "unit.add", f"unit {unit.id}", unit_id=unit.id,
                     details={"path": unit.path, "code": unit.code})
    print(unit.id)
    say(f"created unit {unit.id}: {unit.path}")


def cmd_units_list(config: CollectorConfig, _args: argparse.Namespace) -> None:
    with open_engine(config) as engine, engine.connect() as conn:
        rows = all_units(conn)
    print_table([[u.id, u.code, u.level, u.path] for u in rows], ["ID", "CODE", "LEVEL", "PATH"])


def cmd_tokens_create(config: CollectorConfig, args: argparse.Namespace) -> None:
    expires = parse_duration(args.expires) if args.expires else None
    with write_connection(config) as conn:
        token_id, token = create_enrollment_token(conn, args.unit, expires_in=expires,
                                                  max_uses=args.max_uses,
                                                  description=args.description)
        unit = find_unit(conn, args.unit)
        audit.record(conn, cli_actor(), "enrolment_token.add", f"enrolment token {token_id}",
                     unit_id=unit.id, details={"expires": args.expires,
                                               "max_uses": args.max_uses,
                                               "description": args.description})
    print(token)
    limits = [f"expires in {args.expires}" if expires else "no expiry",
              f"{args.max_uses} use(s)" if args.max_uses else "unlimited uses"]
    say(f"enrolment token {token_id} for {unit.path} ({', '.join(limits)}); "
        f"it is shown only now: give it to the agents' installer")


def cmd_tokens_list(config: CollectorConfig, _args: argparse.Namespace) -> None:
    with open_engine(config) as engine, engine.connect() as conn:
        rows = list_enrollment_tokens(conn)
    print_table([[r.id, r.unit_path, r.use_count, r.max_uses or "-", iso_z(r.expires_at) or "-",
                  "revoked" if r.revoked_at else "active", r.description or ""] for r in rows],
                ["ID", "UNIT", "USES", "MAX", "EXPIRES", "STATE", "DESCRIPTION"])


def _revoke(config: CollectorConfig, what: str, ident: str,
            func: Callable[[Connection, Any], bool], numeric: bool = True,
            action: str = "") -> None:
    if numeric and not ident.isdigit():
        raise CliError(f"{what} ids are numbers; see `kiemke-collector {what}s list`")
    with write_connection(config) as conn:
        done = func(conn, int(ident) if numeric else ident)
        if done and action:
            audit.record(conn, cli_actor(), action, f"{what} {ident}")
    if not done:
        raise CliError(f"no active {what} with id {ident}")
    say(f"{what} {ident} revoked")


def cmd_tokens_revoke(config: CollectorConfig, args: argparse.Namespace) -> None:
    _revoke(config, "token", args.id, revoke_enrollment_token,
            action="enrolment_token.revoke")


def cmd_agents_list(config: CollectorConfig, args: argparse.Namespace) -> None:
    with open_engine(config) as engine, engine.connect() as conn:
        rows = list_agents(conn, include_revoked=args.all)
    print_table([[r.id, r.machine_id, r.hostname, r.unit_path, iso_z(r.enrolled_at),
                  iso_z(r.last_seen) or "-", "revoked" if r.revoked_at else "active"]
                 for r in rows],
                ["ID", "MACHINE", "HOSTNAME", "UNIT", "ENROLLED", "LAST SEEN", "STATE"])


def cmd_agents_revoke(config: CollectorConfig, args: argparse.Namespace) -> None:
    _revoke(config, "agent", args.id, revoke_agent, numeric=False, action="agent.revoke")


def cmd_admin_create(config: CollectorConfig, args: argparse.Namespace) -> None:
    with write_connection(config) as conn:
        token_id, token = create_admin_token(conn, args.name)
        audit.record(conn, cli_actor(), "token.add", f"api token {token_id} ({args.name})",
                     details={"role": "admin"})
    print(token)
    say(f"admin token {token_id} ({args.name}); it is shown only now: send it as "
        f"'Authorization: Bearer <token>' to the read APIs")


def cmd_admin_list(config: CollectorConfig, _args: argparse.Namespace) -> None:
    with open_engine(config) as engine, engine.connect() as conn:
        rows = list_admin_tokens(conn)
    print_table([[r.id, r.name, iso_z(r.created_at), "revoked" if r.revoked_at else "active"]
                 for r in rows], ["ID", "NAME", "CREATED", "STATE"])


def cmd_admin_revoke(config: CollectorConfig, args: argparse.Namespace) -> None:
    _revoke(config, "admin-token", args.id, revoke_admin_token, action="token.revoke")


# ---------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiemke-collector",
                                     description="kiemke collector: receives agent reports")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", metavar="FILE",
                        help="KEY=VALUE settings file (default: $KIEMKE_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the HTTP server (gunicorn)")
    p.add_argument("--bind", default="127.0.0.1:8080", help="host:port (default %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    p.add_argument("--worker", choices=("buffered", "gthread"), default="buffered",
                   help="worker model (default buffered: whole requests are read before a "
                        "thread runs them; docs/deployment.md)")
    p.add_argument("--migrate", action="store_true", help="run `db upgrade` before serving")
    p.set_defaults(func=with_config(cmd_serve))

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_cmd",
                                                                     required=True)
    db.add_parser("upgrade", help="create or migrate the tables").set_defaults(
        func=with_config(cmd_db_upgrade))
    db.add_parser("current", help="show the schema revision").set_defaults(
        func=with_config(cmd_db_current))

    units = sub.add_parser("units", help="the unit tree").add_subparsers(dest="units_cmd",
                                                                        required=True)
    p = units.add_parser("add", help="add a unit (prints its id)")
    p.add_argument("name")
    p.add_argument("--parent", help="parent unit id, code or path")
    p.add_argument("--code", help="short unique code, e.g. LDLD-BG")
    p.set_defaults(func=with_config(cmd_units_add))
    units.add_parser("list", help="list units").set_defaults(func=with_config(cmd_units_list))

    tokens = sub.add_parser("tokens", help="enrolment tokens").add_subparsers(
        dest="tokens_cmd", required=True)
    p = tokens.add_parser("create", help="create a token (prints it once)")
    p.add_argument("--unit", required=True, help="unit id, code or path")
    p.add_argument("--expires", help="lifetime such as 30d or 12h (default: never)")
    p.add_argument("--max-uses", type=int, help="how many agents may enrol with it")
    p.add_argument("--description")
    p.set_defaults(func=with_config(cmd_tokens_create))
    tokens.add_parser("list", help="list tokens").set_defaults(func=with_config(cmd_tokens_list))
    p = tokens.add_parser("revoke", help="revoke a token")
    p.add_argument("id")
    p.set_defaults(func=with_config(cmd_tokens_revoke))

    agents = sub.add_parser("agents", help="enrolled agents").add_subparsers(
        dest="agents_cmd", required=True)
    p = agents.add_parser("list", help="list agents")
    p.add_argument("--all", action="store_true", help="include revoked credentials")
    p.set_defaults(func=with_config(cmd_agents_list))
    p = agents.add_parser("revoke", help="revoke an agent credential")
    p.add_argument("id")
    p.set_defaults(func=with_config(cmd_agents_revoke))

    admin = sub.add_parser("admin-tokens", help="API tokens that may do everything (read "
                                                "and write); read-tokens for read-only ones"
                           ).add_subparsers(
        dest="admin_cmd", required=True)
    p = admin.add_parser("create", help="create an admin token (prints it once)")
    p.add_argument("name")
    p.set_defaults(func=with_config(cmd_admin_create))
    admin.add_parser("list", help="list admin tokens").set_defaults(
        func=with_config(cmd_admin_list))
    p = admin.add_parser("revoke", help="revoke an admin token")
    p.add_argument("id")
    p.set_defaults(func=with_config(cmd_admin_revoke))

    # The command groups of the other parts, each added explicitly (rules first: the
    # compliance commands add `rules reevaluate` to it).
    add_rules_commands(sub)
    add_assets_commands(sub)
    add_compliance_commands(sub)
    add_users_commands(sub)
    add_setup_command(sub)
    add_report_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8")  # Vietnamese names on any console
    args = build_parser().parse_args(argv)
    try:
        command: Command = args.func
        return command(args)
    except (CliError, ConfigError, UnitError, EnrollmentError, ValueError) as exc:
        say(f"kiemke-collector: error: {exc}")
        return 2
    except OperationalError as exc:
        say(f"kiemke-collector: database error: {exc.orig}; check KIEMKE_DATABASE_URL and "
            f"that the database runs")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
