<#
.SYNOPSIS
  Silent install of the kiemke agent on Windows 10/11 and Windows Server, for GPO or
  by hand: Python embeddable runtime + kiemke wheel, configuration, enrolment, and a
  scheduled task that runs `kiemke-agent run` as SYSTEM at startup.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File install-agent.ps1 `
    -Server https://kiemke.bacgiang.gov.vn -Token <token> -Source \\fileserver\kiemke

  -Source is a folder holding python-3.12-embed-amd64.zip (or an installed Python),
  the kiemke wheel and its dependency wheels (pip download kiemke -d <folder>).
  Re-running is safe: it upgrades the package and keeps the existing credentials.
#>
[CmdletBinding()]
param(
  [Parameter(Mandatory = $true)][string]$Server,
  [string]$Token = "",
  [Parameter(Mandatory = $true)][string]$Source,
  [string]$InstallDir = "$env:ProgramFiles\kiemke",
  [string]$Unit = ""
)
$ErrorActionPreference = "Stop"
$DataDir = Join-Path $env:ProgramData "kiemke"
$Python = Join-Path $InstallDir "python\python.exe"

# 1. Runtime: a private Python so the agent does not depend on what users install.
if (-not (Test-Path $Python)) {
  New-Item -ItemType Directory -Force -Path (Join-Path $InstallDir "python") | Out-Null
  Expand-Archive -Force -Path (Join-Path $Source "python-3.12-embed-amd64.zip") `
    -DestinationPath (Join-Path $InstallDir "python")
  # The embeddable build ignores site-packages until "import site" is enabled.
  Get-ChildItem (Join-Path $InstallDir "python") -Filter "python*._pth" | ForEach-Object {
    (Get-Content $_.FullName) -replace "^#\s*import site", "import site" | Set-Content $_.FullName
  }
  & $Python (Join-Path $Source "get-pip.py") --no-index --find-links $Source --quiet
}
# 2. Package, offline from the share (no Internet needed on the PC).
& $Python -m pip install --quiet --no-index --find-links $Source --upgrade kiemke
if ($LASTEXITCODE -ne 0) { throw "pip install kiemke failed ($LASTEXITCODE)" }

# 3. Configuration and state: only Administrators and SYSTEM (well-known SIDs, so this
#    works on Vietnamese Windows where the group names are translated).
New-Item -ItemType Directory -Force -Path $DataDir | Out-Null
icacls $DataDir /inheritance:r /grant:r "*S-1-5-32-544:(OI)(CI)F" "*S-1-5-18:(OI)(CI)F" | Out-Null
$Conf = Join-Path $DataDir "agent.conf"
if (-not (Test-Path $Conf)) {
  $text = "[agent]`r`nserver = $Server`r`n"
  if ($Unit) { $text += "unit = $Unit`r`n" }
  [IO.File]::WriteAllText($Conf, $text, (New-Object Text.UTF8Encoding($false)))
}

# 4. Enrolment (once; keeps existing credentials).
if ($Token -and -not (Test-Path (Join-Path $DataDir "credentials.json"))) {
  & $Python -m kiemke.agent.cli --config $Conf enroll --server $Server "--token=$Token"
  if ($LASTEXITCODE -ne 0) { throw "kiemke-agent enroll failed ($LASTEXITCODE), see above" }
}

# 5. Scheduled task: at startup, as SYSTEM, restarted on failure, no time limit.
$action = New-ScheduledTaskAction -Execute $Python `
  -Argument "-m kiemke.agent.cli --config `"$Conf`" run" -WorkingDirectory $InstallDir
$trigger = New-ScheduledTaskTrigger -AtStartup
$principal = New-ScheduledTaskPrincipal -UserId "S-1-5-18" -LogonType ServiceAccount -RunLevel Highest
$settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries `
  -ExecutionTimeLimit ([TimeSpan]::Zero) -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 5) `
  -StartWhenAvailable -MultipleInstances IgnoreNew
Register-ScheduledTask -TaskName "kiemke-agent" -TaskPath "\kiemke\" -Action $action `
  -Trigger $trigger -Principal $principal -Settings $settings -Force | Out-Null
Start-ScheduledTask -TaskName "kiemke-agent" -TaskPath "\kiemke\"
Write-Output "kiemke agent installed; status: $Python -m kiemke.agent.cli --config `"$Conf`" status"
