"""/etc/os-release (freedesktop.org os-release(5)) -> dict.

Shell-style KEY=value; values may be single- or double-quoted with backslash escapes.
"""

from __future__ import annotations

import shlex

from kiemke.agent.collectors.base import CollectorError


def parse_os_release(text: str, source: str = "/etc/os-release") -> dict[str, str]:
    """Every assignment; raises CollectorError naming the file and line on a bad one."""
    if not isinstance(text, str):
        raise CollectorError("failed", f"{source} is not text")
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.replace("_", "").isalnum():
            raise CollectorError("failed", f"{source} line {lineno} is not KEY=value: "
                                 f"{line[:120]!r}")
        try:
            parts = shlex.split(value, comments=False, posix=True)
        except ValueError:
            raise CollectorError("failed", f"{source} line {lineno} has an unclosed quote: "
                                 f"{line[:120]!r}") from None
        values[key] = " ".join(parts)
    if not values.get("ID") and not values.get("NAME"):
        raise CollectorError("failed", f"{source} names no distribution (no ID= or NAME= line)")
    return values
