"""Antivirus parsers against real captured output (GLPI Agent resources) and captures
written from vendor documentation (see tests/fixtures/SOURCES.md), plus damaged output."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from kiemke.agent.parsers import (
    bitdefender,
    clamav,
    defender,
    drweb,
    eset,
    kesl,
    mdatp,
    securitycenter,
    sentinelone,
)
from kiemke.agent.parsers.av_common import ParseError, parse_datetime, product_record
from kiemke.agent.parsers.av_vendors import (
    VendorConfigError,
    builtin_table,
    parse_extra,
    table_with_extras,
)

AV = Path(__file__).parent / "fixtures" / "linux" / "antivirus"
NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


def fixture(name: str) -> str:
    return (AV / name).read_text("utf-8")


# productState: value -> (provider, state, microsoft, up_to_date)
PRODUCT_STATES = [
    (397568, 0x06, "on", True, True),       # Defender on, up to date
    (393472, 0x06, "off", True, True),      # Defender off: another AV is active
    (266240, 0x04, "on", False, True),      # third party on, up to date
    (262144, 0x04, "off", False, True),     # third party off
    (262160, 0x04, "off", False, False),    # third party off, signatures out of date
    (393488, 0x06, "off", True, False),     # Defender off, out of date
    (397584, 0x06, "on", True, False),      # Defender on, out of date
    (401664, 0x06, "snoozed", True, True),  # Defender snoozed
    (270336, 0x04, "snoozed", False, True),  # third party snoozed
    (331776, 0x05, "on", False, True),      # AV + firewall product on
    (344064, 0x05, "unknown", False, True),  # scanner nibble 4: undefined
    (61440, 0x00, "unknown", False, True),  # 0xF000: no provider bits, nibble F
    (266256, 0x04, "on", False, False),     # third party on, out of date
    (274432, 0x04, "expired", False, True),  # 0x43000: subscription expired
]


@pytest.mark.parametrize(("value", "provider", "state", "microsoft", "fresh"), PRODUCT_STATES)
def test_product_state_table(value: int, provider: int, state: str, microsoft: bool,
                             fresh: bool) -> None:
    decoded = securitycenter.decode_product_state(value)
    assert (decoded.provider, decoded.state, decoded.microsoft, decoded.up_to_date) == (
        provider, state, microsoft, fresh)
    assert decoded.is_antivirus == bool(provider & 4)


def test_product_state_out_of_range() -> None:
    with pytest.raises(ValueError):
        securitycenter.decode_product_state(0x1000000)
    with pytest.raises(ValueError):
        securitycenter.decode_product_state(-1)


def test_security_center_rows_dedup_and_bad_state() -> None:
    rows = [{"displayName": "Windows Defender", "productState": 397568},
            {"displayName": "windows defender", "productState": 397568},
            {"displayName": "Bkav Pro", "productState": "not a number"},
            {"displayName": "", "productState": 266240}]
    products = securitycenter.parse_antivirus_products(rows)
    assert [p.name for p in products] == ["Windows Defender", "Bkav Pro"]
    assert products[1].product_state is None


def test_mdatp_health_real_capture() -> None:
    status = mdatp.parse_mdatp_health(fixture("mdatp-health-101.23062.0010.json"))
    assert status.version == "101.23062.0010"
    assert status.state == "passive" and status.enabled is False  # passiveModeEnabled true
    assert status.up_to_date is True
    assert status.signatures_version == "1.395.30.0"
    assert status.signatures_at == datetime(2023, 8, 9, 13, 19, 13, 787000, tzinfo=timezone.utc)
    assert status.licensed is True
    assert status.licence_expiry == date(2024, 4, 10)


@pytest.mark.parametrize("text", ["", "not json", '{"appVersion": "1.0"', "[]", '{"x": 1}'])
def test_mdatp_health_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        mdatp.parse_mdatp_health(text)


def test_mdatp_truncated_capture_is_an_error() -> None:
    text = fixture("mdatp-health-101.23062.0010.json")
    with pytest.raises(ParseError):
        mdatp.parse_mdatp_health(text[: len(text) // 2])


def test_bduitool_real_capture() -> None:
    status = bitdefender.parse_get_ps(fixture("bduitool-get-ps-7.0.3.2239.txt"))
    assert status.version == "7.0.3.2239"
    assert status.enabled is True and status.state == "on"
    assert status.up_to_date is True  # "New security content available: no"
    assert status.signatures_version == "7.95171"
    # "2023-08-24 at 11:44:37 GMT+2" is 09:44:37 UTC
    assert status.signatures_at == datetime(2023, 8, 24, 9, 44, 37, tzinfo=timezone.utc)


def test_bduitool_garbage_and_truncated() -> None:
    with pytest.raises(ParseError):
        bitdefender.parse_get_ps("")
    with pytest.raises(ParseError):
        bitdefender.parse_get_ps("Segmentation fault\n")
    first_line_only = fixture("bduitool-get-ps-7.0.3.2239.txt").splitlines()[0]
    status = bitdefender.parse_get_ps(first_line_only)
    assert status.version == "7.0.3.2239"
    assert status.enabled is None and status.up_to_date is None and status.signatures_at is None


def test_bitdefender_survey_data() -> None:
    assert bitdefender.parse_survey_data('{"days_left": 30, "x": 1}', date(2026, 11, 20)) == \
        date(2026, 12, 20)
    assert bitdefender.parse_survey_data("{broken", date(2026, 11, 20)) is None


def test_sentinelctl_real_capture() -> None:
    status = sentinelone.parse_sentinelctl(fixture("sentinelctl-30.1.1.10.txt"))
    assert status.version == "30.1.1.10"
    assert status.enabled is True and status.state == "on"
    with pytest.raises(ParseError):
        sentinelone.parse_sentinelctl("command not found")
    disabled = sentinelone.parse_sentinelctl("Agent state      Disabled\n")
    assert disabled.enabled is False and disabled.state == "off"


def test_eset_real_captures() -> None:
    assert eset.parse_upd_version(fixture("eea-12.0.13.0-upd-version.txt")) == "12.0.13.0"
    version, day = eset.parse_list_modules(fixture("eea-12.0.13.0-upd-list-modules.txt"))
    assert version == "31832 (20250909)"
    assert day == datetime(2025, 9, 9, tzinfo=timezone.utc)
    assert eset.parse_lic_status(fixture("eea-12.0.13.0-lic-status.txt")) == (
        True, date(2026, 6, 21))
    with pytest.raises(ParseError):
        eset.parse_upd_version("")
    assert eset.parse_list_modules("EM000\t  1088 (20250708)\tUpdate module\n") is None
    with pytest.raises(ParseError):
        eset.parse_lic_status("")
    assert eset.parse_lic_status("Status: Not activated\n") == (False, None)


def test_eset_license_lf_utf16() -> None:
    xml = ('<?xml version="1.0" encoding="utf-16"?><ESET><PRODUCT_LICENSE_FILE><LICENSE>'
           '<ACTIVE_PRODUCT NAME="ESET Endpoint Antivirus" EXPIRATION_DATE="2027-01-15T12:00:00Z"'
           ' /></LICENSE></PRODUCT_LICENSE_FILE></ESET>')
    assert eset.parse_license_lf(xml.encode("utf-16")) == date(2027, 1, 15)
    assert eset.parse_license_lf(b"\xff\xfe") is None


def test_kesl_app_info_from_documentation() -> None:
    status = kesl.parse_app_info(fixture("kesl-control-app-info-12.0.txt"), NOW)
    assert status.name == "Kaspersky Endpoint Security 12.0 for Linux"
    assert status.version == "12.0.0.6672"
    assert status.licence_expiry == date(2026, 12, 31)
    assert status.licensed is True
    assert status.signatures_at == datetime(2026, 11, 20, 14, 28, tzinfo=timezone.utc)
    expired = kesl.parse_app_info(fixture("kesl-control-app-info-12.0.txt"),
                                  datetime(2027, 1, 2, tzinfo=timezone.utc))
    assert expired.licensed is False
    with pytest.raises(ParseError):
        kesl.parse_app_info("")
    with pytest.raises(ParseError):
        kesl.parse_app_info("Name: Kaspersky Endpoint Security 12.0 for Linux\n")  # truncated


def test_drweb_from_documentation() -> None:
    assert drweb.parse_version(fixture("drweb-ctl-version-11.1.txt")) == "11.1.3.2204151528"
    stamp, at = drweb.parse_baseinfo(fixture("drweb-ctl-baseinfo-11.1.txt"))
    assert stamp == "20261120091500"
    assert at == datetime(2026, 11, 20, 9, 15, tzinfo=timezone.utc)
    assert drweb.parse_license(fixture("drweb-ctl-license-11.1.txt"), NOW) == (
        True, date(2027, 3, 31))
    assert drweb.parse_license("No license key found\n", NOW) == (False, None)
    with pytest.raises(ParseError):
        drweb.parse_baseinfo("Core engine: 7.00\n")
    with pytest.raises(ParseError):
        drweb.parse_license("\x00\x01garbage", NOW)


def test_defender_status_normal_passive_off() -> None:
    normal = defender.parse_mp_computer_status({
        "AMServiceEnabled": True, "AntivirusEnabled": True, "RealTimeProtectionEnabled": True,
        "AMRunningMode": "Normal", "AntivirusSignatureLastUpdated": "/Date(1795050000000)/",
        "AntivirusSignatureAge": 1, "AntivirusSignatureVersion": "1.421.1234.0",
        "AMProductVersion": "4.18.25100.9"})
    assert (normal.state, normal.enabled, normal.version) == ("on", True, "4.18.25100.9")
    assert normal.signatures_at == datetime(2026, 11, 19, 1, 0, tzinfo=timezone.utc)
    for mode in ("Passive Mode", "EDR Block Mode", "SxS Passive Mode"):
        s = defender.parse_mp_computer_status({"AMServiceEnabled": True,
                                               "AntivirusEnabled": True,
                                               "RealTimeProtectionEnabled": True,
                                               "AMRunningMode": mode})
        assert (s.state, s.enabled) == ("passive", False), mode
    off = defender.parse_mp_computer_status({"AMServiceEnabled": True, "AntivirusEnabled": True,
                                             "RealTimeProtectionEnabled": False,
                                             "AMRunningMode": "Normal",
                                             "AntivirusSignatureAge": 65535})
    assert (off.state, off.enabled, off.signature_age_days) == ("off", False, None)
    assert defender.parse_mp_computer_status({}).state == "unknown"


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-10T08:00:00+07:00", datetime(2026, 11, 10, 1, 0, tzinfo=timezone.utc)),
    ("2026-11-10T08:00:00.1234567Z", datetime(2026, 11, 10, 8, 0, 0, 123456,
                                              tzinfo=timezone.utc)),
    ("/Date(1795050000000)/", datetime(2026, 11, 19, 1, 0, tzinfo=timezone.utc)),
    ("2023-08-24 at 10:44:23 GMT+2", datetime(2023, 8, 24, 8, 44, 23, tzinfo=timezone.utc)),
    ("18 Nov 2024 09-40 -0500", datetime(2024, 11, 18, 14, 40, tzinfo=timezone.utc)),
    ("2027-Mar-31", datetime(2027, 3, 31, tzinfo=timezone.utc)),
    ("yesterday", None), ("", None),
])
def test_vendor_date_formats(text: str, expected: datetime | None) -> None:
    assert parse_datetime(text) == expected


def test_clamscan_version_forms() -> None:
    v = clamav.parse_clamscan_version("ClamAV 1.0.7/27450/Mon Nov 18 09:40:01 2024\n")
    assert (v.engine, v.database_version, v.database_date) == (
        "1.0.7", 27450, "Mon Nov 18 09:40:01 2024")
    bare = clamav.parse_clamscan_version("ClamAV 1.4.6\n")
    assert (bare.engine, bare.database_version) == ("1.4.6", None)
    with pytest.raises(ValueError):
        clamav.parse_clamscan_version("LibClamAV Error: cli_loaddb(): No supported database")


def test_cvd_header_round_trip_and_damage() -> None:
    built = datetime(2026, 11, 18, 9, 40, tzinfo=timezone.utc)
    header = clamav.make_cvd_header(built, 27450, signatures=2070234)
    assert len(header) == 512
    parsed = clamav.parse_cvd_header(header)
    assert (parsed.built_at, parsed.version, parsed.signatures) == (built, 27450, 2070234)
    # Without the trailing stime field the build-time text is used.
    old = b"ClamAV-VDB:18 Nov 2024 09-40 -0500:27450:2070234:90:X:X:raynman".ljust(512, b" ")
    assert clamav.parse_cvd_header(old).built_at == datetime(2024, 11, 18, 14, 40,
                                                             tzinfo=timezone.utc)
    for bad in (header[:100], b"\x7fELF" + header[4:], b"ClamAV-VDB:x:y".ljust(512, b" ")):
        with pytest.raises(clamav.CvdError):
            clamav.parse_cvd_header(bad)


def test_clamav_conf_database_directory() -> None:
    conf = "# comment\nDatabaseDirectory /srv/clamav\nLogSyslog false\n"
    assert clamav.database_directory(conf) == "/srv/clamav"
    assert clamav.database_directory("LogSyslog false\n") is None


def test_vendor_table_contents_and_matching() -> None:
    table = builtin_table()
    ids = {p.id for p in table.antivirus}
    assert {"bkav", "cmc", "kaspersky", "eset", "bitdefender", "trendmicro", "symantec",
            "mcafee", "sophos", "defender", "clamav", "sentinelone", "crowdstrike",
            "drweb"} <= ids
    assert {"wazuh", "ossec", "elastic_agent", "splunk_uf", "zabbix_agent",
            "crowdstrike_falcon", "mde_sense", "kaspersky_network_agent", "sysmon",
            "osquery"} <= {p.id for p in table.monitoring}
    assert table.match_antivirus("Kaspersky Endpoint Security for Windows").id == "kaspersky"
    assert table.match_antivirus("Bkav Pro Internet Security").id == "bkav"
    assert table.match_antivirus("Windows Defender").id == "defender"
    assert table.match_antivirus("Phần mềm diệt virus nội bộ") is None


def test_config_extras_with_vietnamese_names() -> None:
    extra = "Phần mềm giám sát Sở TT&TT Bắc Giang:GSATTT,gsattt-agent,/opt/gsattt/bin/agent"
    product = parse_extra(extra, "[security_monitoring] agents", 0)
    assert product.name == "Phần mềm giám sát Sở TT&TT Bắc Giang"
    assert product.win_services == ("GSATTT", "gsattt-agent")
    assert product.linux_processes == ("gsattt", "gsattt-agent")
    assert product.linux_files == ("/opt/gsattt/bin/agent",)
    table = table_with_extras(["Diệt virus Nội bộ:NBAV.exe"], [extra])
    assert table.antivirus[0].win_processes == ("nbav",)
    assert table.match_antivirus("diệt virus nội bộ") is table.antivirus[0]
    with pytest.raises(VendorConfigError, match="entry 2"):
        table_with_extras(["A:b", "no names here"])


def test_product_record_has_exactly_the_schema_keys() -> None:
    from kiemke.schema import load_schema

    record = product_record("Bkav Pro", "service", state="on")
    items = load_schema()["properties"]["antivirus"]["properties"]["products"]["items"]
    assert set(record) == set(items["properties"])
    assert record["state"] == "on" and record["licensed"] is None
    with pytest.raises(KeyError):
        product_record("x", "cli", colour="red")
    with pytest.raises(ValueError):
        product_record("x", "cli", state="sleeping")


MACOS_AV = Path(__file__).parent / "fixtures" / "macos" / "antivirus"


def test_sentinelctl_status_tree_of_newer_builds() -> None:
    """Another build's output (the 23.x/24.x status tree) parses instead of raising."""
    from kiemke.agent.parsers import sentinelone

    status = sentinelone.parse_sentinelctl(
        (MACOS_AV / "sentinelone-epp-24.1.2.7444-status.txt").read_text("utf-8"))
    assert (status.version, status.state, status.enabled) == ("23.4.1.7125", "on", True)
    version = sentinelone.parse_sentinelctl(
        (MACOS_AV / "sentinelone-epp-24.1.2.7444-version.txt").read_text("utf-8"))
    assert (version.version, version.state) == ("24.1.2.7444", "unknown")
    disabled = sentinelone.parse_sentinelctl(
        "Agent\n   Version:     23.4.1.7125\n   Agent Operational State:   enabled\n"
        "   Protection:                        disabled\n")
    assert (disabled.state, disabled.enabled) == ("off", False)  # protection wins


def test_cytool_outputs_of_another_build() -> None:
    from kiemke.agent.parsers import cortex

    info = (MACOS_AV / "cortex-xdr-8.2.1.47908-info.txt").read_text("utf-8")
    runtime = (MACOS_AV / "cortex-xdr-8.2.1.47908-runtime-query.txt").read_text("utf-8")
    rows = cortex.parse_runtime_query(runtime)
    assert rows["pmd"] == "running" and rows["kproc-ctrl"] == "loaded"
    status = cortex.cortex_status(info, None, runtime)
    assert (status.version, status.state, status.enabled) == ("8.2.1.47908", "on", True)
    stopped = cortex.cortex_status(info, None, runtime.replace(
        "root             Running\t\t/Library/Application Support/PaloAltoNetworks/Traps/bin/pmd",
        "root             Stopped\t\t/Library/Application Support/PaloAltoNetworks/Traps/bin/pmd"))
    assert (stopped.state, stopped.enabled) == ("off", False)


def test_mdatp_active_mode_then_replayed_after_expiry() -> None:
    """Real active-mode health: on and current when collected; replayed after the
    product expiry date the evidence says not licensed and not current."""
    from datetime import datetime, timezone

    from kiemke.agent.parsers import av_common, mdatp

    status = mdatp.parse_mdatp_health(
        (MACOS_AV / "mdatp-health-101.98.30.json").read_text("utf-8"))
    assert (status.state, status.enabled, status.up_to_date, status.licensed) == (
        "on", True, True, True)
    for collected, current, licensed in (
            (datetime(2023, 5, 3, 8, 27, tzinfo=timezone.utc), True, True),
            (datetime(2023, 10, 1, tzinfo=timezone.utc), False, False)):
        record = av_common.product_record(
            "Microsoft Defender for Endpoint", "cli", state=status.state,
            up_to_date=status.up_to_date, licensed=status.licensed,
            licence_expiry=status.licence_expiry.isoformat() if status.licence_expiry else None)
        av_common.fill_signature_age(record, status.signatures_at, collected, 7.0)
        problems = av_common.reconcile(record, collected, 7.0)
        assert (record["up_to_date"], record["licensed"]) == (current, licensed)
        assert record["licence_expiry"] == "2023-09-06"
        assert len(problems) == (0 if current else 2)
