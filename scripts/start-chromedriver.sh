#!/usr/bin/env bash
# Installs (if missing) Debian's Chromium and chromedriver and starts
# chromedriver for the dashboard's browser tests. Idempotent: safe to run
# again and again; a chromedriver already answering is left as it is.
#
#   ./scripts/start-chromedriver.sh
#   → http://127.0.0.1:9515 (JAMSTACK_TEST_WEBDRIVER_URL overrides it in tests)
set -euo pipefail

log() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

PORT=${CHROMEDRIVER_PORT:-9515}
LOG=${TMPDIR:-/tmp}/jamstack-chromedriver.log

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "Chromium is not installed and this is not root: apt-get install chromium chromium-driver"
    log "installing Chromium and chromedriver from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi

ready() { curl -fsS "http://127.0.0.1:$PORT/status" 2>/dev/null | grep -q '"ready": *true'; }

if ready; then
    log "chromedriver answers on port $PORT"
    exit 0
fi
log "starting chromedriver on port $PORT (log: $LOG)"
nohup chromedriver --port="$PORT" --allowed-ips=127.0.0.1 >"$LOG" 2>&1 &
for _ in $(seq 1 50); do
    ready && { log "chromedriver is ready"; exit 0; }
    sleep 0.2
done
die "chromedriver did not come up on port $PORT; see $LOG"
