#!/usr/bin/env bash
# Builds the controller and runner images of packaging/ and starts them,
# without a registry: the base (normally debian:bookworm-slim) is made here
# FROM scratch with Debian's static busybox and the shared libraries the
# binaries link (found with ldd), and passed as the BASE build argument.
#
#   ./scripts/test-packaging.sh [target/debug]
#
# Checks: both images build; the controller image serves /healthz as the
# unprivileged user on its data volume; the runner image runs its binary.
set -euo pipefail
cd "$(dirname "$0")/.."

BINARIES="${1:-target/debug}"
BASE_IMAGE="jamstack/packaging-base:test"
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
for binary in jamstack-controller jamstack-runner; do
    [[ -x $BINARIES/$binary ]] || die "$BINARIES/$binary is missing; build it first: cargo build --bins"
done
[[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 \
    || die "/bin/busybox must be Debian's static busybox: apt-get install busybox-static"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/jamstack-packaging.XXXXXX")
CONTAINER="jamstack-packaging-test-$$"
cleanup() {
    docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The legacy builder needs no plugin; its deprecation notice is noise here.
build() { docker build -q "$@" 2> >(grep -v -e DEPRECATED -e BuildKit -e environment-variable -e '^$' >&2) >/dev/null; }

# The base: a shell with mkdir and chown (the Dockerfiles' RUN step), wget
# for the health check below, and the binaries' shared libraries.
mkdir -p "$WORK/base/bin" "$WORK/base/tmp"
cp /bin/busybox "$WORK/base/bin/busybox"
for applet in sh mkdir chown wget; do ln -s busybox "$WORK/base/bin/$applet"; done
for library in $(ldd "$BINARIES/jamstack-controller" "$BINARIES/jamstack-runner" \
        | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u); do
    mkdir -p "$WORK/base$(dirname "$library")"
    cp -L "$library" "$WORK/base$library"
done
# What the ca-certificates package gives Debian: the controller reads the
# system's roots to talk to GitHub.
mkdir -p "$WORK/base/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$WORK/base/etc/ssl/certs/" \
    || die "/etc/ssl/certs/ca-certificates.crt is missing: apt-get install ca-certificates"
printf 'FROM scratch\nCOPY . /\n' > "$WORK/base/Dockerfile"
build -t "$BASE_IMAGE" "$WORK/base"

for program in controller runner; do
    mkdir -p "$WORK/$program"
    cp "$BINARIES/jamstack-$program" "$WORK/$program/"
    build -t "jamstack/$program:test" --build-arg "BASE=$BASE_IMAGE" \
        -f "packaging/$program.Dockerfile" "$WORK/$program"
    echo "built jamstack/$program:test"
done

docker run --rm jamstack/runner:test --version | grep -q '^jamstack-runner ' \
    || die "the runner image does not run jamstack-runner"

docker run -d --name "$CONTAINER" jamstack/controller:test >/dev/null
for _ in $(seq 1 50); do
    if docker exec "$CONTAINER" wget -qO- http://127.0.0.1:8080/healthz 2>/dev/null | grep -q ok; then
        docker stop -t 20 "$CONTAINER" >/dev/null
        status=$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")
        [[ $status == 0 ]] || die "the controller did not stop cleanly on SIGTERM (exit $status)"
        echo "the controller image serves /healthz and stops cleanly on SIGTERM"
        exit 0
    fi
    sleep 0.2
done
docker logs "$CONTAINER" >&2 || true
die "the controller image never answered /healthz"
