#!/usr/bin/env bash
# The edge over TLS beside Debian's nginx and Caddy, in one run: h2load
# against each, a 1 KB page and a 100 KB asset, over HTTP/1.1 and h2,
# requests/s and p99 (from h2load's per-request log); then new TLS
# connections per second (one request per connection). All three serve the
# same files with the same certificate (made here with openssl) on loopback.
# Goal: at least nginx's and Caddy's requests/s on every row, p99 within 1.5x.
#
# Installs nghttp2-client (h2load), nginx and caddy from Debian when missing,
# builds the controller and the CLI in release, uploads the certificate and
# deploys the files through the CLI, as a user would.
#
# Usage: scripts/bench/tls.sh
# Knobs (environment): BENCH_REQUESTS (50000), BENCH_CLIENTS (50),
# BENCH_STREAMS (10, h2 only), BENCH_HANDSHAKES (2000), BENCH_ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/../.."

REQUESTS=${BENCH_REQUESTS:-50000}
CLIENTS=${BENCH_CLIENTS:-50}
STREAMS=${BENCH_STREAMS:-10}
HANDSHAKES=${BENCH_HANDSHAKES:-2000}
ROUNDS=${BENCH_ROUNDS:-3}

missing=()
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Installing ${missing[*]} from Debian"
    # Installing nginx or caddy must not start them as system services:
    # the bench starts its own on free ports.
    policy_added=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    [ -z "$policy_added" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

cargo build --release --locked -p jamstack-controller --bin jamstack-controller -p jamstack-cli --bin jamstack
# Cargo's target directory, wherever CARGO_TARGET_DIR puts it.
release=${CARGO_TARGET_DIR:-target}/release
controller=$release/jamstack-controller
cli=$release/jamstack

work=$(mktemp -d)
# nginx started as root serves as nobody, who must reach the files.
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1 after 10 s; see $work" >&2
    exit 1
}

# The files: a 1 KB page and a 100 KB asset.
site=$work/site
mkdir -p "$site"
head -c 1024 /dev/urandom | base64 -w 76 | head -c 1024 >"$site/index.html"
head -c 102400 /dev/urandom >"$site/asset.bin"

# One certificate for all three, for the site's name and the wildcard.
domain=bench.test
host=site.$domain
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj "/CN=$host" \
    -addext "subjectAltName=DNS:*.$domain,DNS:$host" 2>/dev/null

# Ours: a controller with an HTTPS listener; the certificate and the files
# go in through the CLI.
ours_http=$(free_port)
ours=$(free_port)
"$controller" serve --data-dir "$work/controller" --listen "127.0.0.1:$ours_http" \
    --https-listen "127.0.0.1:$ours" --domain "$domain" >"$work/controller.log" 2>&1 &
pids+=($!)
ours_pid=$!
wait_for_port "$ours_http"
token=$("$controller" token admin --name bench --data-dir "$work/controller" | tail -n 1)
export JAMSTACK_URL="http://127.0.0.1:$ours_http" JAMSTACK_TOKEN="$token"
"$cli" sites create site >/dev/null
"$cli" certificates upload "*.$domain" --cert "$work/cert.pem" --key "$work/key.pem" >/dev/null
"$cli" deploy "$site" --site site --prod >/dev/null

# nginx: TLS, h2, sendfile, the same files from disk.
theirs_nginx=$(free_port)
prefix=$work/nginx
mkdir -p "$prefix/logs"
cat >"$prefix/nginx.conf" <<EOF
worker_processes auto;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log;
daemon off;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  sendfile on;
  tcp_nopush on;
  access_log off;
  keepalive_requests 100000;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  client_body_temp_path $prefix/body;
  proxy_temp_path $prefix/proxy;
  fastcgi_temp_path $prefix/fastcgi;
  uwsgi_temp_path $prefix/uwsgi;
  scgi_temp_path $prefix/scgi;
  server {
    listen 127.0.0.1:$theirs_nginx ssl http2;
    server_name $host;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    root $site;
  }
}
EOF
nginx -p "$prefix" -c "$prefix/nginx.conf" &
pids+=($!)
nginx_pid=$!
wait_for_port "$theirs_nginx"

# Caddy: file_server with the same certificate, HTTP/1.1 and h2.
theirs_caddy=$(free_port)
cat >"$work/Caddyfile" <<EOF
{
  admin off
  auto_https off
  servers {
    protocols h1 h2
  }
}
https://$host:$theirs_caddy {
  bind 127.0.0.1
  tls $work/cert.pem $work/key.pem
  root * $site
  file_server
}
EOF
HOME=$work XDG_DATA_HOME=$work XDG_CONFIG_HOME=$work caddy run --config "$work/Caddyfile" --adapter caddyfile \
    >"$work/caddy.log" 2>&1 &
pids+=($!)
caddy_pid=$!
wait_for_port "$theirs_caddy"

# Every server answers the same bytes before anything is measured.
for port in "$ours" "$theirs_nginx" "$theirs_caddy"; do
    for file in index.html asset.bin; do
        if ! curl -sk --resolve "$host:$port:127.0.0.1" "https://$host:$port/$file" | cmp -s - "$site/$file"; then
            echo "the server on port $port does not answer $file as it is on disk:" >&2
            curl -sk -o /dev/null -D - --resolve "$host:$port:127.0.0.1" "https://$host:$port/$file" >&2 || true
            exit 1
        fi
    done
done

# The CPU time (user and system, in clock ticks) the server on a port has
# used so far: the controller, nginx's master and workers, or Caddy. With
# the client on the same two cores, requests/s also measures the client;
# CPU per request is the server's own cost.
cpu_ticks() { # port
    local server_pids
    case $1 in
        "$ours") server_pids=$ours_pid ;;
        "$theirs_nginx") server_pids="$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')" ;;
        "$theirs_caddy") server_pids=$caddy_pid ;;
    esac
    # Fields 14 and 15 of /proc/<pid>/stat: utime and stime. The name in
    # field 2 has no spaces for these three.
    for pid in $server_pids; do awk '{print $14 + $15}' "/proc/$pid/stat"; done | awk '{s += $1} END {print s}'
}
ticks_per_second=$(getconf CLK_TCK)

# One h2load run: prints "requests/s p99_ms cpu_us_per_request".
measure() { # port path protocol(h1|h2) requests clients streams
    local log=$work/h2load.log
    local flags=()
    [ "$3" = h1 ] && flags+=(--h1)
    rm -f "$log"
    local out before after
    before=$(cpu_ticks "$1")
    out=$(h2load "${flags[@]}" -n "$4" -c "$5" -m "$6" -t 1 --connect-to="127.0.0.1:$1" \
        --log-file="$log" "https://$host:$1$2" 2>&1)
    after=$(cpu_ticks "$1")
    if ! grep -q " 0 failed, 0 errored, 0 timeout" <<<"$out" || grep -q " 0 succeeded" <<<"$out"; then
        echo "h2load against port $1 $2 ($3) had failures:" >&2
        echo "$out" >&2
        exit 1
    fi
    local rps
    rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
    # The log holds one line per request: start (µs), status, duration (µs).
    local p99
    p99=$(awk '{print $3}' "$log" | sort -n | awk '{v[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.2f", v[i]/1000}')
    local cpu_us
    cpu_us=$(awk -v t="$((after - before))" -v hz="$ticks_per_second" -v n="$4" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    echo "$rps $p99 $cpu_us"
}

echo
echo "load before: $(uptime)"
# Each row: requests/s, p99 (ms) and the server's CPU per request (µs).
printf '\n%-12s %-5s %-9s %25s %25s %25s\n' "" "" "" "ours" "nginx" "caddy"
printf '%-12s %-5s %-9s' "file" "proto" ""
for _ in 1 2 3; do printf ' %9s %7s %7s' "req/s" "p99 ms" "cpu us"; done
echo
servers=("$ours" "$theirs_nginx" "$theirs_caddy")
# Which server goes first turns with each round: on a machine whose speed
# drifts, going first every time would be a handicap or a help.
order_of_round() { # round -> the three indexes into servers, rotated
    local r=$(($1 % 3))
    echo "$r $(((r + 1) % 3)) $(((r + 2) % 3))"
}
for path in /index.html /asset.bin; do
    for proto in h1 h2; do
        streams=$STREAMS
        [ "$proto" = h1 ] && streams=1
        for round in $(seq 1 "$ROUNDS"); do
            row=()
            for i in $(order_of_round "$round"); do
                port=${servers[$i]}
                # A short warm-up, then the measured run.
                measure "$port" "$path" "$proto" 2000 "$CLIENTS" "$streams" >/dev/null
                read -r rps p99 cpu < <(measure "$port" "$path" "$proto" "$REQUESTS" "$CLIENTS" "$streams")
                row[i * 3]=$rps row[i * 3 + 1]=$p99 row[i * 3 + 2]=$cpu
            done
            printf '%-12s %-5s round %-3s' "$path" "$proto" "$round"
            for i in 0 1 2; do printf ' %9.0f %7s %7s' "${row[i * 3]}" "${row[i * 3 + 1]}" "${row[i * 3 + 2]}"; done
            echo
        done
    done
done

# New TLS connections per second: as many clients as requests, one request
# each, so every request is a fresh full handshake. The client's side of a
# handshake (h2load, on the same cores) costs as much as the server's, so
# the server's CPU per connection is printed beside the rate.
printf '\n%-22s %18s %18s %18s\n' "handshakes (h1, 1 KB)" "ours /s, cpu us" "nginx /s, cpu us" "caddy /s, cpu us"
for round in $(seq 1 "$ROUNDS"); do
    row=()
    for i in $(order_of_round "$round"); do
        read -r rps _ cpu < <(measure "${servers[$i]}" /index.html h1 "$HANDSHAKES" "$HANDSHAKES" 1)
        row[i * 2]=$rps row[i * 2 + 1]=$cpu
    done
    printf '%-22s' "round $round"
    for i in 0 1 2; do printf ' %10.0f %7s' "${row[i * 2]}" "${row[i * 2 + 1]}"; done
    echo
done
echo
echo "load after: $(uptime)"
