#!/usr/bin/env python3
"""Build kiemke's packages: the wheel, the Debian packages and the Windows MSI.

    python deploy/build_packages.py wheel|deb|msi [--out DIR]

`make wheel`, `make deb` and `make msi` call this (output in dist/); the tests call it with
a temporary --out. Dependencies are fetched from PyPI by pip (its cache makes rebuilds
fast); nothing is compiled. See docs/deployment.md and deploy/windows/README.md.

- deb: kiemke-agent_<v>_amd64.deb and kiemke-collector_<v>_amd64.deb. Each carries the
  kiemke wheel and its dependencies installed into a private directory under /opt/kiemke
  (manylinux wheels for Debian 12's python3.11, byte-compiled), run by Debian's own
  /usr/bin/python3 in isolated mode. Debian 12 has neither Flask 3 nor SQLAlchemy 2 nor
  netifaces-plus, and pip into the system Python is refused (EXTERNALLY-MANAGED), so the
  dependencies travel with the package; dpkg tracks every file and nothing is downloaded
  or compiled at install time.
- msi: kiemke-agent-<v>-x64.msi built with wixl (msitools) from deploy/windows/: Python's
  embeddable runtime (an input whose SHA-256 is pinned below) and the agent's win_amd64
  wheels for that Python, unpacked into its site-packages at build time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
WINDOWS = DEPLOY / "windows"

# Debian 12 (bookworm): python3 is 3.11; wheels with C code must be cp311 for glibc 2.36.
DEB_PYTHON = "3.11"
# pip takes the platform tags literally: list every manylinux level glibc 2.36 can run.
DEB_PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]

# The Windows runtime: Python's embeddable zip from python.org (3.12 runs on Windows 8.1,
# 10, 11 and Server 2012 R2 and later). An agency downloads it once (the URL below),
# checks it against this SHA-256 and puts it in deploy/windows/runtime/ (or names it with
# KIEMKE_PYTHON_EMBED_ZIP).
WIN_PYTHON = "3.12.10"
WIN_PYTHON_ZIP = f"python-{WIN_PYTHON}-embed-amd64.zip"
WIN_PYTHON_URL = f"https://www.python.org/ftp/python/{WIN_PYTHON}/{WIN_PYTHON_ZIP}"
WIN_PYTHON_SHA256 = "4acbed6dd1c744b0376e3b1cf57ce906f9dc9e95e68824584c8099a63025a3c3"
WIN_TAG = "cp312"
# The MSI's UpgradeCode never changes: it is how Windows Installer finds the installed
# agent to upgrade it.
MSI_UPGRADE_CODE = "3C9E8A4B-2F1D-4E6A-9B7C-5D0E1F2A3B4C"
COMPONENT_NAMESPACE = uuid.UUID("ea3b3ffa-620b-4c0e-a64f-247a00417593")


class BuildError(Exception):
    """The build cannot go on; the message says what is missing and what to do."""


def say(text: str) -> None:
    print(f"build_packages: {text}", file=sys.stderr, flush=True)


def version() -> str:
    text = (REPO / "kiemke" / "__init__.py").read_text("utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not match:
        raise BuildError("kiemke/__init__.py has no __version__")
    return match.group(1)


def run(*argv: str | Path, cwd: Path | None = None) -> None:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"{' '.join(map(str, argv[:4]))} … failed ({result.returncode}):\n"
                         f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def pip(*args: str | Path) -> None:
    run(sys.executable, "-m", "pip", "--disable-pip-version-check", *args)


# ---------------------------------------------------------------------------- wheel

def build_wheel(out: Path) -> Path:
    """The kiemke wheel (default rules, migrations, schema as package data)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("kiemke-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        # Build from a clean copy: no build/ or __pycache__ of the checkout in the wheel.
        src = Path(tmp) / "src"
        shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "var", "demo-data",
            ".pytest_cache", ".ruff_cache"))
        pip("wheel", "--no-deps", "--quiet", "--wheel-dir", out, src)
    wheels = sorted(out.glob("kiemke-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one kiemke wheel in {out}, found {wheels}")
    say(f"wheel {wheels[0]}")
    return wheels[0]


# ---------------------------------------------------------------------------- deb

AGENT_WRAPPER = """#!/usr/bin/python3 -I
# kiemke-agent from the kiemke-agent Debian package: Debian's python3 with the agent's
# private libraries (/opt/kiemke/agent/lib), isolated from any user site or PYTHONPATH.
import sys

sys.path.insert(0, "/opt/kiemke/agent/lib")
from kiemke.agent.cli import main  # noqa: E402

sys.exit(main())
"""

COLLECTOR_WRAPPER = """#!/usr/bin/python3 -I
# kiemke-collector from the kiemke-collector Debian package: Debian's python3 with the
# collector's private libraries (/opt/kiemke/collector/lib). Settings come from
# /etc/kiemke/collector.env. Run as root, every command except `setup` drops to the
# kiemke user first, so files it creates (the SQLite database and its journal) stay
# writable by the service.
import os
import pwd
import sys

sys.path.insert(0, "/opt/kiemke/collector/lib")
if os.path.exists("/etc/kiemke/collector.env"):
    os.environ.setdefault("KIEMKE_CONFIG", "/etc/kiemke/collector.env")
if os.geteuid() == 0 and sys.argv[1:2] != ["setup"]:
    try:
        user = pwd.getpwnam("kiemke")
    except KeyError:
        user = None
    if user is not None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
        os.environ["HOME"] = user.pw_dir
from kiemke.collector.cli import main  # noqa: E402

sys.exit(main())
"""


def install_target(lib: Path, requirement: str) -> None:
    """pip install the requirement and its dependencies into lib, for Debian 12's python3."""
    platforms = [arg for tag in DEB_PLATFORMS for arg in ("--platform", tag)]
    pip("install", "--quiet", "--no-compile", "--target", lib, "--only-binary=:all:",
        *platforms, "--python-version", DEB_PYTHON, "--implementation", "cp",
        "--abi", f"cp{DEB_PYTHON.replace('.', '')}", requirement)
    for junk in lib.glob("bin"):
        shutil.rmtree(junk)  # console scripts with this machine's shebang: unused
    if sys.version_info[:2] == tuple(map(int, DEB_PYTHON.split("."))):
        # unchecked-hash: valid whatever the file times; the service cannot write .pyc
        # under ProtectSystem=strict, so they are made here.
        run(sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
            "unchecked-hash", lib)


def _control(stage: Path, fields: dict[str, str], scripts: dict[str, str],
             conffiles: list[str]) -> None:
    debian = stage / "DEBIAN"
    debian.mkdir(parents=True)
    size_kb = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file()) // 1024
    text = "".join(f"{k}: {v}\n" for k, v in {**fields, "Installed-Size": str(size_kb)}.items())
    (debian / "control").write_text(text, "utf-8")
    if conffiles:
        (debian / "conffiles").write_text("".join(f"{c}\n" for c in conffiles), "utf-8")
    for name, body in scripts.items():
        path = debian / name
        path.write_text(body, "utf-8")
        path.chmod(0o755)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    path.chmod(mode)


def _copy(src: Path, dst: Path, mode: int = 0o644) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    dst.chmod(mode)


def _dpkg_deb(stage: Path, out: Path) -> Path:
    for p in stage.rglob("*"):
        if p.is_dir():
            p.chmod(0o755)
    # zstd: seconds to build (xz took minutes on 2 cores); dpkg reads it since Debian 12.
    run("dpkg-deb", "-Zzstd", "--root-owner-group", "--build", stage, out)
    say(f"package {out} ({out.stat().st_size // 1024} KiB)")
    return out


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: kiemke
License: Apache-2.0
Comment: /opt/kiemke carries kiemke's Python dependencies from PyPI, each with its own
 licence file in its *.dist-info directory.
"""

AGENT_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
    install -d -m 0700 /var/lib/kiemke
    chmod 0600 /etc/kiemke/agent.conf
    if [ -x /usr/bin/deb-systemd-helper ]; then
        deb-systemd-helper unmask kiemke-agent.service >/dev/null || true
        deb-systemd-helper enable kiemke-agent.service >/dev/null || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl restart kiemke-agent.service || true
    fi
    if [ ! -e /var/lib/kiemke/credentials.json ]; then
        echo "kiemke-agent: enrol this computer once:"
        echo "  kiemke-agent enroll --server=https://kiemke.example.gov.vn --token=TOKEN"
    fi
fi
exit 0
"""

AGENT_PRERM = """#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop kiemke-agent.service || true
fi
exit 0
"""

AGENT_POSTRM = """#!/bin/sh
set -e
if [ "$1" = remove ] && [ -x /usr/bin/deb-systemd-helper ]; then
    deb-systemd-helper mask kiemke-agent.service >/dev/null || true
fi
if [ "$1" = purge ]; then
    if [ -x /usr/bin/deb-systemd-helper ]; then
        deb-systemd-helper purge kiemke-agent.service >/dev/null || true
        deb-systemd-helper unmask kiemke-agent.service >/dev/null || true
    fi
    # Credentials, identity and spool of this machine.
    rm -rf /var/lib/kiemke
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
"""


def agent_conf_for_deb() -> str:
    """deploy/agent.example.conf with its example server and unit commented out.

    `kiemke-agent enroll --server=...` stores the server; a `server` line here would win
    over it, so the packaged file must not name Bắc Giang's collector for everyone.
    """
    text = (DEPLOY / "agent.example.conf").read_text("utf-8")
    return re.sub(r"(?m)^(server|unit) = ", r"# \1 = ", text)


def build_deb_agent(wheel: Path, out: Path) -> Path:
    v = version()
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "stage"
        install_target(stage / "opt/kiemke/agent/lib", str(wheel))
        _write(stage / "usr/bin/kiemke-agent", AGENT_WRAPPER, 0o755)
        _write(stage / "etc/kiemke/agent.conf", agent_conf_for_deb(), 0o600)
        _copy(DEPLOY / "kiemke-agent.service", stage / "lib/systemd/system/kiemke-agent.service")
        _write(stage / "usr/share/doc/kiemke-agent/copyright", COPYRIGHT)
        _control(stage, {
            "Package": "kiemke-agent", "Version": v, "Architecture": "amd64",
            "Maintainer": "kiemke maintainers <kiemke@localhost>",
            "Depends": f"python3 (>= {DEB_PYTHON}), python3 (<< 3.{int(DEB_PYTHON[2:]) + 1})",
            "Section": "admin", "Priority": "optional",
            "Homepage": "https://github.com/kiemke/kiemke",
            "Description": "kiemke inventory and compliance agent\n"
                           " Reports hardware, operating system, antivirus, network and "
                           "printers of\n this computer to a kiemke collector.",
        }, {"postinst": AGENT_POSTINST, "prerm": AGENT_PRERM, "postrm": AGENT_POSTRM},
            ["/etc/kiemke/agent.conf"])
        return _dpkg_deb(stage, out / f"kiemke-agent_{v}_amd64.deb")


COLLECTOR_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd kiemke >/dev/null; then
        adduser --system --group --home /var/lib/kiemke-collector --no-create-home \\
            --gecos "kiemke collector" kiemke >/dev/null
    fi
    install -d -m 0750 -o kiemke -g kiemke /var/lib/kiemke-collector
    chown root:kiemke /etc/kiemke/collector.env
    chmod 0640 /etc/kiemke/collector.env
    # Create or migrate the database (as the kiemke user: /usr/bin/kiemke-collector
    # drops to it when run as root).
    if ! kiemke-collector db upgrade; then
        echo "kiemke-collector: the database could not be migrated; fix the setting in" >&2
        echo "/etc/kiemke/collector.env, then run: kiemke-collector db upgrade" >&2
    fi
    if [ -x /usr/bin/deb-systemd-helper ]; then
        deb-systemd-helper unmask kiemke-collector.service >/dev/null || true
        deb-systemd-helper enable kiemke-collector.service >/dev/null || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl restart kiemke-collector.service || true
    fi
    if [ -z "$2" ]; then
        echo "kiemke-collector installed. Next, as root:"
        echo "  kiemke-collector setup --unit \\"<root unit name>\\" --hostname <DNS name>"
    fi
fi
exit 0
"""

COLLECTOR_PRERM = """#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop kiemke-collector.service || true
fi
exit 0
"""

COLLECTOR_POSTRM = """#!/bin/sh
set -e
if [ "$1" = remove ] && [ -x /usr/bin/deb-systemd-helper ]; then
    deb-systemd-helper mask kiemke-collector.service >/dev/null || true
fi
if [ "$1" = remove ] || [ "$1" = purge ]; then
    # The nginx site written by `kiemke-collector setup` points at a collector that is gone.
    if [ -L /etc/nginx/sites-enabled/kiemke-collector.conf ]; then
        rm -f /etc/nginx/sites-enabled/kiemke-collector.conf
        if [ -d /run/systemd/system ]; then systemctl reload nginx || true; fi
    fi
fi
if [ "$1" = purge ]; then
    if [ -x /usr/bin/deb-systemd-helper ]; then
        deb-systemd-helper purge kiemke-collector.service >/dev/null || true
        deb-systemd-helper unmask kiemke-collector.service >/dev/null || true
    fi
    rm -f /etc/nginx/sites-available/kiemke-collector.conf
    rm -rf /etc/kiemke/tls
    # The database in /var/lib/kiemke-collector is kept: delete it by hand if wanted.
    echo "kiemke-collector: the data in /var/lib/kiemke-collector was kept." >&2
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
"""


def collector_env_for_deb() -> str:
    text = (DEPLOY / "collector.example.env").read_text("utf-8")
    # The packaged rules are an editable copy in /etc (dpkg conffiles: upgrades bring new
    # default rules and ask before replacing a file the operator changed).
    text = re.sub(r"^#?KIEMKE_RULES_DIR=.*$", "KIEMKE_RULES_DIR=/etc/kiemke/rules", text,
                  flags=re.M)
    if "KIEMKE_RULES_DIR=/etc/kiemke/rules" not in text:
        text += "\nKIEMKE_RULES_DIR=/etc/kiemke/rules\n"
    return text


def rule_files() -> list[Path]:
    """Every file of the default rules (rules/, also the wheel's kiemke/rules)."""
    root = REPO / "rules"
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def build_deb_collector(wheel: Path, out: Path) -> Path:
    v = version()
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "stage"
        install_target(stage / "opt/kiemke/collector/lib", f"{wheel}[collector]")
        _write(stage / "usr/bin/kiemke-collector", COLLECTOR_WRAPPER, 0o755)
        _write(stage / "etc/kiemke/collector.env", collector_env_for_deb(), 0o640)
        conffiles = ["/etc/kiemke/collector.env"]
        for path in rule_files():
            rel = path.relative_to(REPO / "rules")
            _copy(path, stage / "etc/kiemke/rules" / rel)
            conffiles.append(f"/etc/kiemke/rules/{rel.as_posix()}")
        _copy(DEPLOY / "kiemke-collector.service",
              stage / "lib/systemd/system/kiemke-collector.service")
        _copy(DEPLOY / "nginx" / "kiemke-collector.conf",
              stage / "usr/share/kiemke-collector/nginx/kiemke-collector.conf")
        _write(stage / "usr/share/doc/kiemke-collector/copyright", COPYRIGHT)
        _control(stage, {
            "Package": "kiemke-collector", "Version": v, "Architecture": "amd64",
            "Maintainer": "kiemke maintainers <kiemke@localhost>",
            "Depends": f"python3 (>= {DEB_PYTHON}), python3 (<< 3.{int(DEB_PYTHON[2:]) + 1}), "
                       "adduser, nginx, openssl",
            "Recommends": "postgresql",
            "Section": "admin", "Priority": "optional",
            "Homepage": "https://github.com/kiemke/kiemke",
            "Description": "kiemke collector: IT inventory and compliance reports\n"
                           " Receives agent reports, evaluates the rules per machine and "
                           "unit, keeps the\n history and serves the API, /metrics and "
                           "the console behind nginx.",
        }, {"postinst": COLLECTOR_POSTINST, "prerm": COLLECTOR_PRERM,
            "postrm": COLLECTOR_POSTRM}, conffiles)
        return _dpkg_deb(stage, out / f"kiemke-collector_{v}_amd64.deb")


# ---------------------------------------------------------------------------- msi

def runtime_zip() -> Path | None:
    """The embeddable Python zip, checked against the pinned SHA-256; None when absent."""
    path = Path(os.environ.get("KIEMKE_PYTHON_EMBED_ZIP") or WINDOWS / "runtime" / WIN_PYTHON_ZIP)
    if not path.is_file():
        return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WIN_PYTHON_SHA256:
        raise BuildError(f"{path} has SHA-256 {digest}, not the pinned {WIN_PYTHON_SHA256} of "
                         f"{WIN_PYTHON_URL}: download it again from python.org")
    return path


def _wheel_requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode("utf-8")
    return [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith("Requires-Dist:")]


def windows_wheels(wheel: Path, dest: Path) -> list[Path]:
    """The agent wheel and its dependencies as wheels for the bundled Windows Python.

    pip evaluates environment markers against the machine it runs on (Linux), so a
    dependency such as tzlocal's `tzdata; platform_system == "Windows"` is missed; the
    markers of every downloaded wheel are evaluated here for Windows and the missing
    requirements downloaded too, until nothing is missing.
    """
    try:
        from packaging.markers import Marker
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name
    except ImportError:  # pip always carries a copy
        from pip._vendor.packaging.markers import Marker  # type: ignore[assignment]
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[assignment]
        from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[assignment]

    env = {"platform_system": "Windows", "sys_platform": "win32", "os_name": "nt",
           "platform_machine": "AMD64", "python_version": WIN_PYTHON.rsplit(".", 1)[0],
           "python_full_version": WIN_PYTHON, "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "extra": ""}
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(wheel, dest)
    todo = [str(wheel)]
    while todo:
        pip("download", "--quiet", "--only-binary=:all:", "--platform", "win_amd64",
            "--python-version", WIN_PYTHON.rsplit(".", 1)[0], "--implementation", "cp",
            "--dest", dest, *todo)
        have = {canonicalize_name(w.name.split("-")[0]) for w in dest.glob("*.whl")}
        todo = []
        for whl in dest.glob("*.whl"):
            for text in _wheel_requirements(whl):
                req = Requirement(text)
                if req.marker is not None and not Marker(str(req.marker)).evaluate(env):
                    continue
                if canonicalize_name(req.name) not in have and str(req) not in todo:
                    todo.append(str(Requirement(str(req).split(";")[0])))
    return sorted(dest.glob("*.whl"))


PTH = f"python{WIN_TAG[2:]}.zip\r\n.\r\nLib\\site-packages\r\n"

NO_RUNTIME_PLACEHOLDER = (
    f"This MSI was built without {WIN_PYTHON_ZIP} and cannot run on Windows.\r\n"
    "It exists only so the build and its checks can run where the runtime is absent.\r\n")


def _stage_windows(wheels: list[Path], runtime: Path | None, root: Path) -> None:
    python = root / "python"
    python.mkdir(parents=True)
    if runtime is not None:
        with zipfile.ZipFile(runtime) as zf:
            zf.extractall(python)
    else:
        (python / "python.exe").write_text(NO_RUNTIME_PLACEHOLDER, "utf-8")
    # Our ._pth replaces the runtime's: site-packages on the path, and nothing from the
    # environment (PYTHONPATH) or the current directory.
    for old in python.glob("python*._pth"):
        old.unlink()
    (python / f"python{WIN_TAG[2:]}._pth").write_bytes(PTH.encode("ascii"))
    # Unpack the wheels for Windows: pip installs them for the target platform without
    # running anything from them.
    pip("install", "--quiet", "--no-compile", "--no-deps", "--no-index", "--target",
        python / "Lib" / "site-packages", "--only-binary=:all:", "--platform", "win_amd64",
        "--python-version", WIN_PYTHON.rsplit(".", 1)[0], "--implementation", "cp",
        *wheels)
    shutil.rmtree(python / "Lib" / "site-packages" / "bin", ignore_errors=True)
    _copy(REPO / "deploy" / "agent.example.conf", root / "agent.example.conf")


def _ident(prefix: str, rel: str) -> str:
    return prefix + hashlib.sha1(rel.encode("utf-8")).hexdigest()[:24]  # noqa: S324 - ids


def _wxs_tree(root: Path) -> tuple[str, list[str]]:
    """<Directory>/<Component>/<File> elements for every staged file; component ids."""
    components: list[str] = []

    def walk(directory: Path, indent: str) -> str:
        parts: list[str] = []
        for entry in sorted(directory.iterdir()):
            rel = entry.relative_to(root).as_posix()
            if entry.is_dir():
                parts.append(f'{indent}<Directory Id="{_ident("d", rel)}" '
                             f'Name={quoteattr(entry.name)}>\n'
                             f'{walk(entry, indent + "  ")}{indent}</Directory>\n')
                continue
            cid = _ident("c", rel)
            fid = "python_exe" if rel == "python/python.exe" else _ident("f", rel)
            guid = str(uuid.uuid5(COMPONENT_NAMESPACE, rel)).upper()
            components.append(cid)
            parts.append(f'{indent}<Component Id="{cid}" Guid="{guid}" Win64="yes">'
                         f'<File Id="{fid}" Name={quoteattr(entry.name)} '
                         f'Source={quoteattr(rel)} KeyPath="yes"/></Component>\n')
        return "".join(parts)

    return walk(root, "          "), components


def build_msi(wheel: Path, out: Path) -> Path:
    v = version()
    runtime = runtime_zip()
    if runtime is None:
        say(f"NOTE: the Python runtime {WIN_PYTHON_ZIP} is not in "
            f"{WINDOWS / 'runtime'} (or $KIEMKE_PYTHON_EMBED_ZIP). Building a CHECK-ONLY "
            f"MSI without it (it will not run on Windows). To build the real one, download "
            f"{WIN_PYTHON_URL} once (SHA-256 {WIN_PYTHON_SHA256}) into {WINDOWS / 'runtime'} "
            f"and run make msi again.")
    name = f"kiemke-agent-{v}-x64.msi" if runtime else f"kiemke-agent-{v}-x64-no-runtime.msi"
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        wheels = windows_wheels(wheel, tmpdir / "wheels")
        stage = tmpdir / "stage"
        _stage_windows(wheels, runtime, stage)
        tree, components = _wxs_tree(stage)
        refs = "".join(f'      <ComponentRef Id="{c}"/>\n' for c in components)
        template = (WINDOWS / "kiemke-agent.wxs").read_text("utf-8")
        wxs = (template.replace("@VERSION@", v).replace("@UPGRADE_CODE@", MSI_UPGRADE_CODE)
               .replace("@FILES@", tree).replace("@COMPONENT_REFS@", refs))
        wxs_path = tmpdir / "kiemke-agent.wxs"
        wxs_path.write_text(wxs, "utf-8")
        out.mkdir(parents=True, exist_ok=True)
        msi = out / name
        run("wixl", "--arch", "x64", "--output", msi.resolve(), wxs_path, cwd=stage)
        # wixl cannot mark properties Secure: list them so they reach the elevated part
        # of an install started by a user (Group Policy and SCCM run as SYSTEM anyway).
        secure = ";".join(["WIX_DOWNGRADE_DETECTED", "WIX_UPGRADE_DETECTED", *MSI_PROPERTIES])
        run("msibuild", msi, "-q", "UPDATE `Property` SET `Value`='" + secure  # noqa: S608
            + "' WHERE `Property`='SecureCustomProperties'")
        # A major upgrade removes the old version first (right after InstallValidate, as
        # WiX's default afterInstallValidate): its uninstall deletes the old task, then this
        # version installs and registers its own. wixl schedules it after InstallFinalize,
        # where the old version's uninstall would delete the new task.
        run("msibuild", msi, "-q", "UPDATE `InstallExecuteSequence` SET `Sequence`=1401 "
            "WHERE `Action`='RemoveExistingProducts'")
    say(f"package {msi} ({msi.stat().st_size // 1024} KiB)")
    return msi


MSI_PROPERTIES = ("SERVER", "TOKEN", "UNIT", "INTERVAL", "INTERNET_PROBES", "DNS_NAMES",
                  "GATEWAY_CHECK", "CA_BUNDLE", "ALLOW_HTTP", "PROXY", "PURGE")


# ---------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["wheel", "deb", "msi"])
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--wheel", type=Path, help="use this kiemke wheel instead of building")
    args = parser.parse_args(argv)
    try:
        wheel = args.wheel or build_wheel(args.out)
        if args.what == "deb":
            build_deb_agent(wheel, args.out)
            build_deb_collector(wheel, args.out)
        elif args.what == "msi":
            build_msi(wheel, args.out)
    except BuildError as exc:
        say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
