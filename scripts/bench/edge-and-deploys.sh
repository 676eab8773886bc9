#!/usr/bin/env bash
# The edge and deploys side by side with their peers, in one run:
#   - serving: wrk against our edge and Debian's nginx (sendfile on), a 1 KB
#     page and a 100 KB asset, alternately, same threads and connections;
#   - incremental deploy of 10,000 files with 1% changed: our digest flow over
#     HTTP to a real controller against `rsync -a --link-dest` + symlink swap,
#     with the storage each grows by;
#   - rollback: the API call to the old version's first byte, against a
#     symlink swap behind nginx;
#   - proxying: a path our edge proxies against nginx's proxy_pass, both to
#     one upstream (nginx serving a 1 KB file);
#   - protection: a password-protected hostname (the access cookie sent by
#     wrk) against the same page public.
# Installs nginx, wrk and rsync from Debian when missing, builds the
# controller in release, then runs integration-tests/benches/edge_and_deploys.rs,
# which prints one table per part with the machine's load before and after.
#
# Usage: scripts/bench/edge-and-deploys.sh
# Knobs (environment): BENCH_WRK_SECONDS (8), BENCH_WRK_CONNECTIONS (50),
# BENCH_WRK_THREADS (2), BENCH_ROUNDS (3), BENCH_DEPLOY_ROUNDS (5),
# BENCH_ROLLBACKS (200), BENCH_ONLY (a comma-separated choice of serving,
# deploys, rollback, proxy, protected, big, large; all but big and large
# when unset: scripts/bench/big-deploys.sh and large-assets.sh run those),
# BENCH_BIG_FILES (100000). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."

scripts/bench/install-peers.sh nginx wrk rsync

# The controller the bench starts as a process, and the bench itself
# (the runner's upload code, an HTTP client), both optimized.
# The CLI too, as tls.sh builds them: the same set of packages keeps one
# set of release artefacts (another set would rebuild shared dependencies
# with other features between benches).
cargo build --release --locked -p jamstack-controller --bin jamstack-controller -p jamstack-cli --bin jamstack
cargo bench --locked -p integration-tests --bench edge_and_deploys
