"""kiemke-collector report | ranking | history run|simulate | reports deliver.

Added to kiemke-collector by cli.COMMAND_HOOKS (add_report_commands). Errors name the
option to fix (--unit, --period, --format, --lang) and exit with 2; nothing is written
when one occurs.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from kiemke.collector.reports.render import FORMATS
from kiemke.collector.timeutil import utcnow


def _config(args: argparse.Namespace) -> Any:
    from kiemke.collector.cli_common import command_config

    return command_config(args)


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _write_output(target: str, body: bytes) -> None:
    if target == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return
    path = Path(target)
    if path.parent and not path.parent.exists():
        raise ValueError(f"-o {target}: the folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(body)
    tmp.replace(path)


def _produce(args: argparse.Namespace, what: str) -> int:
    from kiemke.collector.cli_common import open_engine as _engine
    from kiemke.collector.reports.ranking import load_ranking_config
    from kiemke.collector.reports.service import ParameterError, ranking_output, report_output
    from kiemke.collector.reports.settings import ReportSettings

    config = _config(args)
    settings = ReportSettings.from_env()
    now = utcnow()
    fmt = args.format or (Path(args.output).suffix.lstrip(".") if args.output != "-" else "")
    with _engine(config) as engine, engine.connect() as conn:
        try:
            if what == "report":
                out = report_output(conn, args.unit, args.period, fmt, args.lang, now=now,
                                    timezone=config.timezone, place=settings.place)
            else:
                out = ranking_output(conn, args.parent, args.period, fmt, args.lang, now=now,
                                     timezone=config.timezone,
                                     config=load_ranking_config(config.rules_dir),
                                     place=settings.place)
        except ParameterError as exc:
            raise ValueError(f"--{exc.field}: {exc}") from None
    _write_output(args.output, out.body)
    if args.output != "-":
        _say(f"wrote {args.output} ({len(out.body):,} bytes)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    return _produce(args, "report")


def cmd_ranking(args: argparse.Namespace) -> int:
    return _produce(args, "ranking")


def _ruleset(config: Any) -> Any:
    from kiemke.collector.evaluation.ruleset import load_ruleset

    return load_ruleset(config)


def cmd_history_run(args: argparse.Namespace) -> int:
    from kiemke.collector.cli_common import open_engine as _engine
    from kiemke.collector.reports.history import run_daily_job

    config = _config(args)
    with _engine(config) as engine:
        stats = run_daily_job(engine, _ruleset(config), timezone=config.timezone,
                              stale_after=config.stale_after)
    print(json.dumps(stats, ensure_ascii=False, default=str))
    return 0


def cmd_history_simulate(args: argparse.Namespace) -> int:
    from kiemke.collector.cli_common import open_engine as _engine
    from kiemke.collector.reports import simulate
    from kiemke.collector.reports.periods import local_day

    config = _config(args)
    ruleset = _ruleset(config)
    today = local_day(utcnow(), config.timezone)
    start = today - timedelta(days=args.days)
    sim = simulate.Simulation(ruleset.machine_rules, start=start, days=args.days,
                              seed=args.seed, districts=args.districts,
                              offices_per_district=args.offices, tz=config.timezone)
    with _engine(config) as engine:
        info = simulate.load(engine, ruleset, sim)
    _say(f"SIMULATED fleet loaded: {info['machines']} machines under {info['root']!r}, "
         f"days {start.isoformat()} .. {(today - timedelta(days=1)).isoformat()}")
    print(json.dumps(info, ensure_ascii=False, default=str))
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    from kiemke.collector.cli_common import open_engine as _engine
    from kiemke.collector.reports.delivery import deliver, forget_delivery
    from kiemke.collector.reports.ranking import load_ranking_config
    from kiemke.collector.reports.service import ParameterError, period_of
    from kiemke.collector.reports.settings import ReportSettings

    config = _config(args)
    settings = ReportSettings.from_env()
    if args.folder:
        settings.deliver_dir = Path(args.folder)
    if settings.deliver_dir is None:
        raise ValueError("--folder: give a folder or set KIEMKE_REPORT_DIR")
    now = utcnow()
    try:
        period = period_of(args.period, now, config.timezone)
    except ParameterError as exc:
        raise ValueError(f"--period: {exc}") from None
    with _engine(config) as engine:
        if args.again:
            (settings.deliver_dir / period.text.replace("..", "_") / ".delivered").unlink(
                missing_ok=True)
            forget_delivery(engine, period)
        result = deliver(engine, settings, period, now=now, timezone=config.timezone,
                         ranking_config=load_ranking_config(config.rules_dir))
    print(json.dumps(result, ensure_ascii=False, default=str))
    return 0


def add_report_commands(sub: Any) -> None:
    lang_help = "language of the document: vi (default) or en"
    p = sub.add_parser("report", help="period report of a unit and its subtree "
                       "(pdf, xlsx, csv, html, json)")
    p.add_argument("--unit", required=True, help="unit id, code or path")
    p.add_argument("--period", required=True,
                   help="2026-11 (month), 2026-Q4, 2026, or 2026-11-01..2026-11-15")
    p.add_argument("--format", choices=FORMATS, help="default: from the -o file's extension")
    p.add_argument("--lang", default="vi", choices=("vi", "en"), help=lang_help)
    p.add_argument("-o", "--output", required=True, help="file to write, - for stdout")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("ranking", help="rank the units under a unit over a period")
    p.add_argument("--parent", required=True, help="unit id, code or path")
    p.add_argument("--period", required=True, help="as for report")
    p.add_argument("--format", choices=FORMATS, help="default: from the -o file's extension")
    p.add_argument("--lang", default="vi", choices=("vi", "en"), help=lang_help)
    p.add_argument("-o", "--output", required=True, help="file to write, - for stdout")
    p.set_defaults(func=cmd_ranking)

    history = sub.add_parser("history", help="the history reports are built from"
                             ).add_subparsers(dest="history_cmd", required=True)
    history.add_parser("run", help="run the daily job now: close the local days that "
                       "ended (catches up missed days)").set_defaults(func=cmd_history_run)
    p = history.add_parser("simulate", help="load a SIMULATED fleet with daily history "
                           "(for demos and trials; its units say 'mô phỏng')")
    p.add_argument("--days", type=int, default=396, help="days of history (default 396)")
    p.add_argument("--districts", type=int, default=3)
    p.add_argument("--offices", type=int, default=4, help="offices per district")
    p.add_argument("--seed", type=int, default=9)
    p.set_defaults(func=cmd_history_simulate)

    reports = sub.add_parser("reports", help="scheduled report delivery"
                             ).add_subparsers(dest="reports_cmd", required=True)
    p = reports.add_parser("deliver", help="generate (and mail) a period's reports now")
    p.add_argument("--period", required=True)
    p.add_argument("--folder", help="default: KIEMKE_REPORT_DIR")
    p.add_argument("--again", action="store_true", help="even if delivered already")
    p.set_defaults(func=cmd_deliver)



