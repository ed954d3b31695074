#!/usr/bin/env bash
# Side-by-side benchmark, one run on one machine:
#   (a) the upstream (nginx) directly, (c) the same upstream through tollgate
#   with an authenticated cookie session, the time tollgate spends in a
#   login callback apart from waiting for the provider, and the latency a
#   token refresh adds to the request that triggers it.
# Needs: cargo, node, wrk and nginx (Debian: apt-get install wrk nginx-light).
# Usage: bench/run.sh [duration_seconds=10] [connections=32]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS="${2:-32}"
LOGINS="${LOGINS:-50}"
for tool in cargo node wrk nginx curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_line() { # file prefix
  for _ in $(seq 1 300); do grep -m1 "^$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: timed out waiting for $2 in $1" >&2; cat "$1" >&2; exit 1
}

[ -d tests/idp/node_modules ] || npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
cargo build --release --locked --quiet
BIN=target/release/tollgate

UP_PORT=$(free_port); TG_PORT=$(free_port)
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx; fastcgi_temp_path $tmp/nginx;
  uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP_PORT; location / { default_type text/plain; return 200 "ok\n"; } }
}
NGINX
nginx -c "$tmp/nginx/nginx.conf" -g 'daemon off;' & pids+=($!)

SECRET='bench:s3cr%t+&= x'
cat > "$tmp/idp.json" <<JSON
{"port":0,"rotateRefreshToken":true,"ttl":{"AccessToken":600},"clients":[
 {"client_id":"machine","client_secret":"machine-secret","token_endpoint_auth_method":"client_secret_basic","grant_types":["client_credentials"],"response_types":[],"redirect_uris":[]},{"client_id":"bench","client_secret":"$SECRET","token_endpoint_auth_method":"client_secret_basic",
 "redirect_uris":["http://127.0.0.1:$TG_PORT/oauth2/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"]}]}
JSON
node tests/idp/server.mjs "$tmp/idp.json" >"$tmp/idp.out" 2>"$tmp/idp.err" & pids+=($!)
ISSUER=$(wait_line "$tmp/idp.out" IDP_READY | awk '{print $2}')

cat > "$tmp/tollgate.toml" <<TOML
[server]
listen = "127.0.0.1:$TG_PORT"
public_url = "http://127.0.0.1:$TG_PORT"
[upstream]
url = "http://127.0.0.1:$UP_PORT"
[provider]
issuer = "$ISSUER"
client_id = "bench"
client_secret = "$SECRET"
[session]
secret = "$($BIN generate-secret)"
secure = false
[authorization]
bearer_audiences = ["urn:bench:api"]
[log]
level = "warn"
TOML
# Callback timings come from the access log, so log at info while logging in.
sed 's/level = "warn"/level = "info"\nformat = "json"/' "$tmp/tollgate.toml" > "$tmp/tollgate-login.toml"
TG="http://127.0.0.1:$TG_PORT"

start_tollgate() { # config
  "$BIN" --config "$1" >"$tmp/tollgate.log" 2>&1 & TG_PID=$!; pids+=($TG_PID)
  for _ in $(seq 1 300); do curl -fs "$TG/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "bench: tollgate not ready" >&2; cat "$tmp/tollgate.log" >&2; exit 1
}

# --- logins: the first fills in the provider's form, the rest reuse its session
start_tollgate "$tmp/tollgate-login.toml"
jar="$tmp/jar"
auth=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$jar" -b "$jar" "$TG/")
form_url=$(curl -s -L -c "$jar" -b "$jar" -o "$tmp/form.html" -w '%{url_effective}' "$auth")
action=$(grep -o 'action="[^"]*"' "$tmp/form.html" | head -1 | cut -d'"' -f2)
final=$(curl -s -L -c "$jar" -b "$jar" -o /dev/null -w '%{http_code} %{url_effective}' \
  --data 'login=alice&password=bench' "$(python3 -c 'import sys,urllib.parse as u; print(u.urljoin(sys.argv[1], sys.argv[2]))' "$form_url" "$action")")
[ "${final%% *}" = 200 ] || { echo "bench: login failed: $final" >&2; exit 1; }
for _ in $(seq 2 "$LOGINS"); do
  curl -s -L -c "$jar" -b "$jar" -o /dev/null "$TG/oauth2/start?rd=/" 
done
COOKIE=$(awk '$6=="_tollgate"{print "_tollgate="$7}' "$jar")
[ -n "$COOKIE" ] || { echo "bench: no session cookie" >&2; exit 1; }
callback=$(python3 - "$tmp/tollgate.log" <<'PY'
import json, sys, statistics
total, provider = [], []
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("path") == "/oauth2/callback" and e.get("status") == 302: total.append(e["duration_ms"])
    if e.get("message") == "login succeeded": provider.append(e["provider_ms"])
own = sorted(t - p for t, p in zip(total, provider))
print(f"{len(own)} {statistics.median(own):.3f} {own[int(len(own)*0.99)-1]:.3f} {statistics.median(provider):.3f}")
PY
)
kill "$TG_PID"; wait "$TG_PID" 2>/dev/null || true

# --- throughput, side by side
start_tollgate "$tmp/tollgate.toml"
check=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$TG/")
[ "$check" = 200 ] || { echo "bench: authenticated request answered $check" >&2; exit 1; }

run_wrk() { # label url [header]
  local out
  if [ $# -eq 3 ]; then out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "$3" "$2"); else out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$2"); fi
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/{print $5}' <<<"$out")
  printf '%s|%s|%s|%s|%s\n' "$1" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
JWT=$(curl -s -u machine:machine-secret -d 'grant_type=client_credentials&scope=api&resource=urn:bench:api' "$ISSUER/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
check=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $JWT" "$TG/")
[ "$check" = 200 ] || { echo "bench: bearer request answered $check" >&2; exit 1; }
a=$(run_wrk "(a) upstream directly" "http://127.0.0.1:$UP_PORT/")
c=$(run_wrk "(c) through tollgate, authenticated (cookie)" "$TG/" "Cookie: $COOKIE")
e=$(run_wrk "(e) tollgate /oauth2/auth answer (cookie, 202)" "$TG/oauth2/auth" "Cookie: $COOKIE")
j=$(run_wrk "(c') through tollgate, bearer JWT (RS256)" "$TG/" "Authorization: Bearer $JWT")
rss=$(awk '/VmRSS/{print $2}' "/proc/$TG_PID/status")
kill "$TG_PID"; wait "$TG_PID" 2>/dev/null || true

# --- refresh: the same 50 sequential requests, each with the cookie the last
# response set, once with every request due for a refresh, once with none.
latencies() { # refresh_before
  sed "s/level = \"info\"/level = \"info\"/; s/^\[session\]/[session]\nrefresh_before = \"$1\"/" "$tmp/tollgate-login.toml" > "$tmp/tollgate-refresh.toml"
  start_tollgate "$tmp/tollgate-refresh.toml"
  cp "$jar" "$tmp/jar-r"
  for i in $(seq 1 50); do curl -s -o /dev/null -c "$tmp/jar-r" -b "$tmp/jar-r" "$TG/r$i"; done
  kill "$TG_PID"; wait "$TG_PID" 2>/dev/null || true
  python3 - "$tmp/tollgate.log" <<'PY'
import json, sys, statistics
d, refreshes = [], 0
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    if str(e.get("path", "")).startswith("/r") and e.get("status") == 200: d.append(e["duration_ms"])
    if e.get("message") == "access token refreshed": refreshes += 1
print(f"{statistics.median(d):.3f} {refreshes}")
PY
}
read -r with_refresh n_refresh <<<"$(latencies 3600s)"
read -r without_refresh n_plain <<<"$(latencies 0s)"

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); wrk -t2 -c$CONNS -d${DURATION}s; nginx upstream (1 worker, return 200)"
echo
echo "| target | requests/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|"
for row in "$a" "$c" "$e" "$j"; do IFS='|' read -r l r p5 p9 n <<<"$row"; echo "| $l | $r | $p5 | $p9 | $n |"; done
ra=$(cut -d'|' -f2 <<<"$a"); rc=$(cut -d'|' -f2 <<<"$c")
re=$(cut -d'|' -f2 <<<"$e"); rj=$(cut -d'|' -f2 <<<"$j")
python3 -c "import sys; a,c,e,j=map(float,sys.argv[1:]); print(f'\nratios: (c)/(a) {c/a:.2f}; (e)/(c) {e/c:.2f}; (c\')/(c) {j/c:.2f}')" "$ra" "$rc" "$re" "$rj"
echo "tollgate RSS after the run: $((rss / 1024)) MiB"
read -r n med p99 prov <<<"$callback"
echo "callback handling in tollgate, excluding the provider ($n logins): median ${med} ms, p99 ${p99} ms (provider's token endpoint: median ${prov} ms)"
echo "request that refreshes its token: median ${with_refresh} ms ($n_refresh refreshes in 50 requests) vs ${without_refresh} ms without refresh ($n_plain refreshes); added: $(python3 -c "print(f'{$with_refresh-$without_refresh:.3f}')") ms (release build, provider on loopback)"
