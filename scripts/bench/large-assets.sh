#!/usr/bin/env bash
# Large assets against nginx, in one run: a 100 KB and a 1 MB file, our
# edge against Debian's nginx (sendfile on) with wrk, alternately:
# requests/s, p99, and memory per connection (each server's RSS growth
# under wrk divided by the connections).
#
# Usage: scripts/bench/large-assets.sh
# Knobs: BENCH_WRK_SECONDS (8), BENCH_WRK_CONNECTIONS (50),
# BENCH_WRK_THREADS (2), BENCH_ROUNDS (3). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH_ONLY=large exec ./scripts/bench/edge-and-deploys.sh
