"""Every registered collector, on every platform fixture set, yields a section that
validates against the report schema (kiemke/schema/report-v1.json).

- "linux": live, on this machine.
- "windows": the powershell runner replays tests/fixtures/windows/ (see
  tests/windows_captures.py for the layout). A new collector's Windows data is added
  as files there; the collector is covered here as soon as it registers.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from windows_captures import WindowsCaptures

from kiemke.agent.collectors import LOAD_ERRORS, MODULES, REGISTRY, load_all
from kiemke.agent.collectors.base import Collector, CollectorError, Context
from kiemke.agent.config import AgentConfig
from kiemke.schema import load_schema

SCHEMA = load_schema()
PLATFORMS = ("linux", "windows")
load_all()
NAMES = sorted(REGISTRY)


def section_validator(section: str) -> jsonschema.Draft202012Validator:
    sub = {"$defs": SCHEMA["$defs"], **SCHEMA["properties"][section]}
    return jsonschema.Draft202012Validator(sub)


def _order(registry: dict[str, type[Collector]]) -> list[str]:
    """Dependencies first (Collector.after), as report.py runs them."""
    done: list[str] = []
    pending = dict(registry)
    while pending:
        ready = [n for n, c in pending.items() if all(d in done or d not in registry
                                                        for d in c.after)]
        if not ready:
            raise AssertionError(f"dependency cycle among collectors {sorted(pending)}")
        for name in sorted(ready):
            done.append(name)
            del pending[name]
    return done


def run_all(platform: str, state_dir: Path) -> dict[str, dict[str, Any]]:
    """collect() of every collector, in order. A CollectorError becomes the section's error
    entry (as report.py does); any other exception is a bug and fails the test."""
    config = AgentConfig(state_dir=state_dir)
    ctx = Context(config=config, state_dir=state_dir, platform=platform,
                  now=datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc))
    sections: dict[str, dict[str, Any]] = {}
    for name in _order(REGISTRY):
        cls = REGISTRY[name]
        try:
            result = cls().collect(ctx)
        except CollectorError as exc:
            result = {"errors": [exc.entry(name)]}
        sections[name] = result
        ctx.results[cls.section] = result
    return sections


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for platform in PLATFORMS:
        state = tmp_path_factory.mktemp(f"state-{platform}")
        with pytest.MonkeyPatch.context() as mp:
            if platform == "windows":
                WindowsCaptures().install(mp)
            out[platform] = run_all(platform, state)
    return out


def test_every_collector_module_loads() -> None:
    assert LOAD_ERRORS == {}, f"collector modules failed to import: {LOAD_ERRORS}"
    sections = {cls.section for cls in REGISTRY.values()}
    expected = {"os" if m == "os_info" else m for m in MODULES}
    assert expected <= sections, f"no collector registered for {expected - sections}"


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("name", NAMES)
def test_section_validates(collected: dict, name: str, platform: str) -> None:
    section = REGISTRY[name].section
    data = collected[platform][name]
    errors = sorted(section_validator(section).iter_errors(data), key=lambda e: e.path)
    assert not errors, "\n".join(
        f"{platform} {section}: {'/'.join(map(str, e.path))}: {e.message}" for e in errors)
    for entry in data.get("errors", []):
        assert entry["message"].strip(), f"{name}: error entry without a message"


@pytest.mark.parametrize("name", ["hardware", "os", "printers"])
def test_windows_captures_read_without_errors(collected: dict, name: str) -> None:
    """The Windows fixture set is complete for these collectors: every fact is read."""
    data = collected["windows"][name]
    assert "errors" not in data, data.get("errors")


def test_windows_sections_carry_the_captured_values(collected: dict) -> None:
    hw, os_, pr = (collected["windows"][n] for n in ("hardware", "os", "printers"))
    assert (hw["manufacturer"], hw["model"], hw["serial"]) == ("Dell Inc.", "OptiPlex 7090",
                                                               "7XK2M93")
    assert os_["name"] == "Microsoft Windows 11 Pro" and os_["version"] == "23H2"
    names = [p["name"] for p in pr["printers"]]
    assert "HP LaserJet Pro M404 - Phòng Kế toán" in names


def test_linux_run_reads_this_machine(collected: dict) -> None:
    os_ = collected["linux"]["os"]
    assert os_["family"] == "linux"
    assert os_["kernel"] == __import__("platform").uname().release


@pytest.mark.parametrize("name", sorted(MODULES_REGISTERED := load_all()))
def test_other_platforms_get_an_unsupported_error_not_a_crash(name: str,
                                                              tmp_path: Path) -> None:
    # The agent may run on a platform without a `<collector>_<platform>.py` half (macOS):
    # the section must say so ("unsupported"), never raise anything else or guess.
    ctx = Context(config=AgentConfig(state_dir=tmp_path), state_dir=tmp_path,
                  platform="darwin", now=datetime(2026, 11, 22, tzinfo=timezone.utc))
    collector = MODULES_REGISTERED[name]()
    try:
        section = collector.collect(ctx)
    except CollectorError as exc:
        assert exc.kind == "unsupported" and "darwin" in exc.message
        return
    # Collectors that still have something to say (identity: hostname, generated id).
    schema = load_schema()
    jsonschema.validate(section, {"$defs": schema["$defs"],
                                  **schema["properties"][collector.section]})
