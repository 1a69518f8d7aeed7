"""`make msi`: the Windows agent MSI built with wixl, inspected with msiinfo and msiextract.

Windows itself is not available here: the tables and files are checked, and the
scheduled-task definition the MSI registers is parsed. Python's embeddable runtime cannot
be downloaded on this machine; without it (deploy/windows/runtime/ or
KIEMKE_PYTHON_EMBED_ZIP) the build says so and makes a check-only MSI, and every check
below except the runtime's own files still applies. ≈ 40 s (pip download from its cache,
wixl).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO, missing_component

from kiemke import __version__
from kiemke.agent.windows.task import task_xml

sys.path.insert(0, str(REPO / "deploy"))
import build_packages  # noqa: E402

PROPERTIES = ["SERVER", "TOKEN", "UNIT", "INTERVAL", "INTERNET_PROBES", "DNS_NAMES",
              "GATEWAY_CHECK", "CA_BUNDLE", "ALLOW_HTTP", "PROXY"]
TASK_NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


@pytest.fixture(scope="module")
def msi(built_wheel, tmp_path_factory) -> tuple[Path, str]:
    for tool in ("wixl", "msiinfo", "msiextract", "msibuild"):
        if shutil.which(tool) is None:
            missing_component(f"{tool} is not installed (Debian packages wixl, msitools)")
    out = tmp_path_factory.mktemp("msi")
    build = subprocess.run([sys.executable, str(REPO / "deploy" / "build_packages.py"), "msi",
                            "--wheel", str(built_wheel), "--out", str(out)],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr[-4000:]
    (path,) = out.glob("*.msi")
    return path, build.stderr


def _table(msi_path: Path, name: str) -> list[list[str]]:
    text = subprocess.run(["msiinfo", "export", str(msi_path), name], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    return [line.split("\t") for line in text.splitlines()[3:]]


def test_msi_name_and_runtime_note(msi):
    path, log = msi
    runtime = build_packages.runtime_zip()
    if runtime is None:
        assert path.name == f"kiemke-agent-{__version__}-x64-no-runtime.msi"
        assert "CHECK-ONLY" in log and build_packages.WIN_PYTHON_SHA256 in log
    else:
        assert path.name == f"kiemke-agent-{__version__}-x64.msi"


def test_property_upgrade_and_component_tables(msi):
    path, _ = msi
    props = dict((row[0], row[1]) for row in _table(path, "Property"))
    assert props["UpgradeCode"] == "{" + build_packages.MSI_UPGRADE_CODE + "}"
    assert props["ProductVersion"] == __version__
    assert props["MsiHiddenProperties"] == "TOKEN"  # never in an msiexec log
    secure = props["SecureCustomProperties"].split(";")
    assert set(PROPERTIES + ["PURGE"]) <= set(secure)
    upgrade = _table(path, "Upgrade")
    assert {r[0] for r in upgrade} == {"{" + build_packages.MSI_UPGRADE_CODE + "}"}
    files = _table(path, "File")
    components = _table(path, "Component")
    assert len(files) == len(components) > 100
    assert all(int(c[3]) & 256 for c in components)  # msidbComponentAttributes64bit
    names = {f[2] for f in files}
    for name in ("python.exe", "python312._pth", "cli.py", "configure.py", "task.py",
                 "_psutil_windows.pyd", "agent.example.conf"):
        assert name in names, name


def test_custom_actions_configure_and_register_the_task_as_system(msi):
    path, _ = msi
    actions = {row[0]: row for row in _table(path, "CustomAction")}
    configure = actions["Configure"]
    # 18 = exe from an installed file; 1024 deferred; 2048 no impersonation (SYSTEM)
    assert int(configure[1]) & 0x3F == 18 and int(configure[1]) & 1024 and \
        int(configure[1]) & 2048
    assert configure[2] == "python_exe"
    for prop in PROPERTIES:
        option = {"ALLOW_HTTP": "allow-insecure-http"}.get(prop, prop.lower().replace("_", "-"))
        assert f'--{option}="[{prop}]"' in configure[3], prop
    assert actions["InstallTask"][3] == "-m kiemke.agent.windows.task install"
    assert actions["RemoveTask"][3] == "-m kiemke.agent.windows.task remove"
    assert actions["PurgeData"][3].endswith("remove --purge")
    seq = {row[0]: (row[1], int(row[2])) for row in _table(path, "InstallExecuteSequence")}
    assert seq["RemoveExistingProducts"][1] < seq["InstallInitialize"][1]
    assert seq["InstallFiles"][1] < seq["Configure"][1] < seq["InstallTask"][1] < \
        seq["InstallFinalize"][1]
    assert seq["RemoveTask"][1] < seq["RemoveFiles"][1]
    assert seq["Configure"][0] == 'NOT REMOVE="ALL"'
    assert "UPGRADINGPRODUCTCODE" in seq["PurgeData"][0]  # an upgrade never purges data


def test_files_are_wheels_for_the_bundled_windows_python(msi, tmp_path):
    path, _ = msi
    subprocess.run(["msiextract", "-C", str(tmp_path), str(path)], check=True,
                   capture_output=True, timeout=120)
    root = tmp_path / "kiemke"
    site = root / "python" / "Lib" / "site-packages"
    pth = (root / "python" / "python312._pth").read_bytes().decode("ascii")
    assert pth.splitlines() == ["python312.zip", ".", "Lib\\site-packages"]
    wheel_tags = {f.parent.name: re.findall(r"^Tag: (\S+)$", f.read_text("utf-8"), re.M)
                  for f in site.glob("*.dist-info/WHEEL")}
    dists = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    for needed in ("kiemke", "psutil", "requests", "apscheduler", "netifaces_plus",
                   "tzdata", "tzlocal"):
        assert needed in dists, needed
    assert "flask" not in dists and "sqlalchemy" not in dists  # the agent stays light
    for dist, tags in wheel_tags.items():
        assert tags, dist
        for tag in tags:
            assert tag.split("-")[2] in ("win_amd64", "any"), (dist, tag)  # no Linux binary
        # at least one tag this runtime (CPython 3.12, 64-bit Windows) accepts
        assert any(t.split("-")[0] in ("py3", "cp312") or t.split("-")[1] == "abi3"
                   for t in tags), (dist, tags)
    for pyd in site.rglob("*.pyd"):
        assert pyd.name.endswith((".cp312-win_amd64.pyd", ".pyd")) and "linux" not in pyd.name
    assert not list(site.rglob("*.so"))
    assert (site / "kiemke" / "agent" / "windows" / "task.py").exists()
    exe = (root / "python" / "python.exe").read_bytes()
    if build_packages.runtime_zip() is None:
        assert exe.startswith(b"This MSI was built without")
    else:
        assert exe[:2] == b"MZ"


def test_scheduled_task_runs_at_boot_as_system_and_comes_back():
    xml = task_xml(r"C:\Program Files\kiemke\python\python.exe",
                   r"C:\ProgramData\kiemke\agent.conf", r"C:\Program Files\kiemke\python")
    task = ET.fromstring(xml.replace('encoding="UTF-16"', ""))  # noqa: S314 - our own XML
    find = lambda p: task.find(p, TASK_NS)  # noqa: E731
    assert find("t:Triggers/t:BootTrigger/t:Enabled").text == "true"
    assert find("t:Triggers/t:TimeTrigger/t:Repetition/t:Interval").text == "PT5M"
    assert find("t:Principals/t:Principal/t:UserId").text == "S-1-5-18"
    assert find("t:Settings/t:MultipleInstancesPolicy").text == "IgnoreNew"
    assert find("t:Settings/t:ExecutionTimeLimit").text == "PT0S"
    assert find("t:Settings/t:DisallowStartIfOnBatteries").text == "false"
    assert find("t:Actions/t:Exec/t:Command").text.endswith(r"\python\python.exe")
    assert find("t:Actions/t:Exec/t:Arguments").text == \
        r'-m kiemke.agent --config "C:\ProgramData\kiemke\agent.conf" run'


def test_runtime_zip_with_the_wrong_hash_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / build_packages.WIN_PYTHON_ZIP
    fake.write_bytes(b"not the python.org file")
    monkeypatch.setenv("KIEMKE_PYTHON_EMBED_ZIP", str(fake))
    with pytest.raises(build_packages.BuildError, match="download it again"):
        build_packages.runtime_zip()
    monkeypatch.setenv("KIEMKE_PYTHON_EMBED_ZIP", str(tmp_path / "absent.zip"))
    assert build_packages.runtime_zip() is None
    assert os.environ["KIEMKE_PYTHON_EMBED_ZIP"].endswith("absent.zip")
