# Remove the kiemke agent: scheduled task, program files. Keeps %ProgramData%\kiemke
# (credentials, spool) unless -Purge is given.
param([switch]$Purge, [string]$InstallDir = "$env:ProgramFiles\kiemke")
$ErrorActionPreference = "Continue"
Stop-ScheduledTask -TaskName "kiemke-agent" -TaskPath "\kiemke\" -ErrorAction SilentlyContinue
Unregister-ScheduledTask -TaskName "kiemke-agent" -TaskPath "\kiemke\" -Confirm:$false -ErrorAction SilentlyContinue
Remove-Item -Recurse -Force $InstallDir -ErrorAction SilentlyContinue
if ($Purge) { Remove-Item -Recurse -Force (Join-Path $env:ProgramData "kiemke") -ErrorAction SilentlyContinue }
