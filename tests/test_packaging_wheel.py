"""The built wheel is complete and runs: default rules and migrations are package data.

The wheel is installed (not editable) with the collector extra into a fresh venv, and
end-to-end tests run again with that venv's interpreter against the installed package
(KIEMKE_TEST_INSTALLED makes conftest refuse a kiemke imported from the checkout;
PYTHONSAFEPATH keeps the checkout off sys.path in every subprocess). ≈ 60-90 s, most of
it pip installing from its cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO

# What the collector reads from its own package at run time.
PACKAGE_DATA_DIRS = {
    "rules": "kiemke/rules",
    "kiemke/collector/migrations": "kiemke/collector/migrations",
    "kiemke/schema": "kiemke/schema",
    "kiemke/agent/data": "kiemke/agent/data",
}


def _source_files(rel: str) -> set[str]:
    root = REPO / rel
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_wheel_carries_every_default_rule_file_and_the_migrations(built_wheel):
    names = set(zipfile.ZipFile(built_wheel).namelist())
    for source, packaged in PACKAGE_DATA_DIRS.items():
        files = _source_files(source)
        assert files, f"{source} is empty"
        missing = sorted(f for f in files if f"{packaged}/{f}" not in names)
        assert not missing, f"the wheel lacks {missing} of {source}/"
    # Every rule file (including files other helpers add to rules/) is in the wheel.
    assert {f for f in _source_files("rules") if f.endswith(".yml")} <= {
        n.removeprefix("kiemke/rules/") for n in names if n.startswith("kiemke/rules/")}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_carries_every_file_of_the_package(built_wheel):
    # Templates, static files and anything else a part adds under kiemke/ must ship too.
    names = set(zipfile.ZipFile(built_wheel).namelist())
    files = {f"kiemke/{f}" for f in _source_files("kiemke")}
    missing = sorted(files - names)
    assert not missing, f"not in the wheel: {missing}"


def test_kiemke_rules_in_the_checkout_is_the_top_level_rules_directory():
    # One copy of the default rules in the source tree: kiemke/rules links to rules/.
    link = REPO / "kiemke" / "rules"
    assert link.is_symlink() and link.resolve() == (REPO / "rules").resolve()


def _venv(tmp_path: Path, wheel: Path) -> Path:
    venv = tmp_path / "venv"
    # No pip inside (ensurepip alone takes longer than the rest): this pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                          "install", "--quiet", "--disable-pip-version-check",
                          f"{wheel}[collector]", "pytest", "jsonschema"],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv


def test_installed_wheel_runs_collector_with_default_rules_end_to_end(built_wheel, tmp_path):
    venv = _venv(tmp_path, built_wheel)
    python = venv / "bin" / "python"
    env = {**os.environ, "PYTHONSAFEPATH": "1", "KIEMKE_TEST_INSTALLED": str(venv)}
    env.pop("PYTHONPATH", None)
    # The installed collector finds its default rules in site-packages, from anywhere.
    check = subprocess.run([str(venv / "bin" / "kiemke-collector"), "rules", "check"],
                           capture_output=True, text=True, cwd="/", env=env, timeout=120)
    assert check.returncode == 0, check.stderr
    from kiemke.compliance.config import CONFIG_FILES

    rule_files = [p for p in (REPO / "rules").glob("*.yml") if p.name not in CONFIG_FILES]
    assert f"in {len(rule_files)} files" in check.stdout + check.stderr
    where = subprocess.run([str(python), "-c", "import kiemke.compliance as r; "
                            "print(r.default_rules_dir())"],
                           capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert where.stdout.strip().startswith(str(venv.resolve())), where
    # End to end against the install: real collector (gunicorn) and agent processes.
    run = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "tests/test_e2e_agent.py::test_enroll_send_visible_in_api_and_metrics[sqlite]"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
