#!/usr/bin/env bash
# The whole test suite, on a fresh machine or an old one: installs and starts
# what the tests need (idempotently), then runs the checks CI runs.
#
#   ./scripts/test.sh
#
# Needs: a running Docker engine, root (or the packages already installed;
# Podman's service is started by scripts/start-podman.sh),
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

step "Checking the tools the tests call (git, curl, openssl, iptables, ip)"
# The generic-webhook test pushes with git through scripts/post-receive,
# which signs with openssl and sends with curl; the GitHub App test makes
# its key with openssl. Runners keep builds off private networks with
# iptables, and the network tests make namespaces with ip (iproute2).
missing=()
for tool in git curl openssl iptables; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# The custom domain tests answer DNS with Let's Encrypt's test server.
command -v pebble-challtestsrv >/dev/null 2>&1 || missing+=(pebble)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "could not install ${missing[*]}; install them and run this again"
fi

step "Starting the S3-compatible test server (moto)"
# The blob store's S3 tests run against moto's server on loopback; it is
# started once and left running for later runs (its buckets live in memory).
S3_PORT="${JAMSTACK_TEST_S3_PORT:-9555}"
export JAMSTACK_TEST_S3_ENDPOINT="http://127.0.0.1:${S3_PORT}"
s3_up() { python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$JAMSTACK_TEST_S3_ENDPOINT/" >/dev/null 2>&1; }
if ! s3_up; then
    python3 -c "import moto.server" >/dev/null 2>&1 \
        || python3 -m pip install --quiet 'moto[server]' \
        || die "installing moto's S3 server failed: pip install 'moto[server]'"
    mkdir -p target
    nohup python3 -m moto.server -H 127.0.0.1 -p "$S3_PORT" >target/moto.log 2>&1 &
    for _ in $(seq 1 60); do s3_up && break; sleep 0.5; done
    s3_up || die "moto's S3 server did not answer on port ${S3_PORT}; see target/moto.log"
fi

step "Installing what the tests need"
# git: tests make repositories with submodules and serve them over smart
# HTTP (git http-backend), as a private Git host would.
if ! command -v git >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "git is missing and installing it needs root: apt-get install git"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git >/dev/null
fi

step "Installing the OpenAPI validator (the API test checks the served document with it)"
python3 -c "import openapi_spec_validator" >/dev/null 2>&1 \
    || python3 -m pip install --quiet 'openapi-spec-validator>=0.7' \
    || die "installing openapi-spec-validator failed: pip install openapi-spec-validator"

step "Installing the SMTP test server (the e-mail notification test sends to aiosmtpd)"
python3 -c "import aiosmtpd" >/dev/null 2>&1 \
    || python3 -m pip install --quiet aiosmtpd \
    || die "installing aiosmtpd failed: pip install aiosmtpd"

step "Installing the OpenID Connect test provider (the OIDC sign-in tests sign in through oidc-provider-mock)"
python3 -c "import oidc_provider_mock" >/dev/null 2>&1 \
    || python3 -m pip install --quiet oidc-provider-mock \
    || die "installing oidc-provider-mock failed: pip install oidc-provider-mock"

step "Building the build images (jamstack/busybox:1, jamstack/hugo:1)"
./scripts/build-images.sh

step "Starting Podman's API service (the runner's core tests run on Docker and on Podman)"
# Installs podman from Debian, makes the user jamstack-podman and loads the
# build images into its storage; rootless where the host has cgroup v2.
./scripts/start-podman.sh

step "Starting PostgreSQL (the store tests run on SQLite and on PostgreSQL)"
./scripts/start-postgres.sh

step "Starting chromedriver (the dashboard tests drive a real, headless Chromium)"
./scripts/start-chromedriver.sh

step "Installing pebble (the ACME tests start their own CA and DNS server on loopback)"
./scripts/start-pebble.sh

step "Formatting"
cargo fmt --all -- --check

step "Lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Building the binaries"
# Some tests run the controller and the runner as processes of their own
# (crash, restart and memory tests); they find the binaries beside the test
# binaries.
cargo build --workspace --bins --locked

step "Packaging: building and starting the controller and runner images"
# From a base made here (no registry); about 20 seconds.
./scripts/test-packaging.sh target/debug

step "Removing build networks that earlier runs left behind"
# Tests kill runners mid-build on purpose. A runner sweeps what its previous
# life left when it starts again under its name, which a test's runner never
# does, so each run leaves a few job networks; Docker has about thirty
# address pools for them. Networks in use are left alone, and so are
# those made in the last ten minutes: another suite on the same engine may
# have made one a moment ago and not yet attached its build.
docker network prune --force --filter label=org.jamstack.role=network --filter until=10m >/dev/null 2>&1 || true

step "Tests"
cargo test --workspace --locked
