"""The collector interface and registry (node_exporter's collector.go, in Python).

Each fact area is one module under kiemke/agent/collectors/ that registers one
Collector for one report section. Platform code lives beside it in
`<name>_linux.py` / `<name>_windows.py`; parsing lives in kiemke/agent/parsers/.
A collector that raises or times out yields an error entry in its section; it never
stops the agent or the other collectors.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Protocol, cast

from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers.errors import ParseError

ERROR_KINDS = ("timeout", "failed", "unsupported", "permission", "not_found")


def error_entry(collector: str, kind: str, message: str, product: str | None = None
                ) -> dict[str, str]:
    """One entry of a section's `errors` list, as the report schema defines it (kind one
    of ERROR_KINDS, message and product cut to the schema's lengths). `product`: the
    error concerns a detail of that product only."""
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}")
    out = {"collector": collector, "kind": kind, "message": message[:1024]}
    if product:
        out["product"] = product[:256]
    return out


class CollectorError(Exception):
    """A fact could not be read. `kind` is one of ERROR_KINDS."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message

    @classmethod
    def from_parse_error(cls, exc: ParseError, what: str) -> CollectorError:
        """A parser's ParseError as this section's "failed" error: `what` says what was
        being read ("dmidecode output"), so the entry tells the operator where to look."""
        return cls("failed", f"{what} could not be read: {exc.message}")

    def entry(self, collector: str, product: str | None = None) -> dict[str, str]:
        """The report's error entry. `product`: the error concerns a detail of that product
        only (the section's product list is still complete)."""
        return error_entry(collector, self.kind, self.message, product)


def current_platform() -> str:
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "darwin"
    return "other"


PLATFORMS = ("linux", "windows")  # platforms with `<collector>_<platform>.py` halves


@dataclass
class PlatformReading:
    """What one platform half read, in the same shape for every collector and platform.

    `facts`: the values read (keys as the collector's shared half documents them; most
    are section facts as in the schema). `errors`: error entries for the facts that
    could not be read while others were. `dates`: dated evidence the shared half uses
    but does not report as is (firmware and battery dates for the age estimate, the end
    of vendor support)."""

    facts: dict[str, Any]
    errors: list[dict[str, str]] = field(default_factory=list)
    dates: dict[str, date | None] = field(default_factory=dict)


class PlatformHalf(Protocol):
    """The contract of every `kiemke.agent.collectors.<collector>_<platform>` module
    (psutil's _pslinux/_pswindows: same names, same types, one per OS)."""

    def read(self, ctx: Context) -> PlatformReading: ...


def platform_module(collector: str, platform: str, what: str) -> ModuleType:
    """The one dispatcher: the module `kiemke.agent.collectors.<collector>_<platform>`.
    On a platform without halves (macOS, BSD) it raises CollectorError("unsupported"),
    naming `what` and the platform, so the section says so instead of guessing."""
    if platform not in PLATFORMS:
        raise CollectorError("unsupported", f"{what} are not read on {platform}: kiemke "
                             f"reads them on {' and '.join(PLATFORMS)} only")
    return importlib.import_module(f"kiemke.agent.collectors.{collector}_{platform}")


def platform_half(collector: str, platform: str, what: str) -> PlatformHalf:
    """The platform half of `collector` for `platform`, checked against PlatformHalf."""
    module = platform_module(collector, platform, what)
    if not callable(getattr(module, "read", None)):
        raise TypeError(f"{module.__name__} has no read(ctx) -> PlatformReading")
    return cast(PlatformHalf, module)


def read_platform(collector: str, ctx: Context, what: str) -> PlatformReading:
    """Run this platform's half of `collector` and check what it returned."""
    reading = platform_half(collector, ctx.platform, what).read(ctx)
    if not isinstance(reading, PlatformReading):
        raise TypeError(f"{collector}_{ctx.platform}.read returned "
                        f"{type(reading).__name__}, not PlatformReading")
    return reading


@dataclass
class Context:
    """What a collector may use: the agent config, its state dir, the clock."""

    config: AgentConfig
    state_dir: Path
    platform: str = field(default_factory=current_platform)
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    # Sections already collected in this run (identity may use hardware's serial, ...).
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    # False for `kiemke-agent collect`: no probe, no packet leaves the machine.
    network_checks: bool = True


class Collector:
    """One report section. Subclasses set `name`, `section` and implement collect()."""

    name: ClassVar[str] = ""
    section: ClassVar[str] = ""
    # Collectors that must run first (their sections are in ctx.results).
    after: ClassVar[tuple[str, ...]] = ()
    default_timeout: ClassVar[float] = 10.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        """Return the section's facts. May add ctx-independent partial errors under
        the key "errors" (a list of CollectorError.entry()). Raise CollectorError when
        the whole section cannot be read."""
        raise NotImplementedError


REGISTRY: dict[str, type[Collector]] = {}


def register(cls: type[Collector]) -> type[Collector]:
    """Class decorator: make a collector available by name."""
    if not cls.name or not cls.section:
        raise ValueError(f"{cls.__name__} needs a name and a section")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"collector {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


def iso_utc(dt: datetime) -> str:
    """UTC ISO 8601 with a Z, seconds precision: the wire format of every timestamp."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


Factory = Callable[[], Collector]
