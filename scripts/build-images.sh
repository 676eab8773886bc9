#!/usr/bin/env bash
# Build the local build-container images used by the runner:
#
#   jamstack/busybox:1  FROM scratch + static busybox, non-root user "builder" (1000:1000)
#   jamstack/hugo:1     jamstack/busybox:1 + Debian's hugo and git binaries and their shared libraries
#                       (git for `ignore` commands such as `git diff --quiet $CACHED_COMMIT_REF $COMMIT_REF -- .`)
#
# No container registry is needed: everything starts FROM scratch and is
# populated from packages installed on the host (busybox-static, hugo, git).
#
# Idempotent: each image carries a label org.jamstack.inputs=<sha256 of its
# build context (Dockerfile + files) and base image id>. When the label of the
# existing image matches, the build is skipped. Use --force to rebuild anyway.
set -euo pipefail

BUSYBOX_IMAGE="jamstack/busybox:1"
HUGO_IMAGE="jamstack/hugo:1"
LABEL_KEY="org.jamstack.inputs"
BUILDER_UID=1000
BUILDER_GID=1000

# The classic builder is always present in docker 20.10+; BuildKit needs the
# buildx plugin on newer engines. Allow overriding from the environment.
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

FORCE=0
for arg in "$@"; do
    case "$arg" in
        -f|--force) FORCE=1 ;;
        -h|--help)
            sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
            echo "usage: $0 [--force]"
            exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- docker check
command -v docker >/dev/null 2>&1 \
    || die "the 'docker' CLI is not installed (apt-get install docker.io)"
if ! docker info >/dev/null 2>&1; then
    die "cannot reach the Docker engine. Start it first, e.g. 'systemctl start docker' or 'dockerd >/var/log/dockerd.log 2>&1 &', then re-run $0"
fi

# ------------------------------------------------------------ host packages
pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}
missing=()
for pkg in busybox-static hugo git; do
    pkg_installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    [[ $(id -u) -eq 0 ]] || die "need root to install ${missing[*]} (or install them yourself)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

BUSYBOX_BIN=/bin/busybox
HUGO_BIN=$(command -v hugo) || die "hugo not found on PATH after install"
GIT_BIN=$(command -v git) || die "git not found on PATH after install"
[[ -x $BUSYBOX_BIN ]] || die "$BUSYBOX_BIN missing (package busybox-static)"
if ldd "$BUSYBOX_BIN" >/dev/null 2>&1; then
    die "$BUSYBOX_BIN is dynamically linked; install busybox-static instead of busybox"
fi

# ------------------------------------------------------------ helpers
WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/jamstack-images.XXXXXX")
trap 'rm -rf "$WORKDIR"' EXIT

# sha256 over every path, mode, symlink target and file content in a context
# directory, plus any extra strings given (e.g. the base image id).
context_hash() {
    local dir=$1; shift
    {
        printf '%s\n' "$@"
        (cd "$dir" && find . -print0 | LC_ALL=C sort -z | while IFS= read -r -d '' p; do
            if [[ -L $p ]]; then
                printf 'L %s -> %s\n' "$p" "$(readlink "$p")"
            elif [[ -d $p ]]; then
                printf 'D %s %s\n' "$p" "$(stat -c %a "$p")"
            else
                printf 'F %s %s %s\n' "$p" "$(stat -c %a "$p")" "$(sha256sum <"$p" | cut -d' ' -f1)"
            fi
        done)
    } | sha256sum | cut -d' ' -f1
}

image_label() {
    docker image inspect -f "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$1" 2>/dev/null || true
}

# build_image <tag> <context dir> <hash>
build_image() {
    local tag=$1 ctx=$2 hash=$3
    if [[ $FORCE -eq 0 && "$(image_label "$tag")" == "$hash" ]]; then
        log "$tag is up to date"
        return 0
    fi
    log "building $tag"
    local logf="$WORKDIR/build-${tag//[\/:]/_}.log"
    if ! docker build --label "$LABEL_KEY=$hash" -t "$tag" "$ctx" >"$logf" 2>&1; then
        cat "$logf" >&2
        die "docker build of $tag failed"
    fi
    # Drop the dangling predecessor (only if it was one of ours and is now untagged).
    docker image prune -f --filter "label=$LABEL_KEY" >/dev/null 2>&1 || true
}

# ------------------------------------------------------------ busybox image
bb_ctx="$WORKDIR/busybox"
mkdir -p "$bb_ctx/rootfs/bin" "$bb_ctx/rootfs/etc"
cp "$BUSYBOX_BIN" "$bb_ctx/rootfs/bin/busybox"
chmod 0755 "$bb_ctx/rootfs/bin/busybox"

cat >"$bb_ctx/rootfs/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
builder:x:${BUILDER_UID}:${BUILDER_GID}:builder:/home/builder:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$bb_ctx/rootfs/etc/group" <<EOF
root:x:0:
builder:x:${BUILDER_GID}:
nogroup:x:65534:
EOF
printf 'hosts: files dns\npasswd: files\ngroup: files\n' >"$bb_ctx/rootfs/etc/nsswitch.conf"
chmod 0644 "$bb_ctx/rootfs/etc/"*

cat >"$bb_ctx/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
# Install applet symlinks into /bin, create the usual directories, fix
# ownership/permissions. /usr/bin/env exists for '#!/usr/bin/env sh' scripts.
RUN ["/bin/busybox", "sh", "-c", "set -e; \\
    /bin/busybox --install -s /bin; \\
    mkdir -p /sbin /usr/bin /usr/sbin /usr/local/bin /root /tmp /var/tmp /home/builder /workspace; \\
    ln -sf /bin/busybox /usr/bin/env; \\
    chmod 1777 /tmp /var/tmp; chmod 0700 /root; \\
    chown ${BUILDER_UID}:${BUILDER_GID} /home/builder /workspace"]
ENV PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/builder
USER ${BUILDER_UID}:${BUILDER_GID}
WORKDIR /workspace
CMD ["sh"]
EOF

build_image "$BUSYBOX_IMAGE" "$bb_ctx" "$(context_hash "$bb_ctx")"

# ------------------------------------------------------------ hugo image
hugo_ctx="$WORKDIR/hugo"
mkdir -p "$hugo_ctx/rootfs/usr/bin"
cp "$HUGO_BIN" "$hugo_ctx/rootfs/usr/bin/hugo"
chmod 0755 "$hugo_ctx/rootfs/usr/bin/hugo"
# git's own commands (diff, log, rev-parse) are built into its one binary.
cp "$GIT_BIN" "$hugo_ctx/rootfs/usr/bin/git"
chmod 0755 "$hugo_ctx/rootfs/usr/bin/git"

# Every shared library hugo and git need (including the dynamic loader),
# copied to the path ldd reports, dereferenced so the image gets real files.
libs=()
while read -r lib; do
    [[ -n $lib ]] && libs+=("$lib")
done < <({ ldd "$HUGO_BIN"; ldd "$GIT_BIN"; } | awk '
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $1 ~ /^\//               { print $1 }' | sort -u)
for lib in "${libs[@]}"; do
    mkdir -p "$hugo_ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$hugo_ctx/rootfs$lib"
done

base_id=$(docker image inspect -f '{{.Id}}' "$BUSYBOX_IMAGE")
cat >"$hugo_ctx/Dockerfile" <<EOF
FROM ${BUSYBOX_IMAGE}
COPY rootfs/ /
ENV HUGO_CACHEDIR=/tmp/hugo_cache
USER ${BUILDER_UID}:${BUILDER_GID}
WORKDIR /workspace
CMD ["hugo", "version"]
EOF

build_image "$HUGO_IMAGE" "$hugo_ctx" "$(context_hash "$hugo_ctx" "base=$base_id")"

# ------------------------------------------------------------ verification
log "verifying images"
out=$(docker run --rm --user "${BUILDER_UID}:${BUILDER_GID}" "$BUSYBOX_IMAGE" sh -c 'echo ok && id') \
    || die "$BUSYBOX_IMAGE does not run"
printf '    %s: %s\n' "$BUSYBOX_IMAGE" "$(echo "$out" | tr '\n' ' ')"
[[ $out == ok* ]] || die "$BUSYBOX_IMAGE: unexpected output: $out"

out=$(docker run --rm "$HUGO_IMAGE" hugo version) || die "$HUGO_IMAGE: 'hugo version' failed"
printf '    %s: %s\n' "$HUGO_IMAGE" "$out"
out=$(docker run --rm "$HUGO_IMAGE" git --version) || die "$HUGO_IMAGE: 'git --version' failed"
printf '    %s: %s\n' "$HUGO_IMAGE" "$out"

log "done"
