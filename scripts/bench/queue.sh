#!/usr/bin/env bash
# The queue against its ceiling, in one run: 50 simulated runners leasing
# 5,000 jobs over HTTP and 50 senders delivering 10,000 signed pushes, on
# SQLite and on PostgreSQL; then, on the same PostgreSQL database, the
# claim's and the delivery's own statements (from controller/src/db/, in
# integration-tests/benches/pgbench/) run raw by pgbench with 50 clients.
# Prints the machine's load before and after: the machine is shared, so
# read the ratio, not the rates.
#
# Usage: scripts/bench/queue.sh
# Starts PostgreSQL with scripts/start-postgres.sh when none answers on
# 127.0.0.1:5432 (pgbench comes with it).
# Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."

pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || ./scripts/start-postgres.sh
command -v pgbench >/dev/null 2>&1 || {
    echo "pgbench is missing: apt-get install postgresql-client" >&2
    exit 1
}
export JAMSTACK_TEST_POSTGRES_URL="${JAMSTACK_TEST_POSTGRES_URL:-postgres://jamstack:jamstack@127.0.0.1:5432/postgres}"
cargo bench --locked -p integration-tests --bench queue_throughput
