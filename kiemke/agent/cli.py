"""kiemke-agent: collect | enroll | send | run | status.

Exit codes (also in docs/agent-config.md):
  0  done
  1  unexpected error (see the message / log)
  2  wrong command line or configuration (the message names the file and key), including
     a plain http:// collector that is not on loopback without [agent] allow_insecure_http
  3  the report could not be delivered now; it is in the spool and will be sent later
     (enroll: the collector could not be reached)
  4  not enrolled, or the collector refused the credentials / enrolment token
  5  the collector rejected the report (moved to spool/rejected/)
  6  the spool could not keep the report (disk full, read-only): spooled reports were
     delivered and this one sent directly; the message says whether it was accepted
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import inspect
import json
import logging
import logging.handlers
import sys
import types
from pathlib import Path
from typing import Any

import kiemke
from kiemke.agent.config import AgentConfig, ConfigError, default_config_path, load_config
from kiemke.agent.configure import SETTINGS as CONFIGURE_OPTIONS
from kiemke.agent.configure import pending_token
from kiemke.agent.exitcodes import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_NOT_ENROLLED,
    EXIT_OK,
    EXIT_SPOOLED,
)
from kiemke.agent.state import StateDir, StateError

# delivery/transport (and so requests) are imported inside the commands: `run` first
# trims what requests loads (see _lighten_for_service).

log = logging.getLogger("kiemke.agent")


class _Secretless(logging.Filter):
    """Belt and braces: no log line may carry a bearer secret or an enrolment token."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 8]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            if any(s in msg for s in self.secrets):
                for s in self.secrets:
                    msg = msg.replace(s, "***")
                record.msg, record.args = msg, ()
        return True


def _setup_logging(level: str, verbose: bool, log_file: Path | None = None,
                   secrets: list[str] | None = None) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                            "%Y-%m-%dT%H:%M:%SZ")
    import time
    fmt.converter = time.gmtime
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        handlers.append(logging.handlers.RotatingFileHandler(
            log_file, maxBytes=1024 * 1024, backupCount=3, encoding="utf-8"))
    flt = _Secretless(secrets or [])
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(flt)
        root.addHandler(h)
    root.setLevel(logging.DEBUG if verbose else getattr(logging, level.upper(), logging.INFO))
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kiemke-agent",
        description="kiemke agent: inventory and compliance facts of this computer.")
    p.add_argument("--config", metavar="PATH", help="configuration file (default "
                   "/etc/kiemke/agent.conf, %%ProgramData%%\\kiemke\\agent.conf on Windows)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"kiemke-agent {kiemke.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    c = sub.add_parser("collect", help="print this machine's report as JSON (no network)",
                       description="Print this machine's report as JSON. Sends nothing on "
                       "the network: the network checks are marked 'not checked' unless "
                       "--probes is given.")
    c.add_argument("--full", action="store_true", help="full inventory instead of periodic")
    c.add_argument("--probes", action="store_true",
                   help="also run the network checks of [network] (they contact the "
                   "collector and the configured targets, as send does)")
    c.add_argument("--pretty", action="store_true", help="indented JSON")
    c.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    e = sub.add_parser("enroll", help="register this machine with a collector")
    e.add_argument("--server", required=True, metavar="URL",
                   help="collector URL, e.g. https://kiemke.example.gov.vn")
    e.add_argument("--token", required=True, metavar="TOKEN",
                   help="enrolment token from the administrator; '-' reads it from stdin "
                   "(keeps it out of the process list). Write --token=TOKEN: a token may "
                   "begin with '-'")
    # Replaced by [agent] allow_insecure_http (send and run need it too); kept so that old
    # scripts get an explanation instead of "unrecognized arguments".
    e.add_argument("--insecure", action="store_true", help=argparse.SUPPRESS)
    cf = sub.add_parser("configure", help="write installer settings into the configuration "
                        "and keep an enrolment token for the first start of `run`")
    for name in CONFIGURE_OPTIONS:
        cf.add_argument("--" + name.replace("_", "-"), metavar="VALUE",
                        help=f"set [{CONFIGURE_OPTIONS[name][0]}] {CONFIGURE_OPTIONS[name][1]}")
    cf.add_argument("--token", metavar="TOKEN", help="enrolment token, used (and deleted) by "
                    "`run` at its first start; write --token=VALUE")
    s = sub.add_parser("send", help="collect and send one report now, then the spool")
    s.add_argument("--full", action="store_true", help="send a full inventory")
    sub.add_parser("run", help="keep running: periodic reports (service / scheduled task)")
    st = sub.add_parser("status", help="enrolment, spool and last delivery")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _open_state(config: AgentConfig, allow_fallback: bool) -> StateDir:
    state, fell_back = StateDir.open(config.state_dir, allow_fallback=allow_fallback)
    if fell_back:
        print(f"kiemke-agent: {config.state_dir} is not writable by this user; using "
              f"{state.path} instead (run as root/Administrator for the system state).",
              file=sys.stderr)
    config.state_dir = state.path
    return state


def cmd_collect(args: argparse.Namespace, config: AgentConfig) -> int:
    from kiemke.agent import delivery

    state = _open_state(config, allow_fallback=True)
    report = delivery.collect(config, state, "full" if args.full else "periodic",
                              network_checks=args.probes)
    text = json.dumps(report, ensure_ascii=False, indent=2 if args.pretty else None,
                      separators=None if args.pretty else (",", ":"))
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.buffer.write((text + "\n").encode("utf-8"))
        sys.stdout.flush()
    return EXIT_OK


def _config_file(config: AgentConfig) -> str:
    return str(config.source) if config.source else "agent.conf"


def _insecure_server(command: str, config: AgentConfig, state: StateDir) -> str | None:
    """The message when send/run would deliver over http:// to another machine."""
    from kiemke.agent.delivery import server_for
    from kiemke.agent.server_url import InsecureServer, check_server_url

    creds = state.load_credentials()
    server = server_for(config, creds) if creds else config.server
    if not server:
        return None
    try:
        check_server_url(server, insecure=config.allow_insecure_http)
    except InsecureServer as exc:
        origin = (f"[agent] server in {_config_file(config)}" if config.server else
                  f"the server stored at enrolment in {state.credentials_path}")
        return f"kiemke-agent {command}: {origin}: {exc}"
    except ValueError as exc:
        return f"kiemke-agent {command}: {exc}"
    return None


def cmd_enroll(args: argparse.Namespace, config: AgentConfig) -> int:
    from kiemke.agent import delivery
    from kiemke.agent.server_url import InsecureServer, check_server_url
    from kiemke.agent.transport import RETRY_LATER, UNAUTHORIZED, TransportError

    try:
        server = check_server_url(args.server, insecure=config.allow_insecure_http)
    except InsecureServer as exc:
        print(f"kiemke-agent enroll: {exc}", file=sys.stderr)
        if args.insecure:
            print(f"--insecure is not enough any more: send and run refuse http:// too, so "
                  f"the choice belongs in {_config_file(config)} ([agent] "
                  "allow_insecure_http = true).", file=sys.stderr)
        return EXIT_CONFIG
    except ValueError as exc:
        print(f"kiemke-agent enroll: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from_stdin = args.token == "-"  # noqa: S105 - "-" means stdin, not a password
    token = sys.stdin.readline().strip() if from_stdin else args.token.strip()
    if not token:
        print("kiemke-agent enroll: the enrolment token is empty.", file=sys.stderr)
        return EXIT_CONFIG
    state = _open_state(config, allow_fallback=False)
    try:
        creds = delivery.enroll(config, state, server, token)
    except TransportError as exc:
        print(f"kiemke-agent enroll: {exc.message}", file=sys.stderr)
        if exc.outcome == RETRY_LATER:
            print("Check the URL, that the collector is running and that this computer "
                  "can reach it, then run enroll again.", file=sys.stderr)
            return EXIT_SPOOLED
        return EXIT_NOT_ENROLLED if exc.outcome == UNAUTHORIZED else EXIT_ERROR
    unit = creds.unit.get("path") or creds.unit.get("name") or "?"
    print(f"enrolled with {server} as agent {creds.agent_id}, unit: {unit}")
    print(f"credentials stored in {state.credentials_path}")
    return EXIT_OK


def cmd_configure(args: argparse.Namespace, config: AgentConfig) -> int:
    from kiemke.agent.configure import configure

    settings = {name: getattr(args, name) for name in CONFIGURE_OPTIONS}
    # Installers pass every property, most of them empty: empty means "leave as is".
    settings = {k: (v if v not in ("", None) else None) for k, v in settings.items()}
    state = _open_state(config, allow_fallback=False)
    result = configure(Path(args.config) if args.config else default_config_path(), state,
                       settings, args.token or None)
    print(f"configuration {result.config_path}: "
          + (", ".join(result.written) + " written" if result.written else "unchanged"))
    if result.token_path:
        print(f"enrolment token kept in {result.token_path} until `kiemke-agent run` enrols")
    try:
        load_config(result.config_path, must_exist=True)
    except ConfigError as exc:
        print(f"kiemke-agent configure: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def cmd_send(args: argparse.Namespace, config: AgentConfig) -> int:
    from kiemke.agent import delivery
    from kiemke.agent.delivery import NotEnrolled

    state = _open_state(config, allow_fallback=False)
    problem = _insecure_server("send", config, state)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_CONFIG
    try:
        result = delivery.send(config, state, force_full=args.full)
    except NotEnrolled as exc:
        print(f"kiemke-agent send: {exc}", file=sys.stderr)
        return EXIT_NOT_ENROLLED
    stream = sys.stdout if result.exit_code == EXIT_OK else sys.stderr
    print(("" if result.exit_code == EXIT_OK else "kiemke-agent send: ") + result.message,
          file=stream)
    return result.exit_code


def _lighten_for_service() -> None:
    """Keep the resident agent small (budget: 35 MB RSS; bench/bench_agent.py measures it).

    - glibc gives each thread that contends for malloc a new arena (up to 8 per core) and
      keeps the arenas' freed pages: with a thread per collector and per probe on every
      run, RSS crept up by about 1.5 MB over the first hundred runs and stayed there
      (issue 12). Two arenas are plenty for an agent that runs one report at a time.
    - requests imports charset_normalizer (about 3 MB resident) only to guess the encoding
      of non-JSON answers; the collector answers UTF-8 JSON. Marking it absent before
      requests is imported makes requests fall back to UTF-8.
    - apscheduler.util imports asyncio (about 1.5 MB with its submodules) for one function,
      iscoroutinefunction; the agent schedules no coroutines. It gets inspect's (what
      apscheduler itself uses from Python 3.14), and asyncio stays importable for real.
    Only for `run`, and only when those modules are not loaded yet in this process.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc (musl): no tuning
            ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 2)
    if "requests" not in sys.modules:
        if "charset_normalizer" not in sys.modules:
            sys.modules["charset_normalizer"] = None  # type: ignore[assignment]
        import warnings
        warnings.filterwarnings("ignore", message=".*character detection dependency.*")
    if "apscheduler.util" not in sys.modules and "asyncio" not in sys.modules:
        stub = types.ModuleType("asyncio")
        stub.iscoroutinefunction = inspect.iscoroutinefunction  # type: ignore[attr-defined]
        sys.modules["asyncio"] = stub
        try:
            import apscheduler.util  # type: ignore[import-untyped]  # noqa: F401 - binds the stub's function, once
        finally:
            del sys.modules["asyncio"]


_M_ARENA_MAX = -8  # glibc malloc.h


def cmd_run(args: argparse.Namespace, config: AgentConfig) -> int:
    _lighten_for_service()
    from kiemke.agent.scheduler import AgentService

    state = _open_state(config, allow_fallback=False)
    problem = _insecure_server("run", config, state)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_CONFIG
    creds = state.load_credentials()
    _setup_logging(config.log_level, args.verbose, state.log_path,
                   [creds.secret] if creds else [])
    if creds is None and pending_token(state) is None:
        log.warning("not enrolled yet: reports are collected into the spool until "
                    "kiemke-agent enroll is run")
    AgentService(config, state).run()
    return EXIT_OK


def status_data(config: AgentConfig, state: StateDir) -> dict[str, Any]:
    from kiemke.agent import delivery

    creds = state.load_credentials()
    spool = delivery.open_spool(config, state)
    status = state.status()
    return {
        "version": kiemke.__version__,
        "config": str(config.source) if config.source else None,
        "state_dir": str(state.path),
        "enrolled": creds is not None,
        "server": (delivery.server_for(config, creds) if creds else config.server),
        "agent_id": creds.agent_id if creds else None,
        "unit": (creds.unit.get("path") or creds.unit.get("name")) if creds else None,
        "machine_id": creds.machine_id if creds else None,
        "enrolled_at": creds.enrolled_at if creds else None,
        "credentials_refused": bool(creds and status.get("refused_agent_id") == creds.agent_id),
        "spool": spool.stats(),
        "last_attempt_at": status.get("last_attempt_at"),
        "last_success_at": status.get("last_success_at"),
        "last_error": status.get("last_error"),
        "last_full_at": status.get("last_full_at"),
    }


def cmd_status(args: argparse.Namespace, config: AgentConfig) -> int:
    state = _open_state(config, allow_fallback=True)
    data = status_data(config, state)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EXIT_OK if data["enrolled"] else EXIT_NOT_ENROLLED
    sp = data["spool"]
    lines = [
        f"kiemke-agent {data['version']}",
        f"configuration:   {data['config'] or '(none, defaults)'}",
        f"state directory: {data['state_dir']}",
        ("enrolled:        yes, agent " + str(data["agent_id"]) + f" at {data['server']}, "
         f"unit {data['unit']}") if data["enrolled"] else
        "enrolled:        NO - run kiemke-agent enroll --server=URL --token=TOKEN",
        f"spool:           {sp['pending']} report(s) waiting, {sp['bytes']} bytes; "
        f"{sp['dropped_total']} dropped (spool full), {sp['rejected_total']} rejected",
        f"last success:    {data['last_success_at'] or 'never'}",
        f"last attempt:    {data['last_attempt_at'] or 'never'}",
    ]
    if data["last_error"]:
        lines.append(f"last error:      {data['last_error']}")
    if data["credentials_refused"]:
        lines.append("ATTENTION: the collector refused these credentials: re-enroll.")
    print("\n".join(lines))
    return EXIT_OK if data["enrolled"] else EXIT_NOT_ENROLLED


COMMANDS = {"collect": cmd_collect, "configure": cmd_configure, "enroll": cmd_enroll,
            "send": cmd_send, "run": cmd_run, "status": cmd_status}


def _join_token(argv: list[str]) -> list[str]:
    """`--token -Xy...` -> `--token=-Xy...`: a token may begin with '-', which argparse
    would take for an option ("expected one argument")."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--token":
            out[i:i + 2] = [f"--token={out[i + 1]}"]
            break
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(_join_token(sys.argv[1:] if argv is None else argv))
    try:
        # configure may create the file it is given
        config = load_config(args.config,
                             must_exist=bool(args.config) and args.command != "configure")
    except ConfigError as exc:
        print(f"kiemke-agent: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command != "run":
        _setup_logging(config.log_level if args.verbose else "WARNING", args.verbose)
    try:
        return COMMANDS[args.command](args, config)
    except StateError as exc:
        print(f"kiemke-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a readable line, the traceback only with -v
        log.debug("unexpected error", exc_info=True)
        print(f"kiemke-agent: unexpected error: {type(exc).__name__}: {exc}. Run again "
              "with -v for details.", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
