"""`kiemke-collector assets import|list|unmatched|recompute` (hooked in by collector/cli.py).

What people read goes to stderr, tables to stdout. A rejected file lists every problem
with its line and column and exits 1; nothing is imported then.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select

from kiemke.collector.assets.csv_import import RegisterError
from kiemke.collector.assets.register import import_register, recompute
from kiemke.collector.assets.store import ImportSummary, last_import, unmatched_machines
from kiemke.collector.cli_common import command_config, open_engine, print_table, say
from kiemke.collector.db.asset_tables import assets
from kiemke.collector.db.tables import units
from kiemke.collector.timeutil import iso_z


def _print_summary(summary: ImportSummary, what: str) -> None:
    m = summary.matched
    say(f"{what}: {summary.rows} register rows; matched {summary.matched_total} "
        f"(serial {m['serial']}, asset tag {m['asset_tag']}, hostname {m['hostname']}); "
        f"{len(summary.unmatched)} not matched; {summary.machines_without_entry} reporting "
        f"machines have no register entry (their age is estimated from firmware)")
    if summary.unmatched:
        say("register rows that match no machine:")
        print_table([[u["line"], u["asset_tag"], u["serial"], u["hostname"], u["reason"]]
                     for u in summary.unmatched],
                    ["LINE", "ASSET_TAG", "SERIAL", "HOSTNAME", "WHY"])


def cmd_import(args: argparse.Namespace) -> int:
    config = command_config(args)
    with open_engine(config) as engine:
        try:
            from kiemke.collector.accounts.cli import cli_actor

            summary = import_register(engine, config, args.file, dry_run=args.dry_run,
                                      actor=cli_actor())
        except RegisterError as exc:
            for problem in exc.problems:
                say(str(problem))
            say(f"nothing was imported: fix the {len(exc.problems)} problem(s) above and "
                f"run the import again")
            return 1
    if args.dry_run:
        _print_summary(summary, f"dry run of {args.file} (nothing was changed)")
    else:
        _print_summary(summary, f"imported {args.file}, replacing {summary.replaced} rows")
    return 0


def cmd_recompute(args: argparse.Namespace) -> int:
    config = command_config(args)
    with open_engine(config) as engine:
        summary = recompute(engine, config)
    _print_summary(summary, "re-matched the register and recomputed every machine")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    query = (select(assets, units.c.path.label("unit_path"))
             .outerjoin(units, units.c.id == assets.c.unit_id).order_by(assets.c.line))
    if args.unmatched:
        query = query.where(assets.c.machine_id.is_(None))
    with open_engine(command_config(args)) as engine, engine.connect() as conn:
        rows = list(conn.execute(query))
        imported = last_import(conn)
    if imported is None:
        say("no register imported yet: kiemke-collector assets import FILE.csv")
        return 0
    say(f"register {imported.file_name} imported {iso_z(imported.imported_at)}: "
        f"{imported.rows} rows, {imported.matched} matched")
    print_table([[r.line, r.asset_tag, r.serial, r.hostname, r.category,
                  r.purchase_date.isoformat(), r.cost, r.unit_path or r.unit_text,
                  r.machine_id or "-", r.matched_by or "-", r.description] for r in rows],
                ["LINE", "ASSET_TAG", "SERIAL", "HOSTNAME", "CATEGORY", "PURCHASED", "COST", "UNIT",
                 "MACHINE", "MATCHED_BY", "DESCRIPTION"])
    return 0


def cmd_unmatched(args: argparse.Namespace) -> int:
    with open_engine(command_config(args)) as engine, engine.connect() as conn:
        rows = list(conn.execute(select(assets).where(assets.c.machine_id.is_(None))
                                 .order_by(assets.c.line)))
        paths = dict(conn.execute(select(units.c.id, units.c.path)).all())
        machines = unmatched_machines(conn)
    print(f"register rows without a machine ({len(rows)}):")
    print_table([[r.line, r.asset_tag, r.serial, r.hostname, r.description] for r in rows],
                ["LINE", "ASSET_TAG", "SERIAL", "HOSTNAME", "DESCRIPTION"])
    print(f"\nmachines without a register entry ({len(machines)}; age estimated):")
    print_table([[m.machine_id, m.hostname, paths.get(m.unit_id, m.unit_id)] for m in machines],
                ["MACHINE", "HOSTNAME", "UNIT"])
    return 0


def add_assets_commands(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("assets", help="asset register and depreciation")
    sub = parser.add_subparsers(dest="assets_cmd", required=True)
    p = sub.add_parser("import", help="replace the register with a CSV file (docs/assets.md)")
    p.add_argument("file", help="CSV: asset_tag, serial, hostname, category, purchase_date, "
                                "cost, unit, description")
    p.add_argument("--dry-run", action="store_true",
                   help="check the file and show the matching, change nothing")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("list", help="the imported register and what each row matched")
    p.add_argument("--unmatched", action="store_true", help="only rows without a machine")
    p.set_defaults(func=cmd_list)
    sub.add_parser("unmatched", help="register rows without a machine, machines without a "
                                     "register entry").set_defaults(func=cmd_unmatched)
    sub.add_parser("recompute", help="re-match the register and recompute every machine "
                                     "(after editing rules/depreciation.yml)"
                   ).set_defaults(func=cmd_recompute)
    return parser
