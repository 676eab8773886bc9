#!/usr/bin/env bash
# Build example sites the way the runner does, without bind mounts:
#   docker create (uid 1000, no network) -> copy the site in as a tar stream
#   owned by 1000:1000 -> start -> copy the publish dir out -> check files.
#
# usage: scripts/test-examples.sh [site-dir ...]   (default: examples/*/)
# The build settings (command, publish, image) come from each jamstack.toml.
# Set KEEP_OUTPUT=1 to keep the copied-out publish dirs (path is printed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

docker info >/dev/null 2>&1 \
    || die "cannot reach the Docker engine; start it ('systemctl start docker' or 'dockerd &')"

# Read key = "value" from the [build] table of a jamstack.toml (simple TOML only).
toml_get() {
    awk -v key="$2" '
        /^\[/ { in_build = ($0 ~ /^\[build\][[:space:]]*$/); next }
        in_build && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" {
            sub(/^[^=]*=[[:space:]]*"/, ""); sub(/"[[:space:]]*(#.*)?$/, ""); print; exit
        }' "$1"
}

OUTROOT=$(mktemp -d "${TMPDIR:-/tmp}/jamstack-examples.XXXXXX")
CONTAINER=""
cleanup() {
    if [[ -n $CONTAINER ]]; then docker rm -f "$CONTAINER" >/dev/null 2>&1 || true; fi
    if [[ ${KEEP_OUTPUT:-0} != 1 ]]; then rm -rf "$OUTROOT"; fi
}
trap cleanup EXIT

if (($# == 0)); then
    set -- "$ROOT"/examples/*/
fi

failed=0
for site in "$@"; do
    site=${site%/}
    name=$(basename "$site")
    cfg="$site/jamstack.toml"
    [[ -f $cfg ]] || die "$cfg not found"
    cmd=$(toml_get "$cfg" command)
    publish=$(toml_get "$cfg" publish)
    image=$(toml_get "$cfg" image)
    [[ -n $cmd && -n $publish && -n $image ]] || die "$cfg: need command, publish and image in [build]"

    log "$name: '$cmd' in $image (publish: $publish)"
    CONTAINER=$(docker create --user 1000:1000 --network none \
        -e COMMIT_REF=0123456789abcdef0123456789abcdef01234567 \
        -w /workspace/site "$image" sh -c "$cmd")

    # A tar stream keeps the uid/gid from its headers; plain 'docker cp DIR'
    # would make everything root-owned (unwritable for uid 1000), and
    # 'docker cp -a' trips over moby#34142 (looks the user up on the host).
    tar -C "$site" --exclude="./$publish" --exclude=./resources --exclude=./.hugo_build.lock \
        --owner=1000 --group=1000 --numeric-owner \
        --transform 's,^\.,site,' -cf - . \
        | docker cp - "$CONTAINER:/workspace"

    start=$(date +%s.%N)
    docker start -a "$CONTAINER" 2>&1 | sed 's/^/    | /' || true
    rc=$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

    out="$OUTROOT/$name"
    mkdir -p "$out"
    if [[ $rc -ne 0 ]]; then
        echo "    FAIL: build exited with $rc"; failed=1
    elif ! docker cp "$CONTAINER:/workspace/site/$publish" "$out/$publish" 2>/dev/null; then
        echo "    FAIL: publish dir '$publish' missing"; failed=1
    elif [[ ! -s $out/$publish/index.html ]]; then
        echo "    FAIL: $publish/index.html missing or empty"; failed=1
    else
        n=$(find "$out/$publish" -type f | wc -l)
        echo "    OK: $n files in $publish/ (build ${secs}s)"
        (cd "$out/$publish" && find . -type f | sort | sed 's/^\.\//      /')
    fi
    docker rm -f "$CONTAINER" >/dev/null
    CONTAINER=""
done

[[ ${KEEP_OUTPUT:-0} == 1 ]] && log "output kept in $OUTROOT"
((failed == 0)) || die "some example builds failed"
log "all examples built"
