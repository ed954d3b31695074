#!/usr/bin/env bash
# Runs tollgate's whole test suite: unit tests, and end-to-end tests against
# real components the tests start themselves: the identity provider
# (oidc-provider under node), Keycloak, Redis, nginx, Caddy, headless Chromium, and
# the built binary. Installs what is missing: Debian packages (when run as
# root, or with sudo) and the npm packages under tests/.
set -euo pipefail
cd "$(dirname "$0")"

for tool in cargo node npm python3; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required (Rust toolchain, Node.js 18+ with npm, Python 3 with venv)" >&2; exit 1; }
done

# tool -> Debian package
declare -A package=([redis-server]=redis-server [redis-cli]=redis-tools [nginx]=nginx-light [caddy]=caddy [chromium]=chromium [unzip]=unzip [mvn]=maven)
missing=()
for tool in "${!package[@]}"; do
  command -v "$tool" >/dev/null || missing+=("${package[$tool]}")
done
# Debian ships venv's pip bootstrap apart from python3.
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "test.sh: please install: apt-get install ${missing[*]}" >&2; exit 1
  fi
  echo "test.sh: installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Their own services are not needed: the tests start their own servers.
  for svc in redis-server nginx caddy; do
    if command -v systemctl >/dev/null; then "${sudo[@]}" systemctl stop "$svc" 2>/dev/null || true; fi
  done
fi

for pkg in tests/idp tests/browser; do
  if [ ! -d "$pkg/node_modules" ] || [ "$pkg/package-lock.json" -nt "$pkg/node_modules" ]; then
    npm ci --prefix "$pkg" --no-audit --no-fund --loglevel=error
  fi
done

# The gRPC server and client (tests/grpc.rs, tests/routing.rs): Python
# grpcio in a virtual environment of their own.
if [ ! -x tests/grpc/.venv/bin/python ] || [ tests/grpc/requirements.txt -nt tests/grpc/.venv ]; then
  python3 -m venv tests/grpc/.venv
  tests/grpc/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/grpc/requirements.txt
  touch tests/grpc/.venv
fi

# Keycloak (tests/keycloak.rs): its server distribution from Maven Central
# and a Java 21+ (idempotent; a second run only checks).
tests/keycloak/install.sh >/dev/null

# Traefik v3 (tests/gateways.rs), built from source while the tests
# compile: about 4 minutes the first time, then cached. When it cannot be
# built, its test says so and skips.
traefik_pid=
if [ -z "${TOLLGATE_TRAEFIK_BIN:-}" ]; then
  traefik_out=$(mktemp)
  tests/traefik/build.sh >"$traefik_out" 2>"$traefik_out.log" &
  traefik_pid=$!
fi
cargo test --locked --no-run "$@"
if [ -n "$traefik_pid" ]; then
  if wait "$traefik_pid"; then
    TOLLGATE_TRAEFIK_BIN=$(cat "$traefik_out")
    export TOLLGATE_TRAEFIK_BIN
  else
    echo "test.sh: Traefik could not be built; tests/gateways.rs skips it:" >&2
    tail -n 5 "$traefik_out.log" >&2
  fi
  rm -f "$traefik_out" "$traefik_out.log"
fi

cargo test --locked "$@"
