#!/usr/bin/env bash
# Installs the peers a benchmark compares with (nginx, wrk, rsync, ...) from
# Debian when they are missing, without starting nginx as a system service:
# each bench starts its own on a free port.
#
# Usage: scripts/bench/install-peers.sh TOOL...
set -euo pipefail

missing=()
for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ "${#missing[@]}" -gt 0 ] || exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing ${missing[*]} from Debian"
policy_added=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    policy_added=1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
[ -z "$policy_added" ] || $sudo rm -f /usr/sbin/policy-rc.d
