#!/usr/bin/env bash
# Installs (if missing) Debian's `pebble` package: Let's Encrypt's ACME test
# server and `pebble-challtestsrv`, its DNS and challenge test server. The
# ACME tests start their own pebble and challtestsrv on free loopback ports
# (each test with its own CA, its own config and a throwaway HTTPS key), so
# nothing is left running here; this only makes sure both programs are on
# the PATH. Idempotent: safe to run again and again.
#
#   ./scripts/start-pebble.sh
#   → /usr/bin/pebble, /usr/bin/pebble-challtestsrv
#     (JAMSTACK_TEST_PEBBLE and JAMSTACK_TEST_CHALLTESTSRV override them in tests)
set -euo pipefail

log() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

if ! command -v pebble >/dev/null 2>&1 || ! command -v pebble-challtestsrv >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "pebble is not installed and this is not root: apt-get install pebble"
    log "installing pebble and pebble-challtestsrv from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pebble >/dev/null
fi
command -v pebble >/dev/null 2>&1 || die "pebble is still missing after installing Debian's package"
command -v pebble-challtestsrv >/dev/null 2>&1 || die "pebble-challtestsrv is still missing after installing Debian's package"
log "pebble $(dpkg-query -W -f='${Version}' pebble 2>/dev/null || echo '(version unknown)') is installed; the ACME tests start their own"
