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
command -v certutil   >/dev/null || need+=(libnss3-tools)  # NSS databases (signing facts)
command -v p11-kit    >/dev/null || need+=(p11-kit)
# Packaging tests (tests/test_packaging_*.py): build the MSI with wixl and read it with
# msitools; check the systemd units; the .deb install test runs nginx and openssl, and
# the packages' maintainer scripts use adduser.
command -v wixl       >/dev/null || need+=(wixl)
command -v msiinfo    >/dev/null || need+=(msitools)
command -v msibuild   >/dev/null || need+=(msitools)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v nginx      >/dev/null || need+=(nginx)
command -v openssl    >/dev/null || need+=(openssl)
command -v adduser    >/dev/null || need+=(adduser)
[ -x /usr/bin/chromium ]     || need+=(chromium)         # the console tests' real browser
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)  # selenium drives it
# Slow-client tests (a real nginx with a self-signed certificate) and the fault suite (a
# private PostgreSQL started with initdb, real agents in their own mount namespace).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v unshare    >/dev/null || need+=(util-linux)
command -v runuser    >/dev/null || need+=(util-linux)
command -v strace     >/dev/null || need+=(strace)  # the probe guard test traces a real agent
# Period reports (issue 9): pdftotext/pdftoppm read the PDFs back; WeasyPrint lays them
# out with pango and embeds DejaVu.
command -v pdftotext  >/dev/null || need+=(poppler-utils)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf ] || need+=(fonts-dejavu-core)
ldconfig -p | grep -q libpango-1.0 || need+=(libpango-1.0-0 libpangoft2-1.0-0)
exec bash "$(dirname "$0")/apt-install-missing.sh" tests ${need[@]+"${need[@]}"}
