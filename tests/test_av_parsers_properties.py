"""Property tests: no antivirus parser raises anything but the documented ParseError
(kiemke/agent/parsers/errors.py), whatever the vendor tool printed: random text, and the
real captures of the corpus cut short, spliced with noise or with characters changed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiemke.agent.parsers import (
    av_common,
    bitdefender,
    clamav,
    cortex,
    crowdstrike,
    defender,
    drweb,
    eset,
    kesl,
    mdatp,
    securitycenter,
    sentinelone,
    sophos,
    symantec,
    trend,
)
from kiemke.agent.parsers.errors import ParseError

FIXTURES = Path(__file__).parent / "fixtures"
CAPTURE_DIRS = (FIXTURES / "corpus" / "antivirus", FIXTURES / "linux" / "antivirus",
                FIXTURES / "macos" / "antivirus")
NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
CAPTURES = sorted({p.read_text("utf-8", "replace") for d in CAPTURE_DIRS
                   for p in d.rglob("*") if p.suffix in (".txt", ".json")})
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def vendor_text(draw: st.DrawFn) -> str:
    """Random text, or a real capture damaged the way real output gets damaged."""
    if draw(st.booleans()):
        return draw(st.text(max_size=300))
    text = draw(st.sampled_from(CAPTURES))
    cut = draw(st.integers(0, len(text)))
    how = draw(st.sampled_from(["truncate", "splice", "replace", "as is"]))
    if how == "truncate":
        return text[:cut]
    if how == "splice":
        return text[:cut] + draw(st.text(max_size=40)) + text[cut:]
    if how == "replace" and text:
        i = min(cut, len(text) - 1)
        return text[:i] + draw(st.characters()) + text[i + 1:]
    return text


TEXT_PARSERS: dict[str, Callable[[str], Any]] = {
    "bduitool get ps": bitdefender.parse_get_ps,
    "SurveyDataInfo": lambda t: bitdefender.parse_survey_data(t, NOW.date()),
    "clamscan --version": clamav.parse_clamscan_version,
    "clamd.conf": clamav.database_directory,
    "cytool info": cortex.parse_info,
    "cytool info query": cortex.parse_info_query,
    "cytool runtime query": cortex.parse_runtime_query,
    "cytool all": lambda t: cortex.cortex_status(t, t, t),
    "falconctl": crowdstrike.parse_falconctl,
    "falconctl status": lambda t: crowdstrike.falcon_status(t, True),
    "drweb-ctl --version": drweb.parse_version,
    "drweb-ctl baseinfo": drweb.parse_baseinfo,
    "drweb-ctl license": lambda t: drweb.parse_license(t, NOW),
    "upd --version": eset.parse_upd_version,
    "upd --list-modules": eset.parse_list_modules,
    "lic --status": eset.parse_lic_status,
    "kesl-control --app-info": lambda t: kesl.parse_app_info(t, NOW),
    "mdatp health": mdatp.parse_mdatp_health,
    "sentinelctl": sentinelone.parse_sentinelctl,
    "savdstatus": sophos.parse_savdstatus,
    "savdstatus --version": sophos.parse_version,
    "sophos all": lambda t: sophos.sophos_status(t, t),
    "sav info -a": symantec.parse_autoprotect,
    "sav info -d": symantec.parse_definitions,
    "sav info -p": symantec.parse_product_version,
    "sav all": lambda t: symantec.sep_status(t, t, t),
    "dsa_query": trend.dsa_status,
    "dates": av_common.parse_datetime,
    "key: value": av_common.key_values,
}


@pytest.mark.parametrize("name", sorted(TEXT_PARSERS))
def test_text_parsers_raise_only_parse_error(name: str) -> None:
    parser = TEXT_PARSERS[name]

    @SETTINGS
    @given(vendor_text())
    def check(text: str) -> None:
        with contextlib.suppress(ParseError):
            parser(text)

    check()


@SETTINGS
@given(st.binary(max_size=700), st.sampled_from(["cvd", "cld"]))
def test_database_header_raises_only_parse_error(data: bytes, kind: str) -> None:
    head = clamav.make_cvd_header(NOW, 27450, body=b"x") if kind == "cvd" else b""
    for candidate in (data, head[:len(data)] + data[len(head):], head + data):
        try:
            header = clamav.parse_cvd_header(candidate)
        except ParseError:
            continue
        clamav.check_cvd_body(header, clamav.body_md5([candidate[512:]]))


@SETTINGS
@given(st.binary(max_size=300))
def test_eset_licence_file_raises_only_parse_error(data: bytes) -> None:
    try:
        eset.parse_license_lf(data)
        eset.parse_license_lf(b"\xff\xfe" + data)  # UTF-16 with a BOM, odd length too
    except ParseError:
        pass


CIM_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.text(max_size=40),
                       st.floats(allow_nan=True), st.lists(st.integers(), max_size=3))


@SETTINGS
@given(st.dictionaries(st.sampled_from(defender.MP_PROPERTIES + ("Other",)), CIM_VALUES))
def test_defender_status_raises_only_parse_error(row: dict[str, Any]) -> None:
    with contextlib.suppress(ParseError):
        defender.parse_mp_computer_status(row)


@SETTINGS
@given(st.lists(st.dictionaries(st.sampled_from(["displayName", "productState",
                                                 "pathToSignedProductExe", "timestamp"]),
                                CIM_VALUES), max_size=4), st.integers(-10, 2**25))
def test_security_center_raises_only_parse_error(rows: list[dict[str, Any]], state: int
                                                 ) -> None:
    securitycenter.parse_antivirus_products(rows)
    with contextlib.suppress(ParseError):
        securitycenter.decode_product_state(state)


RECORD_VALUES = st.one_of(st.none(), st.booleans(), st.text(max_size=30),
                          st.sampled_from(["2026-11-19T01:00:00Z", "2024-04-10",
                                           "31832 (20250909)"]))


@SETTINGS
@given(st.fixed_dictionaries({k: RECORD_VALUES for k in ("signatures_date", "licence_expiry",
                                                         "up_to_date", "licensed")}),
       st.sampled_from(av_common_states := ("on", "off", "snoozed", "expired", "passive",
                                            "unknown")))
def test_reconcile_never_raises_and_never_says_yes_against_evidence(
        facts: dict[str, Any], state: str) -> None:
    record = av_common.product_record("X", "cli", state=state, **facts)
    av_common.reconcile(record, NOW, 7.0)
    assert record["state"] in av_common_states
    if record["state"] != "on":
        assert record["enabled"] is not True
    if record.get("signatures_age_days") is not None and record["signatures_age_days"] > 7:
        assert record["up_to_date"] is False
    text = record["licence_expiry"]
    expiry = av_common.parse_date(text) if isinstance(text, str) else None
    if (expiry is not None and expiry < NOW.date()) or record["state"] == "expired":
        assert record["licensed"] is False
