#!/usr/bin/env bash
# The whole test suite, on a fresh machine or an old one: installs and starts
# what the tests need (idempotently), then runs the checks CI runs.
#
#   ./scripts/test.sh
#
# Needs: a running Docker engine, root (or the packages already installed),
# and ../shared/fixtures beside the repository (real GitHub webhook payloads).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

step "Checking the Docker engine"
command -v docker >/dev/null 2>&1 || die "the docker CLI is missing: apt-get install docker.io, then start the engine"
docker info >/dev/null 2>&1 \
    || die "the Docker engine is unreachable. Start it ('systemctl start docker' or 'dockerd &') and run this again; Docker tests are never skipped"

[[ -d ../shared/fixtures/github-webhooks ]] \
    || die "../shared/fixtures/github-webhooks is missing: the tests read real GitHub payloads from the shared folder beside the repository"

step "Building the build images (jamstack/busybox:1, jamstack/hugo:1)"
./scripts/build-images.sh

step "Starting PostgreSQL (the store tests run on SQLite and on PostgreSQL)"
./scripts/start-postgres.sh

step "Starting chromedriver (the dashboard tests drive a real, headless Chromium)"
./scripts/start-chromedriver.sh

step "Formatting"
cargo fmt --all -- --check

step "Lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Building the binaries (the fault tests run them as processes)"
cargo build --workspace --bins --locked

step "Tests"
cargo test --workspace --locked
