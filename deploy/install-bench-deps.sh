#!/usr/bin/env bash
# Install the Debian packages that kiemke's benchmarks (make bench) use, only when they
# are missing: wrk is the HTTP load generator of bench/bench_ingest.py (a C program, so
# the load generator does not eat the CPU the collector is measured on). Runs as root
# (CI, developer containers); otherwise says what to run.
set -euo pipefail
need=()
command -v wrk >/dev/null || need+=(wrk)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "kiemke benchmarks need these Debian packages: ${need[*]}" >&2
  echo "Install them with: sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
  exit 1
fi
echo "installing benchmark dependencies: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
