#!/usr/bin/env bash
# tollgate demo: starts the test OpenID provider (tests/idp), an upstream that
# echoes the request headers it receives (tests/upstream/echo.mjs), and
# tollgate in front of the upstream. Ctrl-C stops everything.
#
#   ./demo.sh           run until Ctrl-C
#   ./demo.sh --check   start everything, check that / redirects to the
#                       provider's login, stop (CI uses this)
#
# Ports, overridable from the environment:
#   IDP_PORT=9000  UPSTREAM_PORT=8080  TOLLGATE_PORT=4180
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

CHECK=0
case "${1:-}" in
  "") ;;
  --check) CHECK=1 ;;
  -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

IDP_PORT="${IDP_PORT:-9000}"
UPSTREAM_PORT="${UPSTREAM_PORT:-8080}"
TOLLGATE_PORT="${TOLLGATE_PORT:-4180}"
# 127.0.0.1 everywhere, never "localhost": public_url, the redirect URI
# registered at the provider and the cookies must all name the same host.
HOST=127.0.0.1
CLIENT_ID=tollgate-demo
# Special characters on purpose: client_secret_basic must form-urlencode them
# (RFC 6749 §2.3.1).
CLIENT_SECRET='demo:s3cr%t+&= x'
BASE="http://$HOST:$TOLLGATE_PORT"

die() { echo "demo: $*" >&2; exit 1; }

# === prerequisites ===

for tool in node npm cargo curl; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not installed"
done
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
  die "node 18 or newer is required (found $(node --version))"

for var in IDP_PORT UPSTREAM_PORT TOLLGATE_PORT; do
  port="${!var}"
  [[ $port =~ ^[0-9]+$ ]] && ((10#$port > 0 && 10#$port < 65536)) ||
    die "$var must be a port number, got '$port'"
  if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
    die "port $port on $HOST is already in use; choose another with $var=..."
  fi
done
[[ $IDP_PORT != "$UPSTREAM_PORT" && $IDP_PORT != "$TOLLGATE_PORT" && $UPSTREAM_PORT != "$TOLLGATE_PORT" ]] ||
  die "IDP_PORT, UPSTREAM_PORT and TOLLGATE_PORT must differ"

# === cleanup: stop what we started, remove the temporary directory ===

TMP="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-demo.XXXXXX")"
PIDS=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local pid
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill "$pid" 2>/dev/null || true; done
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_logs() {
  local f
  for f in "$TMP"/*.log; do
    [[ -s $f ]] || continue
    echo "----- $(basename "$f") (last 40 lines) -----" >&2
    tail -n 40 "$f" >&2
  done
}

# wait_ready NAME PID FILE PREFIX: prints what follows "PREFIX " on the first
# line of FILE that starts with it; fails if PID exits or 30 s pass first.
wait_ready() {
  local name=$1 pid=$2 file=$3 prefix=$4 line i
  for ((i = 0; i < 300; i++)); do
    line="$(grep -m1 "^$prefix " "$file" 2>/dev/null || true)"
    if [[ -n $line ]]; then
      echo "${line#"$prefix "}"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: $name exited during start-up" >&2
      show_logs
      return 1
    fi
    sleep 0.1
  done
  echo "demo: $name did not start within 30 s" >&2
  show_logs
  return 1
}

# === build ===

if [[ ! -d tests/idp/node_modules/oidc-provider ]]; then
  echo "demo: installing the test provider's npm packages (tests/idp)"
  npm ci --prefix tests/idp --no-audit --no-fund
fi

echo "demo: building tollgate (debug, shares target/ with the tests)"
cargo build
BIN="${CARGO_TARGET_DIR:-target}/debug/tollgate"
[[ -x $BIN ]] || die "$BIN was not built"

# Loopback traffic must not go through an HTTP proxy from the environment.
export NO_PROXY="$HOST,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"
# Every TOLLGATE_* variable is a config key to tollgate; the demo's port
# variable is not one.
RUN_TOLLGATE=(env -u TOLLGATE_PORT "$BIN")

# node refuses request heads over 16 KB (431). After a `biggroups` login,
# sign-out sends the provider an 18 KB id_token_hint, and the upstream gets a
# 13 KB X-Forwarded-Groups header; cookies of 127.0.0.1 also reach every port.
NODE=(node --max-http-header-size=131072)

# === identity provider ===

cat >"$TMP/idp.json" <<EOF
{
  "port": $IDP_PORT,
  "host": "$HOST",
  "issuer": "http://localhost:$IDP_PORT",
  "clients": [
    {
      "client_id": "$CLIENT_ID",
      "client_secret": "$CLIENT_SECRET",
      "token_endpoint_auth_method": "client_secret_basic",
      "redirect_uris": ["$BASE/oauth2/callback"],
      "post_logout_redirect_uris": ["$BASE/", "$BASE/oauth2/signed_out"],
      "grant_types": ["authorization_code", "refresh_token"],
      "response_types": ["code"]
    }
  ],
  "accounts": {
    "alice": { "email": "alice@example.com", "name": "Alice", "groups": ["admins", "dev"] }
  }
}
EOF
"${NODE[@]}" tests/idp/server.mjs "$TMP/idp.json" >"$TMP/idp.out" 2>"$TMP/idp.log" &
IDP_PID=$!
PIDS+=("$IDP_PID")
ISSUER="$(wait_ready "the identity provider" "$IDP_PID" "$TMP/idp.out" IDP_READY)"

# === upstream ===

"${NODE[@]}" tests/upstream/echo.mjs "$UPSTREAM_PORT" >"$TMP/upstream.out" 2>"$TMP/upstream.log" &
UPSTREAM_PID=$!
PIDS+=("$UPSTREAM_PID")
UPSTREAM_URL="$(wait_ready "the upstream" "$UPSTREAM_PID" "$TMP/upstream.out" UPSTREAM_READY)"

# === tollgate ===

SESSION_SECRET="$("${RUN_TOLLGATE[@]}" generate-secret)"
cat >"$TMP/tollgate.toml" <<EOF
# Written by demo.sh; config/tollgate.toml documents every key.
[server]
listen = "$HOST:$TOLLGATE_PORT"
public_url = "$BASE"
shutdown_grace = "2s"

[upstream]
url = "$UPSTREAM_URL"

[provider]
issuer = "$ISSUER"
client_id = "$CLIENT_ID"
client_secret = "$CLIENT_SECRET"   # sent with client_secret_basic, the default
# Signing out ends on tollgate's "signed out" page, not on a new login.
post_logout_redirect_url = "$BASE/oauth2/signed_out"

[session]
secret = "$SESSION_SECRET"
secure = false                      # plain http on 127.0.0.1
EOF

if ((CHECK)); then
  "${RUN_TOLLGATE[@]}" --config "$TMP/tollgate.toml" >"$TMP/tollgate.log" 2>&1 &
else
  # Interactive: tollgate's log (one line per request) goes to this terminal.
  "${RUN_TOLLGATE[@]}" --config "$TMP/tollgate.toml" &
fi
TOLLGATE_PID=$!
PIDS+=("$TOLLGATE_PID")

ready=0
for ((i = 0; i < 300; i++)); do
  if curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; then
    ready=1
    break
  fi
  if ! kill -0 "$TOLLGATE_PID" 2>/dev/null; then
    echo "demo: tollgate exited during start-up" >&2
    show_logs
    exit 1
  fi
  sleep 0.2
done
if ((!ready)); then
  echo "demo: tollgate was not ready within 60 s ($BASE/readyz)" >&2
  show_logs
  exit 1
fi

# === --check: one unauthenticated request must be sent to the provider ===

if ((CHECK)); then
  result="$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$BASE/" || true)"
  code="${result%% *}"
  location="${result#* }"
  if [[ $code == 302 && $location == "$ISSUER/"* ]]; then
    echo "demo: OK (GET $BASE/ answered 302 to $ISSUER)"
    exit 0
  fi
  echo "demo: FAILED: GET $BASE/ answered '$code' to '$location'; expected 302 to $ISSUER" >&2
  show_logs
  exit 1
fi

# === interactive ===

box() {
  # As wide as the longest line (ports and paths vary), at least 66.
  local width=66 rule line
  for line in "$@"; do if [ ${#line} -gt "$width" ]; then width=${#line}; fi; done
  rule="$(printf '%*s' $((width + 2)) '' | tr ' ' '-')"
  printf '\n+%s+\n' "$rule"
  for line in "$@"; do printf '| %-*s |\n' "$width" "$line"; done
  printf '+%s+\n\n' "$rule"
}
box \
  "tollgate demo is running" \
  "" \
  "Open       $BASE/" \
  "Log in as  any login name, any password (e.g. alice)" \
  "           'biggroups' has 150 long groups: a session over 4 KB" \
  "Who am I   $BASE/oauth2/userinfo" \
  "Sign out   $BASE/oauth2/sign_out" \
  "" \
  "Provider   $ISSUER" \
  "           (on localhost, so its cookies stay apart from tollgate's on $HOST)" \
  "Client     id $CLIENT_ID, secret '$CLIENT_SECRET'" \
  "Redirects  $BASE/oauth2/callback (login)," \
  "           $BASE/oauth2/signed_out (after sign-out)" \
  "Upstream   $UPSTREAM_URL  (echoes the headers it receives)" \
  "Logs       tollgate: below" \
  "           provider, upstream: $TMP/" \
  "" \
  "Ctrl-C stops everything."

wait "$TOLLGATE_PID"
