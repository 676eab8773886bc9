#!/usr/bin/env bash
# Podman for the runner's Podman executor (`jamstack-runner --executor podman`)
# and its tests: installs podman from Debian, makes the unprivileged user
# `jamstack-podman` (with subordinate uid and gid ranges), loads the build
# images made by scripts/build-images.sh into its storage, and starts
# `podman system service` on a unix socket the runner can reach. Idempotent:
# a service already answering is left running.
#
#   ./scripts/start-podman.sh            # socket: /run/jamstack-podman/podman.sock
#   JAMSTACK_PODMAN_SOCKET=/path ./scripts/start-podman.sh
#
# Rootless where it can be: the service runs as jamstack-podman, so builds
# run without a root daemon. Rootless Podman can only enforce a build's
# memory, CPU and process limits on a cgroup v2 host; on a cgroup v1 host
# (this script checks) the service runs as root instead, since the runner
# refuses an engine that would ignore its limits, and the script says so.
# Set JAMSTACK_PODMAN_ROOTFUL=1 to choose the root service anyway.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

SOCKET="${JAMSTACK_PODMAN_SOCKET:-/run/jamstack-podman/podman.sock}"
USER_NAME=jamstack-podman
IMAGES=(jamstack/busybox:1 jamstack/hugo:1)

[[ $(id -u) -eq 0 ]] || die "run this as root: it installs podman and makes the user $USER_NAME"

# catatonit is the init process Podman puts in a container (builds run
# with one); uidmap, slirp4netns and fuse-overlayfs are for rootless use.
packages=(podman catatonit uidmap slirp4netns fuse-overlayfs)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "installing ${missing[*]} failed: apt-get install ${missing[*]}"
fi

rootful=0
if [[ "${JAMSTACK_PODMAN_ROOTFUL:-0}" == 1 ]]; then
    rootful=1
elif [[ $(stat -fc %T /sys/fs/cgroup) != cgroup2fs ]]; then
    rootful=1
    log "this host uses cgroup v1: rootless Podman would ignore builds' memory, CPU and process limits" \
        "(\"Resource limits are not supported and ignored on cgroups V1 rootless systems\"), so the" \
        "service runs as root here; on a cgroup v2 host it runs as $USER_NAME"
fi

if ! id "$USER_NAME" >/dev/null 2>&1; then
    log "making the user $USER_NAME"
    useradd --system --create-home --home-dir "/var/lib/$USER_NAME" --shell /usr/sbin/nologin "$USER_NAME"
fi
grep -q "^$USER_NAME:" /etc/subuid || usermod --add-subuids 200000-265535 "$USER_NAME"
grep -q "^$USER_NAME:" /etc/subgid || usermod --add-subgids 200000-265535 "$USER_NAME"
uid=$(id -u "$USER_NAME")
runtime_dir="/run/user/$uid"
install -d -o "$USER_NAME" -g "$USER_NAME" -m 0700 "$runtime_dir"
# Rootless networking (slirp4netns) opens /dev/net/tun as the user.
[[ -c /dev/net/tun ]] && chmod 0666 /dev/net/tun

# podman as the service's user.
as_service_user() {
    if ((rootful)); then
        podman "$@"
    else
        (cd / && runuser -u "$USER_NAME" -- env XDG_RUNTIME_DIR="$runtime_dir" HOME="/var/lib/$USER_NAME" podman "$@")
    fi
}

log "loading ${IMAGES[*]} into Podman's storage"
for image in "${IMAGES[@]}"; do
    docker image inspect "$image" >/dev/null 2>&1 \
        || die "$image is not on the Docker engine; run scripts/build-images.sh first"
    docker_id=$(docker image inspect -f '{{.Id}}' "$image")
    podman_id=$(as_service_user image inspect -f '{{.Id}}' "docker.io/$image" 2>/dev/null || true)
    if [[ "sha256:$podman_id" != "$docker_id" && "$podman_id" != "$docker_id" ]]; then
        docker save "$image" | as_service_user load -q >/dev/null
        # `docker save` names it jamstack/…, which Podman stores as
        # localhost/jamstack/…; the Docker-compatible API looks short names
        # up as docker.io/jamstack/…, so it gets that name too.
        as_service_user tag "localhost/$image" "docker.io/$image"
    fi
done

# Podman gives each container as many open files as it can (1048576 for
# root); where the service itself may not raise its limit that far (no
# CAP_SYS_RESOURCE, as in some VMs and containers), every container fails
# to start with "error setting rlimit type 7" (and 6, processes).
# Containers get the service's own limits instead, written in a
# configuration of its own.
conf_dir=/etc/jamstack-podman
install -d -m 0755 "$conf_dir"
nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] && nofile=1048576
nproc=$(ulimit -Hu)
# Podman lowers its own process limit to 32768 when it starts.
[[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' "$nofile" "$nofile" "$nproc" "$nproc" \
    >"$conf_dir/containers.conf"
export CONTAINERS_CONF="$conf_dir/containers.conf"

answers() { curl -fsS --max-time 2 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; }
if answers; then
    log "Podman's API service already answers on $SOCKET"
    exit 0
fi
install -d -m 0755 "$(dirname "$SOCKET")"
((rootful)) || chown "$USER_NAME:" "$(dirname "$SOCKET")"
rm -f "$SOCKET"
mkdir -p target
log "starting podman system service on $SOCKET ($( ((rootful)) && echo root || echo "rootless, as $USER_NAME"))"
nohup bash -c "$(declare -f as_service_user); rootful=$rootful USER_NAME=$USER_NAME runtime_dir=$runtime_dir; \
    export CONTAINERS_CONF=$CONTAINERS_CONF; as_service_user system service --time=0 unix://$SOCKET" >target/podman-service.log 2>&1 &
for _ in $(seq 1 60); do answers && break; sleep 0.5; done
answers || die "Podman's API service did not answer on $SOCKET; see target/podman-service.log"
log "Podman answers on $SOCKET; run the runner with --executor podman --podman-socket $SOCKET"
