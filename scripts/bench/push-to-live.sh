#!/usr/bin/env bash
# Push to live against its floor, in one run: a trivial site (one page
# copied to public/ in jamstack/busybox:1) from signed push webhook to the
# first byte of the new page, beside the same build done by hand (git
# clone, docker run, copy out, symlink swap). Needs Docker and the
# jamstack/busybox:1 image (scripts/build-images.sh). Prints the machine's
# load before and after.
#
# Usage: scripts/bench/push-to-live.sh   Knob: BENCH_ROUNDS (10).
# Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."

docker image inspect jamstack/busybox:1 >/dev/null 2>&1 || ./scripts/build-images.sh
cargo bench --locked -p integration-tests --bench push_to_live
