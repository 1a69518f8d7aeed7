"""The agent's report counter (state/sequence.json): what the collector orders a
machine's reports by, instead of the machine's clock (docs/report-format.md)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from kiemke.agent.state import StateDir


def test_numbers_go_up_by_one_and_survive_a_new_process(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    assert [state.next_sequence() for _ in range(3)] == [1, 2, 3]
    # another StateDir object reads the file, as the next `send` or a restarted `run` does
    assert StateDir(tmp_path).next_sequence() == 4
    assert json.loads((tmp_path / "sequence.json").read_text("utf-8")) == {"last": 4}
    assert (tmp_path / "sequence.json").stat().st_mode & 0o777 == 0o600


def test_a_damaged_counter_gives_no_number_and_is_left_alone(tmp_path: Path,
                                                             caplog) -> None:
    """Starting again from 1 would make the collector ignore this machine's reports
    until the counter passed the old value: no number (the collector orders by time)."""
    for damaged in ('{"last": ', '{"last": -3}', '{"last": "7"}', "[]", '{"last": true}'):
        (tmp_path / "sequence.json").write_text(damaged, "utf-8")
        with caplog.at_level(logging.ERROR, logger="kiemke.agent.state"):
            assert StateDir(tmp_path).next_sequence() is None
        assert (tmp_path / "sequence.json").read_text("utf-8") == damaged
        assert str(tmp_path / "sequence.json") in caplog.text and "enrol" in caplog.text
        caplog.clear()
