"""Printers: the lpstat parser on captured output of a real CUPS 2.4 scheduler, the Linux
collector against a private cupsd started by the test (unix socket in /tmp, nothing on
the network), and the Windows builder on Win32_Printer captures."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import missing_component

from kiemke.agent.collectors.base import CollectorError, Context
from kiemke.agent.collectors.printers import PrintersCollector
from kiemke.agent.collectors.printers_windows import printer_facts
from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers.errors import ParseError
from kiemke.agent.parsers.lpstat import (
    display_uri,
    is_network_uri,
    looks_virtual,
    lpstat_failure,
    parse_lpstat,
    ppd_nickname,
    printers_conf_shared,
)
from kiemke.agent.parsers.wmi import normalise_cim
from kiemke.agent.windows.powershell import parse_cim_json

FIX = Path(__file__).parent / "fixtures"
LPSTAT = FIX / "linux" / "lpstat"
DESCRIPTION = "Máy in phòng Kế toán — Liên đoàn Lao động tỉnh Bắc Giang"


def collect(platform: str = "linux") -> dict:
    ctx = Context(config=AgentConfig(), state_dir=Path("/nonexistent"), platform=platform,
                  now=datetime(2026, 11, 22, tzinfo=timezone.utc))
    return PrintersCollector().collect(ctx)


# ----------------------------------------------------------------- parser, captured output

def test_parse_six_printers_capture() -> None:
    listing = parse_lpstat((LPSTAT / "lpstat-dvlp-six-printers.txt").read_text("utf-8"))
    assert listing["default"] == "HP_LaserJet_Phong_Ke_Toan"
    by_name = {p["name"]: p for p in listing["printers"]}
    assert list(by_name) == ["HP_LaserJet_Phong_Ke_Toan", "ipp_office", "PDF", "smb_shared",
                             "stopped_one", "usb_printer"]
    hp = by_name["HP_LaserJet_Phong_Ke_Toan"]
    assert hp["description"] == DESCRIPTION and hp["location"] == "Tầng 2"
    assert hp["uri"] == "socket://127.0.0.1:9100" and hp["enabled"] is True
    assert by_name["stopped_one"]["enabled"] is False
    assert by_name["ipp_office"]["location"] is None


def test_parse_no_printers_capture() -> None:
    text = (LPSTAT / "lpstat-dvlp-no-printers.txt").read_text()
    assert parse_lpstat(text) == {"default": None, "printers": []}
    stderr = (LPSTAT / "lpstat-dvlp-no-printers.stderr").read_text()
    assert lpstat_failure(stderr) is None  # "No destinations added." is an answer


def test_no_scheduler_is_not_found_not_an_empty_list() -> None:
    stderr = (LPSTAT / "lpstat-dvlp-no-scheduler.stderr").read_text()
    failure = lpstat_failure(stderr)
    assert failure is not None and failure[0] == "not_found"
    assert "cupsd" in failure[1] and "systemctl start cups" in failure[1]


@pytest.mark.parametrize("text", ["Segmentation fault\n", "\x00\x01\x02garbage",
                                  "printer-state-message: 42\n"])
def test_unrecognised_output_is_a_clear_error(text: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_lpstat(text)
    assert "lpstat" in err.value.message


def test_truncated_output_keeps_complete_lines() -> None:
    text = (LPSTAT / "lpstat-dvlp-six-printers.txt").read_text("utf-8")
    listing = parse_lpstat(text[: text.index("device for PDF")])
    assert [p["name"] for p in listing["printers"]] == ["HP_LaserJet_Phong_Ke_Toan",
                                                        "ipp_office"]


@pytest.mark.parametrize(("uri", "network"), [
    ("ipp://printer.local/ipp/print", True), ("ipps://10.0.0.5/ipp/print", True),
    ("socket://192.0.2.7:9100", True), ("lpd://host/queue", True),
    ("dnssd://HP%20LaserJet._ipp._tcp.local/", True), ("smb://server/share", True),
    ("usb://Brother/HL-L2321D?serial=1", False), ("parallel:/dev/lp0", False),
    ("serial:/dev/ttyS0", False), ("cups-pdf:/", False), ("weird:/x", None), (None, None)])
def test_network_from_device_uri(uri: str | None, network: bool | None) -> None:
    assert is_network_uri(uri) == network


def test_credentials_are_removed_from_ports() -> None:
    assert display_uri("smb://ketoan:MatKhau123@fileserver/HP%20Shared") == \
        "smb://fileserver/HP Shared"


def test_ppd_and_printers_conf() -> None:
    assert ppd_nickname((LPSTAT / "laserjet-m404.ppd").read_text()) == \
        "HP LaserJet Pro M404, driverless 2.0"
    conf = "<DefaultPrinter a>\nShared Yes\n</DefaultPrinter>\n<Printer b>\nShared No\n</Printer>\n"
    assert printers_conf_shared(conf) == {"a": True, "b": False}


@pytest.mark.parametrize(("texts", "virtual"), [
    (("Microsoft Print to PDF",), True), (("PDF",), True), (("Fax",), True),
    (("OneNote (Desktop)",), True), (("Microsoft XPS Document Writer",), True),
    (("HP LaserJet Pro M404", "HP Universal Printing PCL 6"), False),
    (("Canon LBP2900",), False)])
def test_virtual_printer_names(texts: tuple, virtual: bool) -> None:
    assert looks_virtual(*texts) is virtual


# ----------------------------------------------------------------- real cupsd

class Cups:
    """A private cupsd listening only on a unix socket under /tmp."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.socket = base / "cups.sock"
        self.env = {**os.environ, "CUPS_SERVER": str(self.socket),
                    "CUPS_SERVERROOT": str(self.root), "LC_ALL": "C"}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for d in ("root/ppd", "spool", "cache", "state", "log", "tmp", "bin/backend"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        # Backends are only looked up when a queue is created (nothing is printed):
        # the ipp backend under each scheme's name lets lpadmin accept those URIs.
        ipp = Path("/usr/lib/cups/backend/ipp")
        for scheme in ("ipp", "ipps", "socket", "usb", "lpd", "smb", "cups-pdf"):
            (self.base / "bin/backend" / scheme).symlink_to(ipp)
        for sub in ("daemon", "notifier", "filter"):
            if Path("/usr/lib/cups", sub).exists():
                (self.base / "bin" / sub).symlink_to(Path("/usr/lib/cups", sub))
        (self.root / "cupsd.conf").write_text(
            f"Listen {self.socket}\nLogLevel warn\nWebInterface No\nBrowsing No\n"
            "DirtyCleanInterval 0\nDefaultAuthType None\n"
            "<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
            "<Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n")
        b = self.base
        (self.root / "cups-files.conf").write_text(
            f"ServerRoot {self.root}\nRequestRoot {b}/spool\nCacheDir {b}/cache\n"
            f"StateDir {b}/state\nTempDir {b}/tmp\nServerBin {b}/bin\nDataDir /usr/share/cups\n"
            f"AccessLog {b}/log/access_log\nErrorLog {b}/log/error_log\n"
            f"PageLog {b}/log/page_log\nSandboxing Relaxed\n")
        for path in [b, *b.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        cupsd = shutil.which("cupsd") or "/usr/sbin/cupsd"
        self.proc = subprocess.Popen([cupsd, "-f", "-c", str(self.root / "cupsd.conf"),
                                      "-s", str(self.root / "cups-files.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ok = subprocess.run(["lpstat", "-r"], env=self.env, capture_output=True, text=True)
            if "scheduler is running" in ok.stdout:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"cupsd exited: {self.proc.stderr.read().decode()}")
            time.sleep(0.05)
        raise AssertionError("cupsd did not start within 10 s")

    def lpadmin(self, *args: str) -> None:
        out = subprocess.run(["lpadmin", *args], env=self.env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def cups() -> Iterator[Cups]:
    for tool in ("cupsd", "lpadmin", "lpstat"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            missing_component(f"{tool} is not installed (Debian packages cups-daemon, "
                              "cups-client)")
    if not Path("/usr/lib/cups/backend/ipp").exists():
        missing_component("the CUPS ipp backend is not installed (cups-daemon)")
    base = Path(tempfile.mkdtemp(prefix="kiemke-cups-", dir="/tmp"))  # short socket path
    server = Cups(base)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cups_env(cups: Cups, monkeypatch: pytest.MonkeyPatch) -> Cups:
    monkeypatch.setenv("CUPS_SERVER", str(cups.socket))
    monkeypatch.setenv("CUPS_SERVERROOT", str(cups.root))
    return cups


def test_cupsd_without_printers_is_an_empty_list(cups_env: Cups) -> None:
    assert collect() == {"printers": []}


def test_cupsd_printers_are_reported(cups_env: Cups) -> None:
    c = cups_env
    c.lpadmin("-p", "HP_LaserJet_Phong_Ke_Toan", "-E", "-v", "socket://127.0.0.1:9100",
              "-D", DESCRIPTION, "-L", "Tầng 2", "-P", str(LPSTAT / "laserjet-m404.ppd"),
              "-o", "printer-is-shared=true")
    c.lpadmin("-p", "usb_brother", "-E", "-v",
              "usb://Brother/HL-L2321D%20series?serial=E78098H9N123456")
    c.lpadmin("-p", "PDF", "-E", "-v", "cups-pdf:/")
    c.lpadmin("-p", "ipp_tang3", "-v", "ipps://127.0.0.1:631/ipp/print",
              "-o", "printer-is-shared=false")
    c.lpadmin("-d", "HP_LaserJet_Phong_Ke_Toan")
    try:
        section = collect()
        # lpstat -e, independently: the queue names CUPS has
        listed = subprocess.run(["lpstat", "-e"], env=c.env, capture_output=True,
                                text=True).stdout.split()
    finally:
        for name in ("HP_LaserJet_Phong_Ke_Toan", "usb_brother", "PDF", "ipp_tang3"):
            c.lpadmin("-x", name)
    assert "errors" not in section
    by_name = {p["name"]: p for p in section["printers"]}
    assert by_name["HP_LaserJet_Phong_Ke_Toan"] == {
        "name": "HP_LaserJet_Phong_Ke_Toan", "driver": "HP LaserJet Pro M404, driverless 2.0",
        "port": "socket://127.0.0.1:9100", "network": True, "default": True, "shared": True,
        "virtual": False}
    assert by_name["usb_brother"]["network"] is False
    assert by_name["usb_brother"]["port"] == \
        "usb://Brother/HL-L2321D series?serial=E78098H9N123456"
    assert by_name["PDF"]["virtual"] is True and by_name["PDF"]["network"] is False
    assert by_name["ipp_tang3"]["network"] is True and by_name["ipp_tang3"]["shared"] is False
    assert sum(p["default"] for p in section["printers"]) == 1
    assert sorted(by_name) == sorted(listed)


def test_scheduler_not_running_is_not_found(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    if shutil.which("lpstat") is None:
        missing_component("lpstat is not installed (Debian package cups-client)")
    monkeypatch.setenv("CUPS_SERVER", str(tmp_path / "no-cupsd-here.sock"))
    with pytest.raises(CollectorError) as err:
        collect()
    assert err.value.kind == "not_found" and "not running" in err.value.message


def test_cups_not_installed_is_not_found(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no lpstat
    with pytest.raises(CollectorError) as err:
        collect()
    assert err.value.kind == "not_found" and "CUPS is not installed" in err.value.message


# ----------------------------------------------------------------- Windows

def test_windows_printer_capture() -> None:
    rows = parse_cim_json((FIX / "windows/cim/root_cimv2__Win32_Printer.json").read_text("utf-8"))
    printers = {p["name"]: p for p in (printer_facts(normalise_cim(r)) for r in rows)}
    hp = printers["HP LaserJet Pro M404 - Phòng Kế toán"]
    assert (hp["network"], hp["default"], hp["shared"], hp["virtual"]) == (True, True, True,
                                                                           False)
    share = printers["\\\\SRV-VANPHONG\\Canon LBP2900 Văn phòng"]
    assert share["network"] is True and share["virtual"] is False
    assert printers["Brother HL-L2321D series"]["network"] is False
    virtual = {n for n, p in printers.items() if p["virtual"]}
    assert virtual == {"Microsoft Print to PDF", "Microsoft XPS Document Writer",
                       "OneNote (Desktop)", "Fax"}
    assert all(p["network"] is False for n, p in printers.items() if n in virtual)


def test_windows_unknown_port_is_not_guessed() -> None:
    p = printer_facts({"Name": "Máy in lạ", "PortName": "CUSTOMPORT1", "Network": False})
    assert p["network"] is None and p["virtual"] is False and p["name"] == "Máy in lạ"
