#!/usr/bin/env bash
# Big deploys against rsync, in one run: BENCH_BIG_FILES files (100,000;
# 80% pages of 1-16 KB, 18% images of 16-128 KB, 2% media of 128 KB-1 MB),
# the first deploy and a 1%-changed one through our digest flow over HTTP
# to a real controller, against `rsync -a --link-dest` plus a symlink swap:
# wall time, bytes and rows added, the controller's RSS during finalize,
# and publish to served. Needs about 3x the site's size in free disk under
# TMPDIR (the site, our blob store, rsync's release).
#
# Usage: scripts/bench/big-deploys.sh
#        BENCH_BIG_FILES=20000 scripts/bench/big-deploys.sh
# Honours CARGO_TARGET_DIR. See scripts/bench/edge-and-deploys.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH_ONLY=big exec ./scripts/bench/edge-and-deploys.sh
