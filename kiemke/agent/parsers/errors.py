"""The one error type every pure parser raises (kiemke/agent/parsers/*).

A parser takes captured text or bytes and returns plain data. When the input cannot be
trusted as a whole (not the tool's output, truncated, undecodable, a line that breaks the
format) it raises `ParseError` and nothing else: no UnicodeDecodeError, no KeyError, no
collector error. Collectors catch it and turn it into an error entry for their section
(`CollectorError.from_parse_error`), so "could not read" never becomes "absent".

Facts a parser can leave unknown (a missing line, a placeholder, a date cut short) are
returned as None, not raised: one bad field must not cost the other facts.
"""

from __future__ import annotations


class ParseError(ValueError):
    """Captured output that cannot be parsed. `source` names the tool output or file
    ("dmidecode output", "/etc/os-release"), `line` the 1-based line where the problem
    is, when there is one; `message` continues the sentence ("has no ...")."""

    def __init__(self, message: str, *, source: str | None = None,
                 line: int | None = None) -> None:
        where = source or ""
        if line is not None:
            where = f"{where} line {line}" if where else f"line {line}"
        # "dmidecode output has no SMBIOS structures", "/etc/os-release line 3 is not ...":
        # messages are phrased to follow the source.
        super().__init__(f"{where} {message}" if where else message)
        self.message = str(self)
        self.source = source
        self.line = line
