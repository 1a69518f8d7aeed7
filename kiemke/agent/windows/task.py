"""The Windows scheduled task that runs `kiemke-agent run` (used by the MSI's custom actions).

`python -m kiemke.agent.windows.task install|remove [--purge]`, run by the MSI as SYSTEM.

Why a task and not a service: python.exe does not speak the service control protocol,
and a wrapper (pywin32's pythonservice, NSSM, WinSW) would be one more binary to ship and
patch on every PC. The task starts at boot as SYSTEM, and a second trigger every 5 minutes
with "do not start a new instance" restarts the agent within 5 minutes if it dies (Task
Scheduler's own restart-on-failure only covers a failed launch). No time limit, runs on
battery, no network condition (the agent spools while offline).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

TASK_NAME = r"\kiemke\kiemke-agent"
SYSTEM_SID = "S-1-5-18"
RESTART_EVERY = "PT5M"


def task_xml(python: str, config: str, workdir: str) -> str:
    """Task Scheduler 1.2 XML (Windows 7 and later) for the agent."""
    args = f'-m kiemke.agent --config "{config}" run'
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Author>kiemke</Author>
    <Description>kiemke inventory and compliance agent (kiemke-agent MSI)</Description>
  </RegistrationInfo>
  <Triggers>
    <BootTrigger><Enabled>true</Enabled></BootTrigger>
    <TimeTrigger>
      <StartBoundary>2020-01-01T00:00:00</StartBoundary>
      <Enabled>true</Enabled>
      <Repetition><Interval>{RESTART_EVERY}</Interval><StopAtDurationEnd>false</StopAtDurationEnd></Repetition>
    </TimeTrigger>
  </Triggers>
  <Principals>
    <Principal id="System">
      <UserId>{SYSTEM_SID}</UserId>
      <RunLevel>HighestAvailable</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <AllowHardTerminate>true</AllowHardTerminate>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <IdleSettings><StopOnIdleEnd>false</StopOnIdleEnd><RestartOnIdle>false</RestartOnIdle></IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <RunOnlyIfIdle>false</RunOnlyIfIdle>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <Priority>7</Priority>
    <RestartOnFailure><Interval>PT1M</Interval><Count>999</Count></RestartOnFailure>
  </Settings>
  <Actions Context="System">
    <Exec>
      <Command>{escape(python)}</Command>
      <Arguments>{escape(args)}</Arguments>
      <WorkingDirectory>{escape(workdir)}</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
"""


def _schtasks(*args: str, check: bool = True) -> int:
    exe = shutil.which("schtasks") or "schtasks.exe"
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        print(f"schtasks {' '.join(args)} failed ({result.returncode}): "
              f"{result.stdout.strip()} {result.stderr.strip()}", file=sys.stderr)
    return result.returncode


def data_dir() -> Path:
    return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "kiemke"


def install() -> int:
    python = sys.executable
    xml = task_xml(python, str(data_dir() / "agent.conf"), str(Path(python).parent))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kiemke-agent-task.xml"
        path.write_text(xml, encoding="utf-16")  # schtasks /XML wants UTF-16
        code = _schtasks("/Create", "/F", "/TN", TASK_NAME, "/XML", str(path))
    if code == 0:
        _schtasks("/Run", "/TN", TASK_NAME, check=False)
    return code


def remove(purge: bool) -> int:
    _schtasks("/End", "/TN", TASK_NAME, check=False)
    _schtasks("/Delete", "/F", "/TN", TASK_NAME, check=False)
    if purge:
        shutil.rmtree(data_dir(), ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiemke.agent.windows.task")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="register and start the scheduled task")
    rm = sub.add_parser("remove", help="stop and delete the scheduled task")
    rm.add_argument("--purge", action="store_true",
                    help="also delete %%ProgramData%%\\kiemke (configuration, credentials, spool)")
    args = parser.parse_args(argv)
    return install() if args.cmd == "install" else remove(args.purge)


if __name__ == "__main__":
    sys.exit(main())
