"""Every registered collector, on every platform fixture set, yields a section that
validates against the report schema (kiemke/schema/report-v1.json).

- "linux": live, on this machine.
- "windows": the powershell runner replays tests/fixtures/windows/ (see
  tests/windows_captures.py for the layout). A new collector's Windows data is added
  as files there; the collector is covered here as soon as it registers.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import typing
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from windows_captures import WindowsCaptures

from kiemke.agent.collectors import LOAD_ERRORS, MODULES, REGISTRY, base, load_all, module_section
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
    expected = {module_section(m) for m in MODULES}
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


# --- The platform contract (psutil's tests/test_contracts.py, for kiemke's halves) ------
#
# Every `kiemke/agent/collectors/<collector>_<platform>.py` is a platform half: it exposes
# read(ctx) -> PlatformReading and nothing else decides the platform. One dispatcher
# (base.platform_module) picks the half; other platforms get an "unsupported" entry.

COLLECTORS_DIR = Path(__file__).parent.parent / "kiemke" / "agent" / "collectors"
HALVES = sorted({p.stem.rsplit("_", 1)[0] for p in COLLECTORS_DIR.glob("*.py")
                 if p.stem.rsplit("_", 1)[-1] in base.PLATFORMS})
# Rewritten by the antivirus/monitoring work (issue 14, classes 7-9), which adopts this
# contract: strict, so the marker must go the day they conform.
ADOPTING: set[str] = set()


def _adopting(name: str) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason="adopts the platform contract with the "
                               "antivirus rewrite")] if name in ADOPTING else []
    return pytest.param(name, marks=marks, id=name)


def _check_entry(entry: Any, where: str) -> None:
    assert isinstance(entry, dict) and set(entry) >= {"collector", "kind", "message"}, where
    assert entry["kind"] in base.ERROR_KINDS and str(entry["message"]).strip(), where


def test_every_collector_module_has_both_halves_or_none() -> None:
    assert {"hardware", "identity", "network", "os_info", "printers"} <= set(HALVES)
    for name in HALVES:
        for platform in base.PLATFORMS:
            assert (COLLECTORS_DIR / f"{name}_{platform}.py").is_file(), \
                f"{name} has no {platform} half"


@pytest.mark.parametrize("name", [_adopting(n) for n in HALVES])
def test_every_half_has_the_same_entry_point(name: str) -> None:
    shapes = {}
    for platform in base.PLATFORMS:
        module = importlib.import_module(f"kiemke.agent.collectors.{name}_{platform}")
        read = getattr(module, "read", None)
        assert callable(read), f"{module.__name__} has no read()"
        params = list(inspect.signature(read).parameters.values())
        assert params and params[0].name == "ctx", f"{module.__name__}.read(ctx, ...)"
        # Extra parameters are for tests only and must have defaults.
        assert all(p.default is not inspect.Parameter.empty for p in params[1:])
        hints = typing.get_type_hints(read)
        assert hints.get("ctx") is base.Context and hints.get("return") is \
            base.PlatformReading, f"{module.__name__}.read must be (Context) -> PlatformReading"
        shapes[platform] = [p.name for p in params[:1]]
    assert len({tuple(v) for v in shapes.values()}) == 1


def _reading(name: str, platform: str, tmp_path: Path, mp: pytest.MonkeyPatch
             ) -> base.PlatformReading:
    if platform == "windows":
        WindowsCaptures().install(mp)
    ctx = Context(config=AgentConfig(state_dir=tmp_path), state_dir=tmp_path,
                  platform=platform, now=datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc))
    return base.read_platform(name, ctx, f"{name} facts")


@pytest.mark.parametrize("platform", base.PLATFORMS)
@pytest.mark.parametrize("name", [_adopting(n) for n in HALVES])
def test_every_half_returns_a_platform_reading(name: str, platform: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        reading = _reading(name, platform, tmp_path, monkeypatch)
    except CollectorError as exc:  # allowed: nothing at all could be read
        assert exc.kind in base.ERROR_KINDS and exc.message.strip()
        return
    assert isinstance(reading, base.PlatformReading)
    assert isinstance(reading.facts, dict) and "errors" not in reading.facts, \
        "errors go in PlatformReading.errors, not in the facts"
    for entry in reading.errors:
        _check_entry(entry, f"{name}_{platform}")
    assert all(isinstance(k, str) and (v is None or isinstance(v, date))
               for k, v in reading.dates.items())


@pytest.mark.parametrize("name", [_adopting(n) for n in HALVES])
def test_both_halves_read_the_same_fact_names(name: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Same keys on every platform: a fact one platform cannot know is None, not absent."""
    keys = {}
    for platform in base.PLATFORMS:
        with pytest.MonkeyPatch.context() as mp:
            try:
                reading = _reading(name, platform, tmp_path / platform, mp)
            except CollectorError as exc:
                # Nothing to compare on this machine (no CUPS daemon here, say); the
                # error itself must still be one the report can carry.
                assert exc.kind in base.ERROR_KINDS and exc.message.strip()
                continue
        keys[platform] = (set(reading.facts), set(reading.dates))
    assert keys, "neither half could be read"
    assert len({(frozenset(f), frozenset(d)) for f, d in keys.values()}) == 1, keys


@pytest.mark.parametrize("platform", ["darwin", "freebsd", "other"])
@pytest.mark.parametrize("name", HALVES)
def test_unsupported_platforms_get_the_unsupported_error(name: str, platform: str) -> None:
    with pytest.raises(CollectorError) as err:
        base.platform_module(name, platform, f"{name} facts")
    assert err.value.kind == "unsupported" and platform in err.value.message


def test_identity_on_darwin_says_unsupported_instead_of_reading_linux(tmp_path: Path) -> None:
    ctx = Context(config=AgentConfig(state_dir=tmp_path), state_dir=tmp_path,
                  platform="darwin", now=datetime(2026, 11, 22, tzinfo=timezone.utc))
    section = REGISTRY["identity"]().collect(ctx)
    kinds = [e["kind"] for e in section.get("errors", [])]
    assert kinds == ["unsupported"], section
    assert section["machine_id_source"] == "generated"


def _platform_checks(path: Path) -> list[str]:
    """Lines where a collector module compares ctx.platform itself."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) \
                and node.left.attr == "platform":
            found.append(f"{path.name}:{node.lineno}")
    return found


def _config_getattrs(path: Path) -> list[str]:
    """getattr(<...>.config, ...) or getattr(config, ...): reads that hide typos."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "getattr" and node.args:
            target = node.args[0]
            name = target.attr if isinstance(target, ast.Attribute) else \
                target.id if isinstance(target, ast.Name) else ""
            if name in ("config", "cfg"):
                found.append(f"{path.name}:{node.lineno}")
    return found


@pytest.mark.parametrize("name", [_adopting(n) for n in MODULES])
def test_no_collector_dispatches_on_the_platform_or_reads_config_by_getattr(name: str
                                                                            ) -> None:
    paths = [COLLECTORS_DIR / f"{name}.py"] + [COLLECTORS_DIR / f"{name}_{p}.py"
                                               for p in base.PLATFORMS]
    for path in (p for p in paths if p.exists()):
        assert _platform_checks(path) == [], "use base.read_platform, the one dispatcher"
        assert _config_getattrs(path) == [], "read ctx.config.<field>: mypy checks the name"


def test_context_config_is_typed() -> None:
    assert typing.get_type_hints(Context)["config"] is AgentConfig


PARSERS_DIR = Path(__file__).parent.parent / "kiemke" / "agent" / "parsers"


@pytest.mark.parametrize("path", sorted(PARSERS_DIR.glob("*.py")), ids=lambda p: p.stem)
def test_parsers_are_pure_and_import_no_collector(path: Path) -> None:
    """Parsers raise ParseError (kiemke/agent/parsers/errors.py), never the collectors'
    CollectorError: they import nothing from kiemke.agent.collectors or windows."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert not node.module.startswith(("kiemke.agent.collectors",
                                               "kiemke.agent.windows")), \
                f"{path.name}:{node.lineno} imports {node.module}"
