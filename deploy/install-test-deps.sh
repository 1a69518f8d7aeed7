#!/usr/bin/env bash
# Install the Debian packages that kiemke's tests use as real components, only when
# they are missing. Runs as root (CI, developer containers); otherwise says what to run.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool   >/dev/null || need+=(prometheus)
command -v clamscan   >/dev/null || need+=(clamav)
command -v lpstat     >/dev/null || need+=(cups-client)
[ -x /usr/sbin/cupsd ]   || need+=(cups-daemon)  # a private cupsd for the printer tests
command -v ip         >/dev/null || need+=(iproute2)
command -v amtool     >/dev/null || need+=(prometheus-alertmanager)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v ping       >/dev/null || need+=(iputils-ping)
[ -x /usr/bin/chromium ]     || need+=(chromium)         # the console tests' real browser
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)  # selenium drives it
exec bash "$(dirname "$0")/apt-install-missing.sh" tests ${need[@]+"${need[@]}"}
