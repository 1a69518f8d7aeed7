"""The detection corpus (tests/corpus.py): every parser on every real capture, every fact
compared with the hand-written expectation beside the capture. A fact the parser
produces that the expectation does not name fails too: "not in the expectation" is not
"right"."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus import FIXTURES, Capture, captures, run

CAPTURES = captures()
SOURCES = (FIXTURES / "SOURCES.md").read_text("utf-8")


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c.path.name)
def test_every_fact_is_right_or_honestly_unknown(capture: Capture) -> None:
    result = run(capture)
    assert result.error is None, f"{capture.path.name}: the parser raised {result.error}"
    wrong = result.compare()
    assert not wrong, "\n".join(f"{capture.path.name}: {fact}: expected {want!r}, got {got!r}"
                                for fact, want, got in wrong)


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c.path.name)
def test_every_capture_says_where_it_came_from(capture: Capture) -> None:
    rel = capture.path.relative_to(FIXTURES).as_posix()
    assert f"\n{rel}," in SOURCES, f"{rel} has no line in tests/fixtures/SOURCES.md"


def test_the_corpus_covers_every_area() -> None:
    areas = {c.area for c in CAPTURES}
    assert areas == {"hardware (dmidecode)", "hardware (WMI)", "OS support (WMI)",
                     "network (WMI)"}
    dumps = [c for c in CAPTURES if c.area == "hardware (dmidecode)"]
    # Old layouts, multi-socket servers, hypervisors and cut-short dumps are all there.
    assert any(c.expected.get("complete") is False for c in dumps)
    assert any((c.expected.get("cpu_sockets") or 0) >= 2 and c.expected["hypervisor"] is None
               for c in dumps)
    assert len({c.expected["hypervisor"] for c in dumps}) >= 3
    assert any("2.x layout" in (c.note or "") for c in dumps)


def test_a_wrong_expectation_is_caught(tmp_path: Path) -> None:
    # The comparison can fail: a capture whose expectation disagrees, or lacks a fact.
    capture = next(c for c in CAPTURES if c.path.name == "dell-r640.txt")
    wrong = Capture(capture.path, capture.area, {**capture.expected, "memory_bytes": 1})
    assert [f for f, *_ in run(wrong).compare()] == ["memory_bytes"]
    missing = dict(capture.expected)
    del missing["serial"]
    assert [f for f, *_ in run(Capture(capture.path, capture.area, missing)).compare()] \
        == ["serial"]
