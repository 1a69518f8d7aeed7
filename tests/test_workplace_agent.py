"""Agent side of the workplace targets (issue 13): signing certificates, mail clients,
cameras and microphones. Captures and their sources: tests/fixtures/SOURCES.md
("Workplace facts"). The NSS test builds a real NSS database with NSS's certutil.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import struct
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import missing_component
from hypothesis import given, settings
from hypothesis import strategies as st
from windows_captures import WindowsCaptures

from kiemke.agent.collectors import REGISTRY, load_all, mail_linux, meeting_linux, signing_linux
from kiemke.agent.collectors.base import Context, read_platform
from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers import mail_clients, media_devices, signing, x509
from kiemke.agent.parsers.errors import ParseError
from kiemke.agent.report import encode

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc)
# Personal data in the fixtures: none of it may appear in a report.
PERSONAL = ("Nguyễn Văn An", "Nguy", "012345678901", "5424242", "52c472", "52:c4:72",
            "tran.thi.binh", "binhtt.1987", "le.van.cuong", "cuonglv1980", "Lê Văn Cường")
load_all()


def ctx(tmp_path: Path, platform: str = "linux", now: datetime = NOW,
        **config: object) -> Context:
    cfg = AgentConfig(state_dir=tmp_path / "state", **config)  # type: ignore[arg-type]
    return Context(config=cfg, state_dir=tmp_path / "state", platform=platform, now=now)


# ------------------------------------------------------------------ X.509 and CA table

def test_x509_reads_a_real_signing_certificate() -> None:
    cert = x509.parse_der((FIXTURES / "linux/signing/an.der").read_bytes())
    assert cert.issuer["CN"] == "VNPT Certification Authority"
    assert cert.key_usage == ("digital_signature", "non_repudiation")
    assert cert.extended_key_usage == ("email_protection", "client_auth")
    assert cert.not_before.date().isoformat() == "2026-12-01"
    assert cert.not_after.date().isoformat() == "2028-12-01"
    assert cert.can_sign and not cert.is_ca


def test_x509_reads_every_system_ca_and_sees_it_is_a_ca() -> None:
    pems = sorted(Path("/etc/ssl/certs").glob("*.pem"))
    if not pems:
        missing_component("no CA certificates in /etc/ssl/certs (package ca-certificates)")
    certs = [x509.parse_der(der) for p in pems[:200] for der in x509.pem_to_der(p.read_text())]
    assert len(certs) > 50
    assert all(c.is_ca and not c.can_sign for c in certs)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_x509_raises_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        x509.parse_der(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=1500))
def test_truncated_certificate_is_a_parse_error_not_partial_facts(cut: int) -> None:
    der = (FIXTURES / "linux/signing/an.der").read_bytes()
    if cut >= len(der):
        return
    with pytest.raises(ParseError):
        x509.parse_der(der[:cut])


def test_ca_table_matches_vietnamese_spellings_and_extra_config() -> None:
    from kiemke.agent.collectors.signing import authorities

    cas = authorities(["ub-ca:CA Ủy ban Dân tộc:government:ủy ban dân tộc"])
    assert signing.classify_issuer({"O": "Ban Cơ yếu Chính phủ"}, cas).id == "gov-ca"
    assert signing.classify_issuer({"CN": "Viettel-CA SHA-256"}, cas).id == "viettel-ca"
    assert signing.classify_issuer({"O": "Uy ban Dan toc"}, cas).id == "ub-ca"
    assert signing.classify_issuer({"CN": "Let's Encrypt R3"}, cas) is None


# ------------------------------------------------------------------------------- NSS

def _nss_database(directory: Path) -> None:
    certutil = shutil.which("certutil")
    if certutil is None:
        missing_component("certutil is not installed (Debian package libnss3-tools)")
    directory.mkdir(parents=True)
    noise = directory / "noise"
    noise.write_bytes(bytes(range(256)))

    def run(*args: str, stdin: str = "") -> None:
        subprocess.run([certutil, *args], input=stdin, text=True, check=True,
                       capture_output=True, timeout=60)

    run("-N", "-d", f"sql:{directory}", "--empty-password")
    run("-S", "-d", f"sql:{directory}", "-n", "test root", "-x", "-t", "CT,C,C", "-k", "rsa",
        "-g", "2048", "-v", "120", "-z", str(noise), "-2", "-s",
        "CN=VNPT Certification Authority,OU=VNPT-CA Trust Network,O=VNPT Group,C=VN",
        stdin="y\n0\ny\n")
    run("-S", "-d", f"sql:{directory}", "-n", "nguyen van an", "-c", "test root",
        "-t", "u,u,u", "-k", "rsa", "-g", "2048", "-m", "5424242", "-v", "24",
        "-z", str(noise), "--keyUsage", "digitalSignature,nonRepudiation", "-s",
        "CN=Nguyễn Văn An,UID=CMND:012345678901,O=Liên đoàn Lao động tỉnh Bắc Giang,C=VN")


def test_nss_certificate_of_a_real_database_is_reported_without_personal_data(
        tmp_path: Path) -> None:
    home = tmp_path / "home" / "an"
    _nss_database(home / ".pki" / "nssdb")
    # certutil dates the certificate from the real clock: judge it at the real time, not NOW.
    context = ctx(tmp_path, now=datetime.now(timezone.utc))
    reading = signing_linux.read(context, home_roots=(str(tmp_path / "home"),))
    assert reading.errors == []
    [cert] = reading.facts["certificates"]
    assert cert["ca"] == "vnpt-ca" and cert["ca_kind"] == "public"
    assert cert["can_sign"] is True and cert["state"] == "valid"
    assert cert["hardware_token"] is False  # the key is in NSS's own software database
    assert cert["store"] == "nss" and len(cert["subject_hash"]) == 16
    again = signing_linux.read(context, home_roots=(str(tmp_path / "home"),))
    assert again.facts["certificates"][0]["subject_hash"] == cert["subject_hash"], \
        "the salt is kept: the same certificate hashes the same on the next run"
    assert (context.state_dir / "signing.salt").stat().st_mode & 0o777 == 0o600
    text = encode({"signing": reading.facts}).decode()
    assert not [p for p in PERSONAL if p in text]


def test_nss_databases_without_certutil_say_what_to_install(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    db = tmp_path / "home" / "an" / ".pki" / "nssdb"
    db.mkdir(parents=True)
    (db / "cert9.db").write_bytes(b"")
    monkeypatch.setattr(signing_linux, "which", lambda name: None)
    reading = signing_linux.read(ctx(tmp_path), home_roots=(str(tmp_path / "home"),))
    assert reading.facts["certificates"] == []
    assert "libnss3-tools" in reading.errors[0]["message"]


def test_nss_listing_flags_and_token_prefix() -> None:
    rows = signing.parse_nss_listing(
        "\nCertificate Nickname                                         Trust Attributes\n"
        "                                                             SSL,S/MIME,JAR/XPI\n\n"
        "VNPT-CA test root                                            CT,C,C\n"
        "nguyen van an                                                u,u,u\n"
        "ePass2003:Tran Thi Binh (VNPT-CA)                            u,u,u\n")
    assert signing.nss_user_certs(rows) == [("nguyen van an", False),
                                            ("ePass2003:Tran Thi Binh (VNPT-CA)", True)]
    with pytest.raises(ParseError):
        signing.parse_nss_listing("certutil: function failed: SEC_ERROR_BAD_DATABASE")


def test_p11kit_capture_has_only_the_trust_module() -> None:
    text = (FIXTURES / "linux/signing/p11kit-list-modules-debian12.txt").read_text()
    [module] = signing.parse_p11kit_modules(text)
    assert (module.name, module.path, module.tokens) == ("p11-kit-trust", "p11-kit-trust.so",
                                                         ["System Trust"])


# --------------------------------------------------------------------------- Windows

def test_windows_store_blobs_give_ca_token_and_no_personal_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    WindowsCaptures().install(monkeypatch)
    section = REGISTRY["signing"]().collect(ctx(tmp_path, "windows"))
    certs = section["certificates"]
    assert [(c["store"], c["hardware_token"]) for c in certs] == [("user", True),
                                                                   ("machine", False)]
    assert {c["ca"] for c in certs} == {"vnpt-ca"}
    assert section["middleware"] == ["VNPT-CA Token Manager"]
    assert "errors" not in section
    text = encode({"signing": section}).decode()
    assert not [p for p in PERSONAL if p in text]


def test_store_blob_without_certificate_or_truncated_is_a_parse_error() -> None:
    der = (FIXTURES / "linux/signing/an.der").read_bytes()
    blob = struct.pack("<III", 32, 1, len(der)) + der
    assert signing.parse_store_blob(blob) == (der, None)
    with pytest.raises(ParseError):
        signing.parse_store_blob(blob[:-5])
    with pytest.raises(ParseError):
        signing.parse_store_blob(struct.pack("<III", 3, 1, 0))


@pytest.mark.parametrize(("provider", "hardware"), [
    ("eToken Base Cryptographic Provider", True),
    ("Microsoft Base Smart Card Crypto Provider", True),
    ("Microsoft Smart Card Key Storage Provider", True),
    ("Microsoft Software Key Storage Provider", False),
    ("Microsoft Enhanced RSA and AES Cryptographic Provider", False),
    ("Microsoft Platform Crypto Provider", False),
    ("Some Vendor Provider", None),
    (None, None),
])
def test_key_provider_tells_token_from_software(provider: str | None,
                                                hardware: bool | None) -> None:
    assert signing.provider_is_hardware(provider) is hardware


# ------------------------------------------------------------------------------ mail

def test_thunderbird_profile_counts_domains_and_keeps_no_address(tmp_path: Path) -> None:
    home = tmp_path / "home" / "cuong"
    shutil.copytree(FIXTURES / "linux/mail/thunderbird", home / ".thunderbird")
    reading = mail_linux.read(ctx(tmp_path), home_roots=(str(tmp_path / "home"),))
    assert reading.errors == []
    assert reading.facts["clients"] == [{
        "client": "thunderbird", "profiles": 1, "accounts": 2,
        "domains": [{"domain": "hungyen.gov.vn", "accounts": 1},
                    {"domain": "yahoo.com.vn", "accounts": 1}]}]
    text = encode(reading.facts).decode()
    assert not [p for p in PERSONAL if p in text]


def test_outlook_accounts_from_the_registry_capture(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    WindowsCaptures().install(monkeypatch)
    section = REGISTRY["email"]().collect(ctx(tmp_path, "windows"))
    assert section["clients"] == [{"client": "outlook", "profiles": 1, "accounts": 2,
                                   "domains": [{"domain": "bacgiang.gov.vn", "accounts": 1},
                                               {"domain": "gmail.com", "accounts": 1}]}]
    text = encode(section).decode()
    assert not [p for p in PERSONAL if p in text]


def test_broken_profiles_ini_is_an_error_entry(tmp_path: Path) -> None:
    tb = tmp_path / "home" / "x" / ".thunderbird"
    tb.mkdir(parents=True)
    (tb / "profiles.ini").write_text("Path=no section header\n")
    reading = mail_linux.read(ctx(tmp_path), home_roots=(str(tmp_path / "home"),))
    assert reading.facts["clients"] == []
    assert "profiles.ini" in reading.errors[0]["message"]


@pytest.mark.parametrize(("address", "domain"), [
    ("a@BacGiang.Gov.VN", "bacgiang.gov.vn"), ("x@sub.hungyen.gov.vn.", "sub.hungyen.gov.vn"),
    ("no-at-sign", None), ("a@", None), ("a@localhost", None), ("a@bắcgiang.vn", "bắcgiang.vn"),
])
def test_domain_of(address: str, domain: str | None) -> None:
    assert mail_clients.domain_of(address) == domain


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_mail_parsers_raise_only_parse_error(text: str) -> None:
    for parser in (mail_clients.parse_profiles_ini, mail_clients.prefs_addresses):
        with contextlib.suppress(ParseError):
            parser(text)


# --------------------------------------------------------------------------- meeting

def test_windows_pnp_capture_cameras_microphones_and_scanner(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    WindowsCaptures().install(monkeypatch)
    section = REGISTRY["meeting"]().collect(ctx(tmp_path, "windows"))
    assert (section["cameras"], section["cameras_enabled"]) == (1, 1)  # the scanner is not one
    assert (section["microphones"], section["microphones_enabled"]) == (2, 1)  # headset disabled
    assert section["software"] == ["Zoom"]


def test_linux_cameras_microphones_and_desktop_files(tmp_path: Path) -> None:
    v4l = tmp_path / "video4linux"
    for node, name, index in (("video0", "Integrated_Webcam_HD: Integrate", "0"),
                              ("video1", "Integrated_Webcam_HD: Integrate", "1"),
                              ("video2", "Dummy video device (0x0000)", "0")):
        (v4l / node).mkdir(parents=True)
        (v4l / node / "name").write_text(name + "\n")
        (v4l / node / "index").write_text(index + "\n")
    apps = tmp_path / "applications"
    apps.mkdir()
    (apps / "Zoom.desktop").write_text("[Desktop Entry]\nName=Zoom Workplace\nExec=zoom\n")
    (apps / "teams-for-linux.desktop").write_text("[Desktop Entry]\nName=Teams for Linux\n")
    reading = meeting_linux.read(ctx(tmp_path), v4l=v4l,
                                 pcm=FIXTURES / "linux/meeting/asound-pcm.txt",
                                 app_dirs=(str(apps),), home_dirs=())
    section = media_devices.section(reading.facts["devices"], reading.facts["software"])
    assert (section["cameras"], section["microphones"]) == (1, 2)
    assert section["software"] == ["Zoom", "Microsoft Teams"]


def test_configured_meeting_software_replaces_the_default(tmp_path: Path) -> None:
    from kiemke.agent.collectors.meeting import wanted_software

    assert wanted_software(["VNPT Meeting:vnpt meeting|vnptmeeting"]) == [
        ("VNPT Meeting", ("vnpt meeting", "vnptmeeting"))]
    with pytest.raises(Exception, match="Name:match1"):
        wanted_software(["no colon"])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_asound_parser_raises_only_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        media_devices.asound_microphones(text)


def test_periodic_report_drops_device_names_and_stays_small(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from kiemke.agent.report import trim_periodic

    WindowsCaptures().install(monkeypatch)
    context = ctx(tmp_path, "windows")
    report = {name: REGISTRY[name]().collect(context) for name in ("signing", "email",
                                                                    "meeting")}
    report["meeting"] = dict(report["meeting"])
    trim_periodic(report)
    assert "devices" not in report["meeting"]
    assert len(encode(report)) < 1400, "these sections must leave room in the 4 KB budget"


def test_windows_blob_fixture_decodes() -> None:
    rows = json.loads((FIXTURES / "windows/scripts/signing_stores.json").read_text())
    providers = [signing.parse_store_blob(base64.b64decode(r["Blob"]))[1] for r in rows]
    assert providers == ["eToken Base Cryptographic Provider",
                         "Microsoft Software Key Storage Provider", None]


def test_collect_runs_the_new_collectors_on_this_machine(tmp_path: Path) -> None:
    for name in ("signing", "mail", "meeting"):
        reading = read_platform(name, ctx(tmp_path), name)
        assert isinstance(reading.facts, dict)
