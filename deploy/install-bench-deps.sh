#!/usr/bin/env bash
# Install the Debian packages that kiemke's benchmarks (make bench) use, only when they
# are missing: wrk is the HTTP load generator of bench/bench_ingest.py (a C program, so
# the load generator does not eat the CPU the collector is measured on). Runs as root
# (CI, developer containers); otherwise says what to run.
set -euo pipefail
need=()
command -v wrk >/dev/null || need+=(wrk)
exec bash "$(dirname "$0")/apt-install-missing.sh" benchmarks ${need[@]+"${need[@]}"}
