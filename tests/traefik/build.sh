#!/usr/bin/env bash
# Builds Traefik v3 for tests/traefik.rs and prints the binary's path.
#
# Traefik cannot be `go install`ed: its go.mod has `replace` and `exclude`
# directives, which only the main module may carry. So this builds it from
# a small module of our own that requires Traefik at a release and repeats
# those directives (a local-path replace pointing into the module cache).
# About 4 minutes on 2 cores; the binary is cached, and a second run only
# prints its path. Exits non-zero (the tests then skip, saying why) when Go
# or the module proxy is not available.
set -euo pipefail

# v3.6: some dependencies of v3.7.x (lego's DNS providers) are not served by
# the module proxy this machine kind reaches.
VERSION="${TRAEFIK_VERSION:-v3.6.12}"
CACHE="${TOLLGATE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-tests}"
BIN="$CACHE/traefik-$VERSION"
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { echo "traefik/build.sh: go is not installed" >&2; exit 1; }

info="$(go mod download -json "github.com/traefik/traefik/v3@$VERSION")"
dir="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
gomod="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"

work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
{
  echo "module tollgate.test/traefik"
  grep -E '^go ' "$gomod"
  echo "require github.com/traefik/traefik/v3 $VERSION"
  # Traefik's own replace/exclude blocks and lines, local paths made
  # absolute (into the module cache).
  awk '/^(replace|exclude) \($/,/^\)$/ {print; next} /^(replace|exclude) / {print}' "$gomod" |
    sed -E "s#=> \./#=> $dir/#"
} >"$work/go.mod"

cd "$work"
export GOFLAGS=-mod=mod
go get "github.com/traefik/traefik/v3/cmd/traefik@$VERSION" >&2
mkdir -p "$CACHE"
go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" github.com/traefik/traefik/v3/cmd/traefik
mv "$BIN.tmp" "$BIN"
echo "$BIN"
