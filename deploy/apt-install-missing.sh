#!/usr/bin/env bash
# apt-install-missing.sh WHAT PACKAGE...: install Debian packages that `make WHAT` needs.
# Runs as root (CI, developer containers); otherwise says exactly what to run.
set -euo pipefail
what=$1
shift
[ $# -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "$@" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "kiemke $what need these Debian packages: ${need[*]}" >&2
  echo "Install them with: sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
  exit 1
fi
echo "installing $what dependencies: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
