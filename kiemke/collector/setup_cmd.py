"""`kiemke-collector setup`: the second of two commands on a fresh Debian server.

    apt install ./kiemke-collector_<v>_amd64.deb
    kiemke-collector setup --unit "Liên đoàn Lao động tỉnh Bắc Giang" \
        --hostname kiemke.example.gov.vn

Run as root, non-interactive, safe to run again. It migrates the database, creates the
root unit (or finds it), creates the first admin user (once; its password is printed),
installs TLS (the
agency's certificate with --cert/--key, else a self-signed one for --hostname), writes the
nginx site from the packaged template, checks it with `nginx -t`, enables it, starts the
services when systemd runs, and prints the console URL and the next commands.

Database work runs in a child process as the service user (kiemke), so the SQLite files
it creates stay writable by the service.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiemke.collector.config import CollectorConfig, ConfigError

SERVICE_USER = "kiemke"
NGINX_TEMPLATE = Path("/usr/share/kiemke-collector/nginx/kiemke-collector.conf")
SITE_NAME = "kiemke-collector.conf"
PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # noqa: S105
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class SetupError(Exception):
    """Setup cannot go on; the message says what is wrong and what to do."""


def say(text: str = "") -> None:
    print(text, file=sys.stderr, flush=True)


def check_hostname(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    if not _HOSTNAME.match(name):
        raise SetupError(f"--hostname {name!r} is not a host name: give the DNS name agents "
                         "and people will use, for example kiemke.bacgiang.gov.vn")
    return name


def _run(argv: list[str], what: str) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SetupError(f"{argv[0]} is not installed; it is needed to {what}") from None
    if result.returncode != 0:
        raise SetupError(f"could not {what}: {' '.join(argv[:3])} said: "
                         f"{(result.stderr or result.stdout).strip()[-1500:]}")
    return result.stdout


def as_service_user(func: Callable[[], str]) -> str:
    """Run func in a child process as the kiemke user; return what it returned."""
    user = pwd.getpwnam(SERVICE_USER)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.environ["HOME"] = user.pw_dir
            out = func()
            os.write(write_fd, ("ok\n" + out).encode("utf-8"))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_fd, f"error\n{exc}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    status, _, body = b"".join(chunks).decode("utf-8").partition("\n")
    if status != "ok":
        raise SetupError(body or "the database step failed")
    return body


def database_steps(config: CollectorConfig, unit_name: str, code: str | None,
                   admin_name: str) -> Callable[[], str]:
    """Migrate, find or create the root unit, create the first admin user once.

    Returns "unit id\ncreated (0/1)\npassword of the new admin, or empty".
    """
    def steps() -> str:
        from sqlalchemy import select

        from kiemke.collector.accounts.cli import cli_actor
        from kiemke.collector.accounts.users import add_user
        from kiemke.collector.db.account_tables import users
        from kiemke.collector.db.engine import make_engine, write_transaction
        from kiemke.collector.db.migrate import upgrade
        from kiemke.collector.units import UnitError, add_unit, find_unit, validate_name

        config.ensure_data_dir()
        upgrade(config.database_url)
        engine = make_engine(config.database_url)
        try:
            with write_transaction(engine) as conn:
                name = validate_name(unit_name)
                try:
                    unit = find_unit(conn, name)
                    created = False
                except UnitError:
                    unit = add_unit(conn, name, code=code)
                    created = True
                password = ""
                if conn.execute(select(users.c.id).limit(1)).first() is None:
                    # 20 characters from a 54-letter alphabet without look-alikes (~115 bits)
                    password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(20))
                    add_user(conn, admin_name, password, role="admin",
                             display_name="First administrator (setup)", actor=cli_actor())
        finally:
            engine.dispose()
        return f"{unit.id}\n{int(created)}\n{password}"
    return steps


def install_tls(hostname: str, tls_dir: Path, cert: str | None, key: str | None) -> str:
    """The certificate nginx serves; returns a sentence saying which one."""
    crt_path, key_path = tls_dir / "collector.crt", tls_dir / "collector.key"
    tls_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(tls_dir, 0o750)  # noqa: S103 - a directory; the key inside is 0600
    if bool(cert) != bool(key):
        raise SetupError("give both --cert (certificate chain, PEM) and --key (its private "
                         "key, PEM), or neither for a self-signed certificate")
    if cert and key:
        for path in (cert, key):
            if not Path(path).is_file():
                raise SetupError(f"{path} does not exist")
        cert_pub = _run(["openssl", "x509", "-noout", "-pubkey", "-in", cert],
                        f"read the certificate {cert} (it must be PEM)")
        key_pub = _run(["openssl", "pkey", "-pubout", "-in", key],
                       f"read the private key {key} (it must be PEM, without a passphrase)")
        if cert_pub.strip() != key_pub.strip():
            raise SetupError(f"the private key {key} does not belong to the certificate {cert}")
        shutil.copyfile(cert, crt_path)
        shutil.copyfile(key, key_path)
        os.chmod(crt_path, 0o644)
        os.chmod(key_path, 0o600)
        return f"the agency's certificate {cert}"
    if crt_path.exists() and key_path.exists():
        return f"the existing certificate {crt_path} (kept)"
    try:
        ipaddress.ip_address(hostname)
        san = f"IP:{hostname}"
    except ValueError:
        san = f"DNS:{hostname}"
    _run(["openssl", "req", "-x509", "-newkey", "rsa:3072", "-sha256", "-days", "825",
          "-nodes", "-subj", f"/CN={hostname}", "-addext", f"subjectAltName={san}",
          "-keyout", str(key_path), "-out", str(crt_path)], "make a self-signed certificate")
    os.chmod(key_path, 0o600)
    os.chmod(crt_path, 0o644)
    return (f"a self-signed certificate for {hostname} ({crt_path}); agents need it as "
            f"ca_bundle, or replace it with the agency's: setup --cert FILE --key FILE")


def nginx_site(template: str, hostname: str, tls_dir: Path) -> str:
    """The packaged site with this server's name and certificate paths."""
    site, count = re.subn(r"(?m)^(\s*server_name\s+)[^;]+;", rf"\g<1>{hostname};", template)
    if count == 0:
        raise SetupError("the nginx template has no server_name line")
    site = re.sub(r"(?m)^(\s*ssl_certificate\s+)[^;]+;", rf"\g<1>{tls_dir / 'collector.crt'};",
                  site)
    site = re.sub(r"(?m)^(\s*ssl_certificate_key\s+)[^;]+;",
                  rf"\g<1>{tls_dir / 'collector.key'};", site)
    return site


def install_nginx_site(site: str, nginx_dir: Path) -> Path:
    available = nginx_dir / "sites-available" / SITE_NAME
    enabled = nginx_dir / "sites-enabled" / SITE_NAME
    available.parent.mkdir(parents=True, exist_ok=True)
    enabled.parent.mkdir(parents=True, exist_ok=True)
    previous = available.read_text("utf-8") if available.exists() else None
    with tempfile.NamedTemporaryFile("w", dir=available.parent, delete=False,
                                     encoding="utf-8") as fh:
        fh.write(site)
    os.chmod(fh.name, 0o644)
    os.replace(fh.name, available)
    if not enabled.is_symlink():
        enabled.symlink_to(available)
    try:
        _run(["nginx", "-t", "-q"], "check the nginx configuration")
    except SetupError:
        if previous is None:
            enabled.unlink()
            available.unlink()
        else:
            available.write_text(previous, "utf-8")
        raise
    return available


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def cmd_setup(args: argparse.Namespace) -> int:
    try:
        return _setup(args)
    except (SetupError, ConfigError, ValueError) as exc:
        say(f"kiemke-collector setup: error: {exc}")
        return 2


def _setup(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise SetupError("run setup as root (sudo kiemke-collector setup ...): it writes the "
                         "nginx site and the TLS key")
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise SetupError(f"the user {SERVICE_USER!r} does not exist: setup is for the "
                         "kiemke-collector Debian package; reinstall it") from None
    hostname = check_hostname(args.hostname)
    template_path = Path(args.nginx_template)
    if not template_path.is_file():
        raise SetupError(f"the nginx template {template_path} is missing; reinstall the "
                         "kiemke-collector package or give --nginx-template")
    config = CollectorConfig.from_env(config_file=args.config)

    say(f"1/4 database {config.database_url.split('@')[-1]}: migrating, root unit")
    unit_id, created, password = as_service_user(
        database_steps(config, args.unit, args.code, args.admin_name)).split("\n", 2)
    say(f"    unit {unit_id}: {args.unit} ({'created' if created == '1' else 'already there'})")

    say("2/4 TLS")
    tls_dir = Path(args.tls_dir)
    which = install_tls(hostname, tls_dir, args.cert, args.key)
    say(f"    nginx serves {which}")

    say("3/4 nginx site")
    site = nginx_site(template_path.read_text("utf-8"), hostname, tls_dir)
    path = install_nginx_site(site, Path(args.nginx_dir))
    say(f"    {path}, enabled, `nginx -t` passed")

    say("4/4 services")
    if systemd_running():
        _run(["systemctl", "enable", "--now", "kiemke-collector.service"],
             "start the collector")
        _run(["systemctl", "enable", "nginx.service"], "enable nginx")
        _run(["systemctl", "reload-or-restart", "nginx.service"], "reload nginx")
        say("    kiemke-collector and nginx enabled and running")
    else:
        say("    systemd is not running here (a container?): start the collector with\n"
            "      kiemke-collector serve --bind 127.0.0.1:8080 &   (as root it runs as the "
            "kiemke user)\n"
            "    and nginx with: nginx")

    url = f"https://{hostname}/"
    say()
    say(f"kiemke collector ready: {url}  (health: {url}healthz)")
    if password:
        say(f"First admin: log in to the console as {args.admin_name!r} with this password, "
            "shown only now (change it with kiemke-collector users passwd):")
        print(password, flush=True)
    else:
        say("Users exist already (kiemke-collector users list); no admin was added.")
    say()
    say("Next:")
    say(f"  kiemke-collector units add \"<district or office>\" --parent {unit_id}")
    say(f"  kiemke-collector tokens create --unit {unit_id} --expires 30d --max-uses 500")
    say("  kiemke-collector read-tokens create grafana     (read-only API token)")
    say("Then on each PC (the token decides the unit):")
    say(f"  Linux:   kiemke-agent enroll --server={url.rstrip('/')} --token=<token>")
    say(f"  Windows: msiexec /i kiemke-agent-<version>-x64.msi /qn SERVER={url.rstrip('/')} "
        "TOKEN=<token>")
    return 0


def add_setup_command(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "setup", help="first set-up of a packaged collector (as root): root unit, first "
        "admin, TLS, nginx")
    p.add_argument("--unit", required=True, help="name of the root unit (the organisation)")
    p.add_argument("--code", help="short code of the root unit, e.g. LDLD-BG")
    p.add_argument("--hostname", required=True,
                   help="DNS name (or IP address) agents and people use for this server")
    p.add_argument("--cert", help="the agency's certificate chain (PEM); default: self-signed")
    p.add_argument("--key", help="the private key of --cert (PEM, no passphrase)")
    p.add_argument("--admin-name", default="admin",
                   help="login name of the first admin user (default %(default)s)")
    p.add_argument("--tls-dir", default="/etc/kiemke/tls", help="where nginx's certificate "
                   "and key are kept (default %(default)s)")
    p.add_argument("--nginx-dir", default="/etc/nginx",
                   help="nginx configuration directory (default %(default)s)")
    p.add_argument("--nginx-template", default=str(NGINX_TEMPLATE),
                   help="site template (default %(default)s)")
    p.set_defaults(func=cmd_setup)
    return p
