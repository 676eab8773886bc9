#!/usr/bin/env bash
# Installs (if missing) and starts a local PostgreSQL for the tests, and
# makes the role they use. Idempotent: safe to run again and again.
#
#   ./scripts/start-postgres.sh
#   → postgres://jamstack:jamstack@127.0.0.1:5432/postgres
#
# Tests make a database of their own each (jamstack_test_*); this script
# drops those left over from earlier runs.
set -euo pipefail

log() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed and this is not root: apt-get install postgresql"
    log "installing PostgreSQL from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
    log "creating the PostgreSQL $version cluster"
    pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | awk '$1=="'"$version"'" && $2=="main" {print $4}' | grep -q online; then
    log "starting PostgreSQL $version"
    pg_ctlcluster "$version" main start
fi

as_postgres() { su postgres -c "psql -X -q -v ON_ERROR_STOP=1 $*"; }
for _ in $(seq 1 30); do
    as_postgres "-c 'SELECT 1'" >/dev/null 2>&1 && break
    sleep 0.5
done
as_postgres "-c 'SELECT 1'" >/dev/null || die "PostgreSQL did not come up; see /var/log/postgresql/"

as_postgres "-c \"DO \\\$\\\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jamstack') THEN
    CREATE ROLE jamstack LOGIN SUPERUSER PASSWORD 'jamstack';
  END IF;
END \\\$\\\$;\""

leftovers=$(su postgres -c "psql -X -At -c \"SELECT datname FROM pg_database WHERE datname LIKE 'jamstack_test_%'\"")
for db in $leftovers; do
    su postgres -c "psql -X -q -c 'DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)'" >/dev/null
done
log "PostgreSQL is up: postgres://jamstack:jamstack@127.0.0.1:5432/postgres"
