#!/usr/bin/env bash
# Side-by-side benchmark, one run on one machine (see docs/benchmarks.md):
#   (a) the upstream (Debian's nginx) directly
#   (b) nginx as a plain reverse proxy to it (no authentication)
#   (c) tollgate, authenticated request, cookie session store
#   (c') the same without the access log (log.level = "warn")
#   (d) tollgate, authenticated request, Redis session store
#   (j) tollgate, bearer JWT from an API client (RS256)
#   (k) the same on one of 16 hosts routed by [[upstreams]] (multi-host)
#   (bt), (ct) nginx's proxy and tollgate (c) over HTTPS (TLS 1.3, HTTP/1.1,
#       the same certificate and key); (bt2), (ct2) the same over HTTP/2
#       with h2load (Debian: nghttp2-client), when it is installed
#   (e) tollgate's /oauth2/auth answer (202)
#   (f) tollgate, unauthenticated request (302 to the provider)
#   (g) a 1 MiB response streamed through tollgate (and (g0) directly)
#   (h) Apache httpd + mod_auth_openidc, cookie session (optional)
#   (i) oauth2-proxy, cookie session (optional)
# each at 32 and 256 connections; tollgate's RSS idle, with 1,000 open
# connections, over a 60 s soak, and while streaming large bodies; the time
# tollgate spends in a login callback apart from the provider; the latency a
# token refresh adds.
#
# Needs: cargo, node, python3, curl, wrk, nginx, redis-server (Debian:
# apt-get install wrk nginx-light redis-server); for the peers apache2 +
# libapache2-mod-auth-openidc and a Go toolchain (skipped when absent).
#
# Usage: bench/run.sh [--smoke] [seconds=10]
#   --smoke   2 s per target, 32 connections, no peers, no soak, no report
#             written: proves the benchmark still runs (CI). Uses
#             $TOLLGATE_BIN when set (CI passes the debug build).
# Environment: TOLLGATE_BIN (binary to measure; default: a release build),
#   BASELINE_BIN (another tollgate binary, measured as row (c0) beside (c)
#   in the same run: before and after a change), CONNECTIONS ("32 256"),
#   SOAK_SECONDS (60), LOGINS (50), BENCH_REPORT (docs/benchmarks.md;
#   empty: print only).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SMOKE=0
if [ "${1:-}" = "--smoke" ]; then SMOKE=1; shift; fi
DURATION="${1:-10}"
CONNECTIONS="${CONNECTIONS:-32 256}"
SOAK_SECONDS="${SOAK_SECONDS:-60}"
LOGINS="${LOGINS:-50}"
BENCH_REPORT="${BENCH_REPORT-docs/benchmarks.md}"
if [ "$SMOKE" = 1 ]; then
  DURATION=2; CONNECTIONS=32; SOAK_SECONDS=0; LOGINS=3; BENCH_REPORT=""
fi

for tool in node wrk nginx redis-server curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (apt-get install wrk nginx-light redis-server)" >&2; exit 1; }
done
# 1,000 connections need as many descriptors, in wrk and in each server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

tmp=$(mktemp -d)
chmod 755 "$tmp" # nginx workers (nobody) read the bodies under it
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=bench/peers.sh
. "$ROOT/bench/peers.sh"

# N distinct free ports, all bound at once (one at a time, the kernel may
# hand out the same port twice, and two servers would then share it).
free_ports() { python3 -c 'import socket,sys; s=[socket.socket() for _ in range(int(sys.argv[1]))]; [x.bind(("127.0.0.1",0)) for x in s]; print(*[x.getsockname()[1] for x in s])' "$1"; }
wait_line() { # file prefix
  for _ in $(seq 1 300); do grep -m1 "^$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: timed out waiting for $2 in $1" >&2; cat "$1" >&2; exit 1
}
wait_http() { # url what
  for _ in $(seq 1 300); do curl -fsk -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "bench: $2 not ready at $1" >&2; return 1
}
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
# The processes listening on a port (nginx's and Apache's workers share the
# socket; tollgate is one process), and their CPU time in clock ticks
# (user + system, every thread).
pids_on() { ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; }
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
CLK_TCK=$(getconf CLK_TCK)
hwm_kib() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
# Resets VmHWM (the peak) to the current RSS, so each phase reports its own peak.
reset_hwm() { echo 5 > "/proc/$1/clear_refs" 2>/dev/null || true; }

# ---------------------------------------------------------------- build ---
[ -d tests/idp/node_modules ] || npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
if [ -n "${TOLLGATE_BIN:-}" ]; then
  BIN=$TOLLGATE_BIN
else
  cargo build --release --locked --quiet
  BIN=target/release/tollgate
fi
THREADS=$(nproc) # tokio's default worker count, and (b)'s nginx workers

read -r UP_PORT PROXY_PORT TG_PORT TGB_PORT TGR_PORT TGQ_PORT TGM_PORT TGS_PORT PROXYS_PORT \
  PROXYH2_PORT REDIS_PORT APACHE_PORT O2P_PORT < <(free_ports 13)
# HTTPS rows: the test certificate (CN 127.0.0.1) for tollgate and nginx.
CERT=$ROOT/tests/data/mtls/server.pem
KEY=$ROOT/tests/data/mtls/server.key

# ------------------------------------------------------------- upstream ---
# (a) returns a small body from memory; /big is a 1 MiB file, /huge 64 MiB
# (to show that streaming memory does not grow with the body).
mkdir -p "$tmp/nginx" "$tmp/www"
head -c 1048576 /dev/zero | tr '\0' 'x' > "$tmp/www/big"
head -c 67108864 /dev/zero > "$tmp/www/huge"
nginx_common="
  access_log off;
  client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx; fastcgi_temp_path $tmp/nginx;
  uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
  keepalive_requests 1000000;"
cat > "$tmp/nginx/upstream.conf" <<NGINX
worker_processes 1;
pid $tmp/nginx/upstream.pid;
error_log $tmp/nginx/upstream-error.log warn;
events { worker_connections 8192; }
http {
  $nginx_common
  server {
    listen 127.0.0.1:$UP_PORT;
    location / { default_type text/plain; return 200 "ok\n"; }
    location /big { root $tmp/www; default_type application/octet-stream; }
    location /huge { root $tmp/www; default_type application/octet-stream; }
  }
}
NGINX
nginx -c "$tmp/nginx/upstream.conf" -g 'daemon off;' & pids+=($!)

# (b) nginx as a plain reverse proxy: as many workers as tollgate has
# threads, keepalive connections to the upstream.
cat > "$tmp/nginx/proxy.conf" <<NGINX
worker_processes $THREADS;
pid $tmp/nginx/proxy.pid;
error_log $tmp/nginx/proxy-error.log warn;
events { worker_connections 8192; }
http {
  $nginx_common
  upstream app { server 127.0.0.1:$UP_PORT; keepalive 512; }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    listen 127.0.0.1:$PROXYS_PORT ssl;
    listen 127.0.0.1:$PROXYH2_PORT ssl http2;
    ssl_certificate $CERT;
    ssl_certificate_key $KEY;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
NGINX
nginx -c "$tmp/nginx/proxy.conf" -g 'daemon off;' & pids+=($!)

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$tmp" --loglevel warning >"$tmp/redis.log" 2>&1 & pids+=($!)

# ------------------------------------------------------------- provider ---
SECRET='bench:s3cr%t+&= x'
cat > "$tmp/idp.json" <<JSON
{"port":0,"rotateRefreshToken":true,"ttl":{"AccessToken":3600,"ClientCredentials":3600},"clients":[
 {"client_id":"machine","client_secret":"machine-secret","token_endpoint_auth_method":"client_secret_basic","grant_types":["client_credentials"],"response_types":[],"redirect_uris":[]},
 {"client_id":"bench","client_secret":"$SECRET","token_endpoint_auth_method":"client_secret_basic",
  "redirect_uris":["http://127.0.0.1:$TG_PORT/oauth2/callback","http://127.0.0.1:$TGR_PORT/oauth2/callback"],
  "grant_types":["authorization_code","refresh_token"],"response_types":["code"]},
 $(peer_clients_json "$APACHE_PORT" "$O2P_PORT")]}
JSON
node tests/idp/server.mjs "$tmp/idp.json" >"$tmp/idp.out" 2>"$tmp/idp.err" & pids+=($!)
ISSUER=$(wait_line "$tmp/idp.out" IDP_READY | awk '{print $2}')

# ------------------------------------------------------------- tollgate ---
# tollgate as shipped: the default log level (info) writes one access-log
# line per request; here to a file, as a container runtime would take it.
tollgate_config() { # port [extra TOML]
  cat <<TOML
[server]
listen = "127.0.0.1:$1"
public_url = "http://127.0.0.1:$1"
# wrk opens up to 1,000 connections from one address.
max_connections_per_client = 0
# As nginx's keepalive_requests here: h2load does not reconnect after the
# GOAWAY that ends a connection's 1,000th request.
max_requests_per_connection = 1000000
[upstream]
url = "http://127.0.0.1:$UP_PORT"
[provider]
issuer = "$ISSUER"
client_id = "bench"
client_secret = "$SECRET"
[session]
secret = "$SESSION_SECRET"
secure = false
${2:-}
[authorization]
bearer_audiences = ["urn:bench:api"]
[log]
format = "json"
TOML
}
SESSION_SECRET=$("$BIN" generate-secret)
tollgate_config "$TG_PORT" > "$tmp/tollgate.toml"
tollgate_config "$TGR_PORT" "[session.redis]
url = \"redis://127.0.0.1:$REDIS_PORT\"" > "$tmp/tollgate-redis.toml"

start_tollgate() { # config port log -> sets TG_PID
  "$BIN" --config "$1" >"$3" 2>&1 & TG_PID=$!; pids+=("$TG_PID")
  wait_http "http://127.0.0.1:$2/readyz" tollgate || { cat "$3" >&2; exit 1; }
  # Ready, and this process is the one answering (not another on its port).
  pids_on "$2" | grep -qx "$TG_PID" || { echo "bench: tollgate is not listening on $2" >&2; cat "$3" >&2; exit 1; }
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

TG="http://127.0.0.1:$TG_PORT"
start_tollgate "$tmp/tollgate.toml" "$TG_PORT" "$tmp/tollgate.log"
TG_MAIN=$TG_PID
RSS_IDLE=$(rss_kib "$TG_MAIN")
peer_login "$TG" / "$tmp/jar" || { echo "bench: tollgate login failed" >&2; exit 1; }
for _ in $(seq 2 "$LOGINS"); do
  curl -s -L -c "$tmp/jar" -b "$tmp/jar" -o /dev/null "$TG/oauth2/start?rd=/"
done
COOKIE=$(peer_cookie_header "$tmp/jar")
# (c') the cookie store without the access log (log.level = "warn"), to show
# what the log costs; the same secret, so the same cookie opens there.
{ tollgate_config "$TGQ_PORT"; echo 'level = "warn"'; } > "$tmp/tollgate-quiet.toml"
start_tollgate "$tmp/tollgate-quiet.toml" "$TGQ_PORT" "$tmp/tollgate-quiet.log"
TG_QUIET=$TG_PID
# (k) routing by host: 16 [[upstreams]] hosts (and a wildcard, a path
# prefix and a catch-all, so the table is not trivial), all to the same
# upstream; requests for the last exact host. Sign-in happens on
# auth.bench.localhost, the session shared through session.domain; the same
# secret, so the same cookie opens here.
{
  tollgate_config "$TGM_PORT" 'domain = "bench.localhost"' |
    sed -e "/^url = \"http:\/\/127.0.0.1:$UP_PORT\"$/d" \
        -e "s#^public_url = .*#public_url = \"http://auth.bench.localhost:$TGM_PORT\"#"
  for i in $(seq 1 16); do
    printf '[[upstreams]]\nhost = "app%s.bench.localhost"\nurl = "http://127.0.0.1:%s"\n' "$i" "$UP_PORT"
  done
  printf '[[upstreams]]\nhost = "app16.bench.localhost"\npath_prefix = "/api"\nurl = "http://127.0.0.1:%s"\n' "$UP_PORT"
  printf '[[upstreams]]\nhost = "*.bench.localhost"\nurl = "http://127.0.0.1:%s"\n' "$UP_PORT"
  printf '[[upstreams]]\nhost = "*"\nurl = "http://127.0.0.1:%s"\n' "$UP_PORT"
} > "$tmp/tollgate-hosts.toml"
start_tollgate "$tmp/tollgate-hosts.toml" "$TGM_PORT" "$tmp/tollgate-hosts.log"
TG_HOSTS=$TG_PID
# (ct) the same over HTTPS ([server.tls], rustls), the same cookie.
{
  tollgate_config "$TGS_PORT" | sed "s#^public_url = .*#public_url = \"https://127.0.0.1:$TGS_PORT\"#"
  printf '[server.tls]\ncert_file = "%s"\nkey_file = "%s"\n' "$CERT" "$KEY"
} > "$tmp/tollgate-tls.toml"
"$BIN" --config "$tmp/tollgate-tls.toml" >"$tmp/tollgate-tls.log" 2>&1 & pids+=($!)
wait_http "https://127.0.0.1:$TGS_PORT/readyz" "tollgate (https)" || { cat "$tmp/tollgate-tls.log" >&2; exit 1; }
start_tollgate "$tmp/tollgate-redis.toml" "$TGR_PORT" "$tmp/tollgate-redis.log"
TG_REDIS=$TG_PID
# (c0) another binary on the same configuration (the same secret opens the
# same cookie): the baseline for a before/after in one run.
if [ -n "${BASELINE_BIN:-}" ]; then
  sed "s#^listen = .*#listen = \"127.0.0.1:$TGB_PORT\"#" "$tmp/tollgate.toml" > "$tmp/tollgate-baseline.toml"
  "$BASELINE_BIN" --config "$tmp/tollgate-baseline.toml" >"$tmp/tollgate-baseline.log" 2>&1 & pids+=($!)
  wait_http "http://127.0.0.1:$TGB_PORT/readyz" "baseline tollgate" || { cat "$tmp/tollgate-baseline.log" >&2; exit 1; }
fi
peer_login "http://127.0.0.1:$TGR_PORT" / "$tmp/jar-redis" || { echo "bench: tollgate (redis) login failed" >&2; exit 1; }
COOKIE_REDIS=$(peer_cookie_header "$tmp/jar-redis")

check() { # expected-status url [header] [header]
  local got
  got=$(curl -sk -o /dev/null -w '%{http_code}' ${3:+-H "$3"} ${4:+-H "$4"} "$2")
  [ "$got" = "$1" ] || { echo "bench: $2 answered $got, expected $1" >&2; exit 1; }
}
check 200 "$TG/" "$COOKIE"
check 200 "http://127.0.0.1:$TGQ_PORT/" "$COOKIE"
check 200 "http://127.0.0.1:$TGR_PORT/" "$COOKIE_REDIS"
HOST16="Host: app16.bench.localhost:$TGM_PORT"
check 200 "http://127.0.0.1:$TGM_PORT/" "$COOKIE" "$HOST16"
check 200 "https://127.0.0.1:$TGS_PORT/" "$COOKIE"
check 200 "https://127.0.0.1:$PROXYS_PORT/"
check 302 "$TG/"
check 200 "http://127.0.0.1:$PROXY_PORT/"
# A bearer JWT (RS256) from the provider, for API clients' requests.
JWT=$(curl -s -u machine:machine-secret -d 'grant_type=client_credentials&scope=api&resource=urn:bench:api' \
  "$ISSUER/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
check 200 "$TG/" "Authorization: Bearer $JWT"

# ---------------------------------------------------------------- peers ---
PEER_NOTES=()
APACHE_COOKIE=""; O2P_COOKIE=""
start_peer() { # label start-function port variable: sets variable to the Cookie header, or notes the skip
  local err="$tmp/peer-$3.err" cookie
  # Not in a subshell: the start functions record their pids for cleanup.
  if "$2" "$ISSUER" "$UP_PORT" "$3" 2>"$err" && peer_login "http://127.0.0.1:$3" / "$tmp/jar-$3" 2>>"$err" \
     && cookie=$(peer_cookie_header "$tmp/jar-$3"); then
    check 200 "http://127.0.0.1:$3/" "$cookie"
    printf -v "$4" '%s' "$cookie"
  else
    PEER_NOTES+=("$1 skipped: $(tr '\n' ' ' < "$err")")
  fi
}
if [ "$SMOKE" = 0 ]; then
  start_peer "(h) Apache + mod_auth_openidc" peer_apache_start "$APACHE_PORT" APACHE_COOKIE
  start_peer "(i) oauth2-proxy" peer_oauth2_proxy_start "$O2P_PORT" O2P_COOKIE
fi

# Profiling aid: BENCH_PAUSE=600 keeps everything running for that long
# after the logins, with the URLs and cookies in $BENCH_PAUSE_ENV.
if [ -n "${BENCH_PAUSE:-}" ]; then
  {
    echo "TG=$TG"; echo "TG_PID=$TG_MAIN"; echo "COOKIE='$COOKIE'"
    echo "UP=http://127.0.0.1:$UP_PORT"; echo "PROXY=http://127.0.0.1:$PROXY_PORT"
    echo "TGR=http://127.0.0.1:$TGR_PORT"; echo "COOKIE_REDIS='$COOKIE_REDIS'"
    echo "TGM=http://127.0.0.1:$TGM_PORT"; echo "HOST16='$HOST16'"
  } > "${BENCH_PAUSE_ENV:-/tmp/tollgate-bench.env}"
  echo "bench: paused for ${BENCH_PAUSE}s; see ${BENCH_PAUSE_ENV:-/tmp/tollgate-bench.env}"
  sleep "$BENCH_PAUSE"
fi

# ----------------------------------------------------------------- load ---
RESULTS="$tmp/results.tsv"
: > "$RESULTS"
run_wrk() { # key label conns url [header] [header]
  local out rps p50 p99 non2xx errors port procs t0 total cpu
  # CPU per request of whatever serves the URL's port (the proxy under
  # test, not the upstream behind it).
  port=${4#*://*:}; port=${port%%/*}
  mapfile -t procs < <(pids_on "$port")
  t0=$(cpu_ticks "${procs[@]}")
  out=$(wrk -t2 -c"$3" -d"${DURATION}s" --timeout 10s --latency ${5:+-H "$5"} ${6:+-H "$6"} "$4")
  total=$(awk '/requests in/{print $1}' <<<"$out")
  cpu=$(awk -v t="$(( $(cpu_ticks "${procs[@]}") - t0 ))" -v n="${total:-0}" -v hz="$CLK_TCK" \
    'BEGIN { if (n > 0) printf "%.1f", t * 1000000 / hz / n; else print "-" }')
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/{print $5}' <<<"$out")
  errors=$(awk '/Socket errors/{gsub(",",""); print $4+$6+$8+$10}' <<<"$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$rps" "$p50" "$p99" "${non2xx:-0}" "${errors:-0}" "$cpu" >> "$RESULTS"
  printf '  %-4s %-52s c=%-4s %10s req/s  p50 %-8s p99 %-8s non-2xx %s  cpu %s us/req\n' "$1" "$2" "$3" "$rps" "$p50" "$p99" "${non2xx:-0}" "$cpu"
}
# The same over HTTP/2 (h2load: one stream at a time per connection, like
# wrk's requests; it reports no percentiles).
run_h2load() { # key label conns url [header]
  local out rps total ok errors port procs t0 cpu
  port=${4#*://*:}; port=${port%%/*}
  mapfile -t procs < <(pids_on "$port")
  t0=$(cpu_ticks "${procs[@]}")
  out=$(h2load -t2 -c"$3" -m1 -D "$DURATION" ${5:+-H "$5"} "$4")
  rps=$(awk '/^finished in/{gsub(",",""); print $4}' <<<"$out")
  total=$(awk '/^requests:/{print $2}' <<<"$out")
  ok=$(awk '/^status codes:/{print $3}' <<<"$out")
  errors=$(awk '/^requests:/{print $10 + $12}' <<<"$out")
  cpu=$(awk -v t="$(( $(cpu_ticks "${procs[@]}") - t0 ))" -v n="${total:-0}" -v hz="$CLK_TCK" \
    'BEGIN { if (n > 0) printf "%.1f", t * 1000000 / hz / n; else print "-" }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$rps" - - "$(( ${total:-0} - ${ok:-0} ))" "${errors:-0}" "$cpu" >> "$RESULTS"
  printf '  %-4s %-52s c=%-4s %10s req/s  non-2xx %s  cpu %s us/req\n' "$1" "$2" "$3" "$rps" "$(( ${total:-0} - ${ok:-0} ))" "$cpu"
}
echo "bench: ${DURATION}s per target, connections: $CONNECTIONS"
for conns in $CONNECTIONS; do
  run_wrk a "upstream directly" "$conns" "http://127.0.0.1:$UP_PORT/"
  run_wrk b "nginx plain reverse proxy (no auth)" "$conns" "http://127.0.0.1:$PROXY_PORT/"
  run_wrk c "tollgate, authenticated, cookie store" "$conns" "$TG/" "$COOKIE"
  [ -n "${BASELINE_BIN:-}" ] && run_wrk c0 "baseline tollgate ($(basename "$BASELINE_BIN")), cookie store" "$conns" "http://127.0.0.1:$TGB_PORT/" "$COOKIE"
  run_wrk "c'" "tollgate, cookie store, no access log" "$conns" "http://127.0.0.1:$TGQ_PORT/" "$COOKIE"
  run_wrk k "tollgate, cookie store, 16 hosts ([[upstreams]])" "$conns" "http://127.0.0.1:$TGM_PORT/" "$COOKIE" "$HOST16"
  run_wrk bt "nginx plain reverse proxy, HTTPS" "$conns" "https://127.0.0.1:$PROXYS_PORT/"
  run_wrk ct "tollgate, cookie store, HTTPS (rustls)" "$conns" "https://127.0.0.1:$TGS_PORT/" "$COOKIE"
  if command -v h2load >/dev/null; then
    run_h2load bt2 "nginx plain reverse proxy, HTTPS, HTTP/2" "$conns" "https://127.0.0.1:$PROXYH2_PORT/"
    run_h2load ct2 "tollgate, cookie store, HTTPS, HTTP/2" "$conns" "https://127.0.0.1:$TGS_PORT/" "$COOKIE"
  fi
  run_wrk d "tollgate, authenticated, Redis store" "$conns" "http://127.0.0.1:$TGR_PORT/" "$COOKIE_REDIS"
  run_wrk j "tollgate, bearer JWT (RS256, API client)" "$conns" "$TG/" "Authorization: Bearer $JWT"
  run_wrk e "tollgate /oauth2/auth (202)" "$conns" "$TG/oauth2/auth" "$COOKIE"
  run_wrk f "tollgate, unauthenticated (302 to login)" "$conns" "$TG/"
  run_wrk g0 "1 MiB body, upstream directly" "$conns" "http://127.0.0.1:$UP_PORT/big"
  run_wrk g "1 MiB body through tollgate" "$conns" "$TG/big" "$COOKIE"
  [ -n "$APACHE_COOKIE" ] && run_wrk h "Apache + mod_auth_openidc" "$conns" "http://127.0.0.1:$APACHE_PORT/" "$APACHE_COOKIE"
  [ -n "$O2P_COOKIE" ] && run_wrk i "oauth2-proxy" "$conns" "http://127.0.0.1:$O2P_PORT/" "$O2P_COOKIE"
done

# --------------------------------------------------------------- memory ---
MEM="$tmp/memory.tsv"
: > "$MEM"
echo "rss_idle_kib	$RSS_IDLE" >> "$MEM"
if [ "$SMOKE" = 0 ]; then
  # Streaming: the peak while 32 clients fetch 1 MiB bodies, then 64 MiB
  # bodies, measured back to back (each from the RSS it starts with): a
  # buffering proxy would grow with the body.
  for body in big huge; do
    reset_hwm "$TG_MAIN"
    wrk -t2 -c32 -d"${DURATION}s" --timeout 30s -H "$COOKIE" "$TG/$body" >/dev/null
    echo "hwm_${body}_32_kib	$(hwm_kib "$TG_MAIN")" >> "$MEM"
  done
  # 1,000 open connections, each having made one authenticated request.
  reset_hwm "$TG_MAIN"
  coproc HOLD { python3 "$ROOT/bench/hold.py" 127.0.0.1 "$TG_PORT" 1000 / "$COOKIE"; }
  read -r _ held <&"${HOLD[0]}"
  echo "rss_1000_open_kib	$(rss_kib "$TG_MAIN")	$held" >> "$MEM"
  echo done >&"${HOLD[1]}"; wait "$HOLD_PID" 2>/dev/null || true
  # 1,000 connections, all authenticated and busy.
  reset_hwm "$TG_MAIN"
  run_wrk c1000 "tollgate, authenticated, cookie store" 1000 "$TG/" "$COOKIE"
  echo "hwm_1000_kib	$(hwm_kib "$TG_MAIN")" >> "$MEM"
  # Soak: RSS every 5 s under load; flat means no growth after warm-up.
  if [ "$SOAK_SECONDS" -gt 0 ]; then
    wrk -t2 -c256 -d"${SOAK_SECONDS}s" --timeout 10s -H "$COOKIE" "$TG/" > "$tmp/soak.out" &
    soak=$!
    samples=()
    for _ in $(seq 1 $((SOAK_SECONDS / 5))); do sleep 5; samples+=("$(rss_kib "$TG_MAIN")"); done
    wait "$soak"
    echo "soak_kib	${samples[*]}" >> "$MEM"
    echo "soak_rps	$(awk '/Requests\/sec/{print $2}' "$tmp/soak.out")" >> "$MEM"
  fi
fi
echo "rss_after_kib	$(rss_kib "$TG_MAIN")" >> "$MEM"
stop "$TG_MAIN"; stop "$TG_REDIS"; stop "$TG_QUIET"

# ------------------------------------------------------ login, refresh ---
CALLBACK=""; REFRESH=""
if [ "$SMOKE" = 0 ]; then
  CALLBACK=$(python3 - "$tmp/tollgate.log" <<'PY'
import json, sys, statistics
total, provider = [], []
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("path") == "/oauth2/callback" and e.get("status") == 302: total.append(e["duration_ms"])
    if e.get("message") == "login succeeded": provider.append(e["provider_ms"])
own = sorted(t - p for t, p in zip(total, provider))
print(f"{len(own)}\t{statistics.median(own):.3f}\t{own[max(0, int(len(own)*0.99)-1)]:.3f}\t{statistics.median(provider):.3f}")
PY
)
  # The same 50 sequential requests, each with the cookie the last response
  # set: once with every request due for a refresh, once with none.
  latencies() { # refresh_before
    sed "s/^\[session\]/[session]\nrefresh_before = \"$1\"/" "$tmp/tollgate.toml" > "$tmp/tollgate-refresh.toml"
    start_tollgate "$tmp/tollgate-refresh.toml" "$TG_PORT" "$tmp/tollgate-refresh.log"
    cp "$tmp/jar" "$tmp/jar-r"
    for i in $(seq 1 50); do curl -s -o /dev/null -c "$tmp/jar-r" -b "$tmp/jar-r" "$TG/r$i"; done
    stop "$TG_PID"
    python3 - "$tmp/tollgate-refresh.log" <<'PY'
import json, sys, statistics
d, refreshes = [], 0
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    if str(e.get("path", "")).startswith("/r") and e.get("status") == 200: d.append(e["duration_ms"])
    if e.get("message") == "access token refreshed": refreshes += 1
print(f"{statistics.median(d):.3f}\t{refreshes}")
PY
  }
  REFRESH="$(latencies 7200s)	$(latencies 0s)"
fi

# --------------------------------------------------------------- report ---
MACHINE="$(nproc) cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
VERSIONS="tollgate $("$BIN" --version 2>/dev/null | awk '{print $2}') ($( [ -n "${TOLLGATE_BIN:-}" ] && echo "$TOLLGATE_BIN" || echo release)), $(nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), node $(node --version)$(peer_versions)"
python3 "$ROOT/bench/report.py" \
  --results "$RESULTS" --memory "$MEM" --machine "$MACHINE" --versions "$VERSIONS" \
  --duration "$DURATION" --threads "$THREADS" --callback "$CALLBACK" --refresh "$REFRESH" \
  --notes "$(printf '%s\n' "${PEER_NOTES[@]+"${PEER_NOTES[@]}"}")" \
  ${BENCH_REPORT:+--write "$BENCH_REPORT"}
