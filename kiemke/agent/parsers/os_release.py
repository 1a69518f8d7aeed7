"""/etc/os-release (freedesktop.org os-release(5)) -> dict.

Shell-style KEY=value; values may be single- or double-quoted with backslash escapes.
"""

from __future__ import annotations

import shlex

from kiemke.agent.parsers.errors import ParseError


def parse_os_release(text: str, source: str = "/etc/os-release") -> dict[str, str]:
    """Every assignment; raises ParseError naming the file and line on a bad one."""
    if not isinstance(text, str):
        raise ParseError("is not text", source=source)
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.replace("_", "").isalnum():
            raise ParseError(f"is not KEY=value: {line[:120]!r}", source=source, line=lineno)
        try:
            parts = shlex.split(value, comments=False, posix=True)
        except ValueError:
            raise ParseError(f"has an unclosed quote: {line[:120]!r}", source=source,
                             line=lineno) from None
        values[key] = " ".join(parts)
    if not values.get("ID") and not values.get("NAME"):
        raise ParseError("names no distribution (no ID= or NAME= line)", source=source)
    return values
