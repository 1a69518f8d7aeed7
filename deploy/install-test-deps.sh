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
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "kiemke tests need these Debian packages: ${need[*]}" >&2
  echo "Install them with: sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
  exit 1
fi
echo "installing test dependencies: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
