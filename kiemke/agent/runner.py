"""Run external tools with a timeout; every failure becomes a CollectorError."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from kiemke.agent.collectors.base import CollectorError


def which(name: str, extra_dirs: Sequence[str] = ()) -> str | None:
    """Find a tool on PATH or in vendor directories (/opt/...), like `which`."""
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        candidate = os.path.join(d, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def run(
    argv: Sequence[str],
    timeout: float = 10.0,
    ok_codes: Sequence[int] = (0,),
    encoding: str = "utf-8",
    env: dict[str, str] | None = None,
) -> str:
    """Run argv without a shell and return its stdout as text.

    Raises CollectorError(kind="not_found"|"timeout"|"permission"|"failed") with a message
    that names the command, so the report says exactly what could not be read.
    """
    cmd = " ".join(argv)
    run_env = None
    if env:
        run_env = {**os.environ, **env}
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            timeout=timeout,
            check=False,
            env=run_env,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise CollectorError("not_found", f"{argv[0]} is not installed") from exc
    except PermissionError as exc:
        raise CollectorError("permission", f"not allowed to run {argv[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise CollectorError("timeout", f"{cmd} did not finish within {timeout:g} s") from exc
    if proc.returncode not in ok_codes:
        err = proc.stderr.decode(encoding, "replace").strip().splitlines()
        detail = err[-1] if err else "no error output"
        raise CollectorError("failed", f"{cmd} exited with {proc.returncode}: {detail}"[:1000])
    return proc.stdout.decode(encoding, "replace")
