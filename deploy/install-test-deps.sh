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
# Slow-client tests (a real nginx with a self-signed certificate) and the fault suite (a
# private PostgreSQL started with initdb, real agents in their own mount namespace).
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v openssl    >/dev/null || need+=(openssl)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v unshare    >/dev/null || need+=(util-linux)
command -v runuser    >/dev/null || need+=(util-linux)
exec bash "$(dirname "$0")/apt-install-missing.sh" tests ${need[@]+"${need[@]}"}
