"""`kiemke-collector users add|list|disable|passwd` and `read-tokens create|list|revoke`.

Hooked in by collector/cli.py. Passwords are asked twice on a terminal, or read from the
first line of stdin with --password-stdin (scripts, `kiemke-collector setup`); they are
never taken from the command line, where `ps` and shell history would show them.
Every change is in the audit log with the author `cli:<login>`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from kiemke.collector.accounts.roles import ROLES, VIEWER, Principal, cli_principal
from kiemke.collector.accounts.tokens import create_api_token, list_api_tokens, revoke_api_token
from kiemke.collector.accounts.users import (
    UserError,
    add_user,
    disable_user,
    list_users,
    set_password,
)
from kiemke.collector.cli_common import CliError, open_engine, print_table, write_connection
from kiemke.collector.config import CollectorConfig
from kiemke.collector.timeutil import iso_z


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _config(args: argparse.Namespace) -> CollectorConfig:
    config = CollectorConfig.from_env(config_file=args.config)
    config.ensure_data_dir()
    return config


def cli_actor() -> Principal:
    try:
        login = os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        login = f"uid{os.getuid()}"
    return cli_principal(login)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UserError("password", "no terminal to ask the password on; pipe it in with "
                                    "--password-stdin")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("password", "the two passwords differ; nothing was changed")
    return first


def _run(args: argparse.Namespace, action: str) -> int:
    config = _config(args)
    try:
        if action == "add":
            password = _password(args)
            with write_connection(config) as conn:
                user = add_user(conn, args.name, password, role=args.role, unit=args.unit,
                                display_name=args.display_name, actor=cli_actor())
            _say(f"user {user.name} ({user.role}, {user.unit_path or 'whole organisation'}) "
                 f"created; they log in at the console with this name and password")
        elif action == "list":
            with open_engine(config) as engine, engine.connect() as conn:
                rows = list_users(conn)
            print_table([[u.id, u.name, u.display_name, u.role, u.unit_path or "(all)",
                     "disabled" if u.disabled else "locked" if u.locked_until else "active",
                     iso_z(u.last_login_at) or "-"] for u in rows],
                   ["ID", "NAME", "DISPLAY NAME", "ROLE", "UNIT", "STATE", "LAST LOGIN"])
        elif action == "disable":
            with write_connection(config) as conn:
                user = disable_user(conn, args.name, actor=cli_actor())
            _say(f"user {user.name} disabled; their sessions ended")
        elif action == "passwd":
            password = _password(args)
            with write_connection(config) as conn:
                user = set_password(conn, args.name, password, actor=cli_actor())
            _say(f"password of {user.name} changed; their other sessions ended")
    except UserError as exc:
        raise CliError(str(exc)) from None
    return 0


def _tokens(args: argparse.Namespace, action: str) -> int:
    config = _config(args)
    if action == "create":
        with write_connection(config) as conn:
            token_id, token = create_api_token(conn, args.name, role=VIEWER, unit=args.unit,
                                               actor=cli_actor())
        print(token)
        _say(f"read-only token {token_id} ({args.name}) for "
             f"{args.unit or 'the whole organisation'}; it is shown only now. It reads the "
             f"figures, machines, reports and ranking of that subtree, and changes nothing.")
    elif action == "list":
        with open_engine(config) as engine, engine.connect() as conn:
            rows = list_api_tokens(conn)
        print_table([[r.id, r.name, "admin" if r.role == "admin" else "read-only",
                 r.unit_path or "(all)", iso_z(r.created_at),
                 "revoked" if r.revoked_at else "active"] for r in rows],
               ["ID", "NAME", "ROLE", "UNIT", "CREATED", "STATE"])
    else:
        if not args.id.isdigit():
            raise CliError("token ids are numbers; see `kiemke-collector read-tokens list`")
        with write_connection(config) as conn:
            done = revoke_api_token(conn, int(args.id), actor=cli_actor())
        if not done:
            raise CliError(f"no active API token with id {args.id}")
        _say(f"API token {args.id} revoked")
    return 0


def add_users_commands(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("users", help="people who log in to the console").add_subparsers(
        dest="users_cmd", required=True)
    p = users.add_parser("add", help="add a user (asks the password)")
    p.add_argument("name", help="login name, e.g. lan.nguyen")
    p.add_argument("--role", required=True, choices=ROLES,
                   help="admin (everything), manager (waivers, enrolment tokens, machine "
                        "moves) or viewer (read only)")
    p.add_argument("--unit", help="unit id, code or path the user is limited to, with its "
                                  "subtree (default: the whole organisation)")
    p.add_argument("--display-name", help="full name shown in the console")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin")
    p.set_defaults(func=lambda a: _run(a, "add"))
    users.add_parser("list", help="list users").set_defaults(func=lambda a: _run(a, "list"))
    p = users.add_parser("disable", help="disable a user and end their sessions")
    p.add_argument("name")
    p.set_defaults(func=lambda a: _run(a, "disable"))
    p = users.add_parser("passwd", help="set a user's password (clears a lockout)")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin")
    p.set_defaults(func=lambda a: _run(a, "passwd"))

    tokens = sub.add_parser("read-tokens", help="read-only API tokens scoped to a unit "
                                                "(Grafana, scripts)").add_subparsers(
        dest="read_tokens_cmd", required=True)
    p = tokens.add_parser("create", help="create a read-only token (prints it once)")
    p.add_argument("name", help="who or what uses it, e.g. grafana")
    p.add_argument("--unit", help="unit id, code or path (default: the whole organisation)")
    p.set_defaults(func=lambda a: _tokens(a, "create"))
    tokens.add_parser("list", help="list every API token (admin and read-only)").set_defaults(
        func=lambda a: _tokens(a, "list"))
    p = tokens.add_parser("revoke", help="revoke an API token")
    p.add_argument("id")
    p.set_defaults(func=lambda a: _tokens(a, "revoke"))
