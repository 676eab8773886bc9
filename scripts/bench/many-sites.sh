#!/usr/bin/env bash
# Many sites beside nginx, in one run: BENCH_SITES sites (5,000) of
# BENCH_FILES generated pages (200) deployed through the API, against
# Debian's nginx serving the same folders (`root .../$host`):
#   - the first request to a site not served yet (p50/p99), while the
#     variant worker is busy, once it is idle, and after kill -9 + restart;
#   - wrk over all sites and pages, uniform and Zipf: requests/s and p99;
#   - controller RSS at 500 and at BENCH_SITES sites served;
#   - disk taken by our blobs and database and by nginx's folders, against
#     the content's size;
# with the machine's load before and after. Installs nginx and wrk from
# Debian when missing, builds the controller in release, then runs
# integration-tests/benches/many_sites.rs.
#
# Usage: scripts/bench/many-sites.sh
# Knobs (environment): BENCH_SITES (5000), BENCH_FILES (200),
# BENCH_FILE_SIZE (2600), BENCH_FIRST_SAMPLES (100), BENCH_WRK_SECONDS (10),
# BENCH_WRK_CONNECTIONS (50), BENCH_WRK_THREADS (2), BENCH_ROUNDS (2),
# BENCH_PARALLEL_DEPLOYS (8), BENCH_CONTROLLER_ARGS (more controller flags).
# 5,000 sites of 200 pages are 1,000,000 files: expect an hour and some
# 10 GB of disk; BENCH_SITES=500 takes minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

scripts/bench/install-peers.sh nginx wrk

# The CLI too, as tls.sh builds them: the same set of packages keeps one
# set of release artefacts (another set would rebuild shared dependencies
# with other features between benches).
cargo build --release --locked -p jamstack-controller --bin jamstack-controller -p jamstack-cli --bin jamstack
cargo bench --locked -p integration-tests --bench many_sites
