#!/usr/bin/env bash
# Chaos soak (docs/operations.md, "Chaos soak"): steady load through two
# tollgate replicas behind nginx, sessions in Redis behind sentinels (one
# master, one replica, three sentinels), access tokens that live 20 s so
# refreshes keep happening, while faults hit in turn, one per phase:
#   baseline   nothing
#   upstream   the upstream (nginx) killed, restarted 5 s later
#   redis      the Redis master killed (SIGKILL); the sentinels promote the
#              replica; the old master comes back 10 s later as a replica
#   provider   the provider (oidc-provider) killed, restarted 5 s later; it
#              keeps its grants in memory, so it comes back without them:
#              the sessions end at their next refresh (302 to log in), as
#              they must, and the script logs in again
#   rolling    both tollgate replicas restarted in turn with SIGTERM
# Prints a table per phase (answers by status, failure windows, recovery)
# and the replicas' RSS.
#
# Needs: cargo, node, python3, curl, nginx, redis-server, redis-cli.
# Usage: bench/chaos.sh [seconds=300]
# Environment: TOLLGATE_BIN (default: a release build), WORKERS (8),
#   CHAOS_KEEP (set: keep the logs and configuration in the temporary
#   directory).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOTAL="${1:-300}"
WORKERS="${WORKERS:-8}"
PHASE=$((TOTAL / 5))
[ "$PHASE" -ge 30 ] || { echo "chaos: at least 150 seconds (30 per phase)" >&2; exit 1; }

for tool in node nginx redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || { echo "chaos: $tool is required" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || true

tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${CHAOS_KEEP:-}" ]; then echo "chaos: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# shellcheck source=bench/peers.sh
. "$ROOT/bench/peers.sh" # peer_login, peer_cookie_header

# N distinct free ports, bound together (drawn one at a time, the kernel may
# hand out the same one twice).
free_ports() { python3 -c 'import socket,sys; s=[socket.socket() for _ in range(int(sys.argv[1]))]; [x.bind(("127.0.0.1",0)) for x in s]; print(*[x.getsockname()[1] for x in s])' "$1"; }
wait_line() { # file prefix
  for _ in $(seq 1 300); do grep -m1 "^$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "chaos: timed out waiting for $2 in $1" >&2; exit 1
}
wait_http() { # url what
  for _ in $(seq 1 600); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "chaos: $2 not ready at $1" >&2; exit 1
}
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo "?"; }
elapsed() { awk -v s="$LOAD_START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.3f", n - s }'; }
sleep_until() { # seconds since the load started
  sleep "$(awk -v t="$1" -v e="$(elapsed)" 'BEGIN { d = t - e; if (d < 0) d = 0; printf "%.3f", d }')"
}

# ---------------------------------------------------------------- build ---
[ -d tests/idp/node_modules ] || npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
if [ -n "${TOLLGATE_BIN:-}" ]; then BIN=$TOLLGATE_BIN; else
  cargo build --release --locked --quiet; BIN=target/release/tollgate
fi

read -r UP LB T1 T2 IDP M R S1 S2 S3 < <(free_ports 10)

# ------------------------------------------------------ upstream and LB ---
mkdir -p "$tmp/nginx"
common="access_log off; client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx;
  fastcgi_temp_path $tmp/nginx; uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;"
cat > "$tmp/nginx/up.conf" <<NGINX
# One process (no master and workers), so that killing it frees the port
# at once and leaves nothing behind.
master_process off; pid $tmp/nginx/up.pid; error_log $tmp/nginx/up.log warn;
events { worker_connections 4096; }
http { $common server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } } }
NGINX
# The load balancer in front of the replicas: a connection refused (a
# replica restarting) is retried on the other one. max_fails=0: a replica
# is never marked down, so while one restarts right after the other came
# back, nginx still tries both instead of answering "no live upstreams".
cat > "$tmp/nginx/lb.conf" <<NGINX
master_process off; pid $tmp/nginx/lb.pid; error_log $tmp/nginx/lb.log warn;
events { worker_connections 4096; }
http { $common
  upstream tollgate { server 127.0.0.1:$T1 max_fails=0; server 127.0.0.1:$T2 max_fails=0; keepalive 32; }
  server { listen 127.0.0.1:$LB;
    location / { proxy_pass http://tollgate; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_set_header Host \$http_host; proxy_next_upstream error timeout; } } }
NGINX
start_upstream() { nginx -c "$tmp/nginx/up.conf" -g 'daemon off;' & UP_PID=$!; pids+=("$UP_PID"); wait_http "http://127.0.0.1:$UP/" upstream; }
start_upstream
nginx -c "$tmp/nginx/lb.conf" -g 'daemon off;' & pids+=($!)

# ---------------------------------------------------------------- redis ---
start_redis() { # port [args]
  local port=$1; shift
  mkdir -p "$tmp/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp/redis-$port" \
    --loglevel warning "$@" >>"$tmp/redis-$port.log" 2>&1 & pids+=($!)
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "chaos: redis on $port did not start" >&2; exit 1
}
start_redis "$M"; M_PID=${pids[-1]}
start_redis "$R" --replicaof 127.0.0.1 "$M"
for s in "$S1" "$S2" "$S3"; do
  printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor chaos 127.0.0.1 %s 2\nsentinel down-after-milliseconds chaos 1000\nsentinel failover-timeout chaos 5000\n' \
    "$s" "$tmp" "$M" > "$tmp/sentinel-$s.conf"
  redis-server "$tmp/sentinel-$s.conf" --sentinel >"$tmp/sentinel-$s.log" 2>&1 & pids+=($!)
done
sentinel_master_port() { redis-cli -p "$S1" sentinel get-master-addr-by-name chaos 2>/dev/null | sed -n 2p; }
for _ in $(seq 1 300); do
  info=$(redis-cli -p "$S1" --raw sentinel master chaos 2>/dev/null | paste - - || true)
  echo "$info" | grep -q "^num-slaves	1" && echo "$info" | grep -q "^num-other-sentinels	2" && break
  sleep 0.2
done

# ------------------------------------------------------------- provider ---
SECRET='chaos-secret'
cat > "$tmp/idp.json" <<JSON
{"port":$IDP,"rotateRefreshToken":true,"ttl":{"AccessToken":20},"clients":[
 {"client_id":"chaos","client_secret":"$SECRET","token_endpoint_auth_method":"client_secret_basic",
  "redirect_uris":["http://127.0.0.1:$LB/oauth2/callback"],"post_logout_redirect_uris":["http://127.0.0.1:$LB/"],
  "grant_types":["authorization_code","refresh_token"],"response_types":["code"]}]}
JSON
start_idp() {
  node tests/idp/server.mjs "$tmp/idp.json" >"$tmp/idp.out" 2>>"$tmp/idp.err" & IDP_PID=$!; pids+=("$IDP_PID")
  ISSUER=$(wait_line "$tmp/idp.out" IDP_READY | awk '{print $2}')
}
start_idp

# ------------------------------------------------------------- tollgate ---
SESSION_SECRET=$("$BIN" generate-secret)
for port in "$T1" "$T2"; do
  cat > "$tmp/tollgate-$port.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$LB"
max_connections_per_client = 0
shutdown_grace = "10s"
[upstream]
url = "http://127.0.0.1:$UP"
[provider]
issuer = "$ISSUER"
client_id = "chaos"
client_secret = "$SECRET"
timeout = "3s"
[session]
secret = "$SESSION_SECRET"
secure = false
store = "redis"
refresh_before = "10s"
[session.redis]
mode = "sentinel"
nodes = ["redis://127.0.0.1:$S1", "redis://127.0.0.1:$S2", "redis://127.0.0.1:$S3"]
sentinel_master = "chaos"
timeout = "500ms"
[log]
level = "warn"
TOML
done
start_tollgate() { # port -> sets TG_PID
  "$BIN" --config "$tmp/tollgate-$1.toml" >>"$tmp/tollgate-$1.log" 2>&1 & TG_PID=$!; pids+=("$TG_PID")
  wait_http "http://127.0.0.1:$1/readyz" "tollgate on $1"
}
start_tollgate "$T1"; T1_PID=$TG_PID
start_tollgate "$T2"; T2_PID=$TG_PID
sigterm() { kill -TERM "$1"; while kill -0 "$1" 2>/dev/null; do sleep 0.05; done; }

# Four sessions (four browsers), as the load's cookies.
login_all() {
  : > "$tmp/cookies.new"
  for i in 1 2 3 4; do
    rm -f "$tmp/jar$i"
    peer_login "http://127.0.0.1:$LB" / "$tmp/jar$i" || { echo "chaos: login failed" >&2; exit 1; }
    peer_cookie_header "$tmp/jar$i" | sed 's/^Cookie: //' >> "$tmp/cookies.new"
  done
  mv "$tmp/cookies.new" "$tmp/cookies"
}
login_all
RSS_START="T1 $(rss_kib "$T1_PID") KiB, T2 $(rss_kib "$T2_PID") KiB"

# ------------------------------------------------------------------ run ---
echo "chaos: ${TOTAL}s of load, $WORKERS clients, 5 phases of ${PHASE}s" >&2
LOAD_START=$(date +%s.%N)
python3 bench/chaos_load.py load "http://127.0.0.1:$LB/" "$tmp/cookies" "$TOTAL" "$WORKERS" "$tmp/answers" &
LOAD_PID=$!; pids+=("$LOAD_PID")
: > "$tmp/phases"
phase() { echo "$1 $2 $3 $4 $5" >> "$tmp/phases"; }

# baseline
sleep_until "$PHASE"; phase baseline 0 "$PHASE" "$PHASE" "$PHASE"

# upstream
b=$PHASE; sleep_until $((b + PHASE / 4)); f=$(elapsed)
kill -9 "$UP_PID"; sleep 5; start_upstream; back=$(elapsed)
sleep_until $((b + PHASE)); phase upstream "$b" "$f" "$back" $((b + PHASE))

# redis
b=$((2 * PHASE)); sleep_until $((b + PHASE / 4)); f=$(elapsed)
kill -9 "$M_PID"
until [ "$(sentinel_master_port)" = "$R" ]; do sleep 0.05; done; back=$(elapsed)
sleep 10; start_redis "$M" # comes back; the sentinels make it a replica
sleep_until $((b + PHASE)); phase redis "$b" "$f" "$back" $((b + PHASE))

# provider
b=$((3 * PHASE)); sleep_until $((b + PHASE / 4)); f=$(elapsed)
kill -9 "$IDP_PID"; sleep 5; start_idp; back=$(elapsed)
# Its grants are gone: sessions end at their next refresh (a token lives
# 20 s and is refreshed in its last 10 s, so within 10 s of the restart
# every session has tried); log in again after that.
sleep 12; login_all
sleep_until $((b + PHASE)); phase provider "$b" "$f" "$back" $((b + PHASE))

# rolling restart
RSS_BEFORE_ROLL="T1 $(rss_kib "$T1_PID") KiB, T2 $(rss_kib "$T2_PID") KiB"
b=$((4 * PHASE)); sleep_until $((b + PHASE / 4)); f=$(elapsed)
sigterm "$T1_PID"; start_tollgate "$T1"; T1_PID=$TG_PID
sigterm "$T2_PID"; start_tollgate "$T2"; T2_PID=$TG_PID
back=$(elapsed)
wait "$LOAD_PID" || true
phase rolling "$b" "$f" "$back" $((b + PHASE))
RSS_END="T1 $(rss_kib "$T1_PID") KiB, T2 $(rss_kib "$T2_PID") KiB"

# --------------------------------------------------------------- report ---
echo
echo "Chaos soak, $(date -u +%Y-%m-%d), ${TOTAL}s, $WORKERS clients, $(nproc) cores, $("$BIN" --version 2>/dev/null || echo tollgate)"
echo
python3 bench/chaos_load.py report "$tmp/answers" "$tmp/phases"
echo
echo "Replica RSS: at the start $RSS_START; after four phases of load, before the rolling restart, $RSS_BEFORE_ROLL; the restarted replicas at the end $RSS_END."
echo "Panics in the replicas' logs: $(cat "$tmp"/tollgate-*.log | grep -c 'panicked' || true)"
