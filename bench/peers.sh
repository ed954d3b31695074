# shellcheck shell=bash disable=SC2154
# (SC2154: `tmp` and `pids` are the sourcing run.sh's.)
# Peers for bench/run.sh: the two tools users would otherwise put in front of
# an app for an OIDC login with a cookie session, started against the same
# test provider and nginx upstream as tollgate, so the benchmark can measure
# an authenticated request through each.
#
#   - Apache httpd + mod_auth_openidc (Debian packages: apache2,
#     libapache2-mod-auth-openidc; CI: apt-get install --no-install-recommends
#     apache2 libapache2-mod-auth-openidc)
#   - oauth2-proxy, built once with `go install` (needs go; pinned below)
#
# Sourced, not run. The caller (run.sh) defines the array `pids`, to which the
# start functions append what they start, and the temp dir `$tmp`, under which
# they write their configs and logs. Functions:
#
#   peer_clients_json PORT_APACHE PORT_O2P
#       JSON client objects (comma-separated) for the provider's "clients".
#   peer_apache_start ISSUER UPSTREAM_PORT PORT
#   peer_oauth2_proxy_start ISSUER UPSTREAM_PORT PORT
#       start the peer, wait (bounded) until it serves; non-zero plus a
#       message on stderr when it is unavailable, so the caller can skip it.
#   peer_login BASE_URL START_PATH JAR
#       log in through the provider's form with curl; succeed only if the
#       journey ends in a 200 from BASE_URL (i.e. the upstream behind it).
#   peer_cookie_header JAR
#       print `Cookie: a=1; b=2` with the session cookies in JAR (for wrk -H);
#       non-zero if there are none.
#
# All are safe under `set -euo pipefail`; call the start functions and
# peer_login in a condition (`if`, `||`) to skip a peer that fails.
#
# Start paths for peer_login: `/` for all three (tollgate, Apache,
# oauth2-proxy with --skip-provider-button) redirects to the provider.

PEER_O2P_VERSION=v7.15.6
PEER_CACHE="${TOLLGATE_BENCH_CACHE:-${HOME:-/tmp}/.cache/tollgate-bench}"
PEER_APACHE_MODULES="${APACHE_MODULES_DIR:-/usr/lib/apache2/modules}"
# Secrets with the characters that need form/Basic encoding (RFC 6749
# §2.3.1), as run.sh's tollgate secret does, so each peer's client
# authentication is exercised the same way. None may contain `"` or `\`
# (they are pasted into JSON and into a quoted Apache directive).
PEER_APACHE_SECRET='apache:s3cr%t+&= x'
PEER_O2P_SECRET='o2p:s3cr%t+&= x'

# Bounded wait: retry CMD... every 0.1 s for up to 30 s, giving up early when
# the process PID has exited. Usage: _peer_wait PID CMD...
_peer_wait() {
  local pid=$1 i
  shift
  for i in $(seq 1 300); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$i" -lt 300 ] && sleep 0.1
  done
  return 1
}

# True once something accepts TCP connections on 127.0.0.1:PORT (no HTTP
# request, so nothing is logged in or fetched from the provider).
_peer_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
_peer_apache_up() { grep -q AH00489 "$1" 2>/dev/null && _peer_port_open "$2"; } # ERROR_LOG PORT

peer_clients_json() { # PORT_APACHE PORT_O2P
  local common='"token_endpoint_auth_method":"client_secret_basic","grant_types":["authorization_code","refresh_token"],"response_types":["code"]'
  printf '{"client_id":"apache","client_secret":"%s",%s,"redirect_uris":["http://127.0.0.1:%s/redirect_uri"]},' \
    "$PEER_APACHE_SECRET" "$common" "$1"
  printf '{"client_id":"oauth2proxy","client_secret":"%s",%s,"redirect_uris":["http://127.0.0.1:%s/oauth2/callback"]}\n' \
    "$PEER_O2P_SECRET" "$common" "$2"
}

# ---------------------------------------------------------------- Apache ---

peer_apache_start() { # ISSUER UPSTREAM_PORT PORT
  local issuer=$1 up=$2 port=$3 bin m builtin loads="" dir="$tmp/apache" user=""
  bin=$(command -v apache2 || command -v /usr/sbin/apache2) || {
    echo "peers: apache2 not found (apt-get install apache2 libapache2-mod-auth-openidc)" >&2; return 1; }
  # Only what this config uses (authz_user: `Require valid-user`); Debian
  # compiles unixd in (`apache2 -l`).
  builtin=$("$bin" -l)
  for m in mpm_event unixd authn_core authz_core authz_user proxy proxy_http auth_openidc; do
    grep -q "mod_$m\.c" <<<"$builtin" && continue
    [ -f "$PEER_APACHE_MODULES/mod_$m.so" ] || {
      echo "peers: $PEER_APACHE_MODULES/mod_$m.so missing (apt-get install apache2 libapache2-mod-auth-openidc)" >&2; return 1; }
    loads+="LoadModule ${m}_module $PEER_APACHE_MODULES/mod_$m.so"$'\n'
  done
  mkdir -p "$dir"
  # As root, httpd's children must switch to an unprivileged user (it refuses
  # to serve as root); everything they need (listener, shm cache, logs) is
  # opened by the parent before it forks.
  if [ "$(id -u)" = 0 ]; then
    if id www-data >/dev/null 2>&1; then user="User www-data
Group www-data"; else user="User nobody
Group nogroup"; fi
  fi
  cat > "$dir/httpd.conf" <<CONF
ServerRoot "$dir"
ServerName 127.0.0.1:$port
Listen 127.0.0.1:$port
PidFile "$dir/httpd.pid"
DefaultRuntimeDir "$dir"
ErrorLog "$dir/error.log"
# No access log, as the upstream nginx (access_log off): the peers get their
# leanest setting. tollgate keeps its default, one access-log line a request.
LogLevel warn
$user

$loads
# mpm_event sized for 2 cores: 2 processes x 64 threads, all started up front
# and never reaped (spare-thread limits cover the whole pool), so no process
# is forked or killed during a measurement. 128 workers is Debian's default
# order (150) and more than the benchmark's connections, so no request waits
# for a thread; idle keep-alive connections cost no thread under event.
StartServers 2
ServerLimit 2
ThreadLimit 64
ThreadsPerChild 64
MaxRequestWorkers 128
MinSpareThreads 64
MaxSpareThreads 128
MaxConnectionsPerChild 0
# Unlimited requests per client connection, as nginx (1000000) and tollgate
# allow; httpd's default of 100 would make wrk reconnect all the time.
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 75

# mod_auth_openidc, defaults otherwise: the session is the default
# server-cache type in the default shm cache (the cookie only carries the
# session id), i.e. what a Debian user gets without configuring a cache.
OIDCProviderMetadataURL $issuer/.well-known/openid-configuration
OIDCClientID apache
OIDCClientSecret "$PEER_APACHE_SECRET"
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCRedirectURI http://127.0.0.1:$port/redirect_uri
OIDCCryptoPassphrase "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
OIDCScope "openid email profile"
# PKCE as tollgate does by default (logins only; no per-request cost).
OIDCPKCEMethod S256
OIDCSessionType server-cache
OIDCCacheType shm

<Location />
  AuthType openid-connect
  Require valid-user
</Location>
# The module answers its redirect URI itself, before the proxy would. Backend
# connections are pooled and reused by default (HTTP keep-alive to nginx);
# keepalive=On is the TCP option, moot on loopback.
ProxyPass /redirect_uri !
ProxyPass / http://127.0.0.1:$up/
CONF
  if ! "$bin" -t -f "$dir/httpd.conf" >"$dir/configtest.log" 2>&1; then
    echo "peers: apache config rejected:" >&2; cat "$dir/configtest.log" >&2; return 1
  fi
  : >"$dir/error.log" # a previous start's AH00489 must not count
  "$bin" -f "$dir/httpd.conf" -DFOREGROUND >"$dir/stdout.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  # Ready once it logs that it has its listener and runs (AH00489, logged
  # whatever the LogLevel), and accepts: the port alone could be someone
  # else's, with httpd about to exit on "Address already in use".
  _peer_wait "$pid" _peer_apache_up "$dir/error.log" "$port" && return 0
  echo "peers: apache did not start on port $port:" >&2
  cat "$dir/stdout.log" "$dir/error.log" >&2 2>/dev/null
  return 1
}

# ---------------------------------------------------------- oauth2-proxy ---

# Prints the binary's path, building it into the cache on first use.
_peer_o2p_bin() {
  local bindir="$PEER_CACHE/bin" stamp
  stamp="$bindir/oauth2-proxy.$PEER_O2P_VERSION"
  if [ ! -x "$stamp" ]; then
    command -v go >/dev/null || { echo "peers: go not found, oauth2-proxy skipped" >&2; return 1; }
    mkdir -p "$bindir"
    echo "peers: building oauth2-proxy $PEER_O2P_VERSION (once, into $bindir)" >&2
    # The version stamp its release builds set, so `--version` tells.
    GOBIN="$bindir" go install \
      -ldflags="-X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=$PEER_O2P_VERSION" \
      "github.com/oauth2-proxy/oauth2-proxy/v7@$PEER_O2P_VERSION" >&2 \
      || { echo "peers: go install of oauth2-proxy failed" >&2; return 1; }
    # Versioned name, so a changed pin rebuilds instead of reusing a stale one.
    mv "$bindir/oauth2-proxy" "$stamp"
  fi
  echo "$stamp"
}

peer_oauth2_proxy_start() { # ISSUER UPSTREAM_PORT PORT
  local issuer=$1 up=$2 port=$3 bin dir="$tmp/oauth2-proxy"
  bin=$(_peer_o2p_bin) || return 1
  mkdir -p "$dir"
  # Cookie session store (the default): the whole session is encrypted into
  # the cookie. PKCE S256 as tollgate does by default (and as oauth2-proxy
  # warns about when the provider offers it); defaults otherwise (no cookie
  # refresh, user headers and Basic auth passed upstream). Request and auth
  # logging off: its leanest setting (tollgate keeps its default access log).
  # Secrets through the environment, not argv (ps).
  OAUTH2_PROXY_CLIENT_SECRET="$PEER_O2P_SECRET" \
  OAUTH2_PROXY_COOKIE_SECRET="$(python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')" \
  "$bin" \
    --http-address="127.0.0.1:$port" \
    --provider=oidc \
    --oidc-issuer-url="$issuer" \
    --client-id=oauth2proxy \
    --redirect-url="http://127.0.0.1:$port/oauth2/callback" \
    --upstream="http://127.0.0.1:$up/" \
    --email-domain='*' \
    --cookie-secure=false \
    --code-challenge-method=S256 \
    --skip-provider-button \
    --request-logging=false \
    --auth-logging=false \
    --silence-ping-logging \
    >"$dir/log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  _peer_wait "$pid" curl -fs "http://127.0.0.1:$port/ping" && return 0
  echo "peers: oauth2-proxy not ready on port $port:" >&2; cat "$dir/log" >&2
  return 1
}

# ----------------------------------------------------------------- login ---

peer_login() { # BASE_URL START_PATH JAR
  local base=$1 start=$2 jar=$3 page out url action final
  page=$(mktemp "$tmp/login.XXXXXX")
  # Follow the redirects to the provider's login form (relative Location
  # headers and the port changes are curl's business).
  out=$(curl -s -L -c "$jar" -b "$jar" -o "$page" -D "$page.h1" -w '%{http_code} %{url_effective}' "$base$start") \
    || { echo "peers: login: GET $base$start failed" >&2; rm -f "$page"*; return 1; }
  url=${out#* }
  action=$(grep -o 'action="/interaction/[^"]*"' "$page" | head -1 | cut -d'"' -f2) || true # none: see below
  if [ -n "$action" ]; then
    # The form's action is absolute-path; resolve it against the form's URL.
    final=$(curl -s -L -c "$jar" -b "$jar" -o "$page" -D "$page.h2" -w '%{http_code} %{url_effective}' \
      --data 'login=alice&password=bench' "${url%%/interaction/*}$action") || final="000 -"
  else
    final=$out # the provider's session was still live: no form this time
  fi
  # curl 7.88 (Debian 12) keeps cookies that a server deletes, with an
  # Expires date in the past (mod_auth_openidc's state cookie after the
  # callback) or with Max-Age=0 (oauth2-proxy's CSRF cookie): apply those
  # deletions to the jar, as a browser would, lest the stale cookies ride
  # along on every benchmark request.
  [ -f "$jar" ] && python3 - "$jar" "$page".h* <<'PY'
import sys, time, email.utils
dead = set()
for headers in sys.argv[2:]:
    for line in open(headers, encoding="latin-1"):
        key, _, value = line.partition(":")
        if key.strip().lower() != "set-cookie":
            continue
        name, *attrs = [p.strip() for p in value.split(";")]
        attr = {k.strip().lower(): v.strip() for k, _, v in (a.partition("=") for a in attrs)}
        try:  # Max-Age wins over Expires (RFC 6265 §5.3)
            if "max-age" in attr:
                gone = int(attr["max-age"]) <= 0
            else:
                gone = email.utils.parsedate_to_datetime(attr["expires"]).timestamp() < time.time()
        except (KeyError, TypeError, ValueError):
            gone = False
        (dead.add if gone else dead.discard)(name.split("=", 1)[0])
with open(sys.argv[1]) as f:
    lines = f.readlines()
with open(sys.argv[1], "w") as f:
    f.writelines(l for l in lines if len(l.split("\t")) != 7 or l.split("\t")[5] not in dead)
PY
  rm -f "$page"*
  case "$final" in
    "200 $base"*) return 0 ;;
  esac
  echo "peers: login through $base$start ended in: $final" >&2
  return 1
}

# The test provider shares the host 127.0.0.1 and cookies ignore ports, so its
# own cookies (_session, _interaction*, with .sig/.legacy variants) are in the
# jar too; they are left out, as a browser would not send them to an app on
# another host than its IdP. Expired entries are left out as well.
peer_cookie_header() { # JAR
  awk -v now="$(date +%s)" '
    BEGIN { FS = "\t"; n = 0 }
    NF == 7 {
      host = $1; sub(/^#HttpOnly_/, "", host)
      if (host != "127.0.0.1" || ($5 != 0 && $5 < now)) next
      if ($6 ~ /^_(session|interaction|interaction_resume)(\.legacy)?(\.sig)?$/) next
      out = out (n++ ? "; " : "") $6 "=" $7
    }
    END { if (n) print "Cookie: " out; else exit 1 }' "$1"
}

# ", apache2 X, mod_auth_openidc Y, oauth2-proxy Z" for the report (what
# is installed; empty parts for what is not).
peer_versions() {
  local v
  if command -v apache2 >/dev/null 2>&1; then
    v=$(apache2 -v 2>/dev/null | sed -n 's/^Server version: //p')
    [ -n "$v" ] && printf ', %s' "$v"
    v=$(dpkg-query -W -f='${Version}' libapache2-mod-auth-openidc 2>/dev/null || true)
    [ -n "$v" ] && printf ', mod_auth_openidc %s' "$v"
  fi
  [ -x "$PEER_CACHE/bin/oauth2-proxy.$PEER_O2P_VERSION" ] && printf ', oauth2-proxy %s' "$PEER_O2P_VERSION"
  return 0
}
