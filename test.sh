#!/usr/bin/env bash
# Runs tollgate's whole test suite: unit tests, and end-to-end tests against
# the real identity provider (oidc-provider under node), a real upstream and
# the built binary. Installs the provider's npm packages itself.
set -euo pipefail
cd "$(dirname "$0")"

for tool in cargo node npm redis-server redis-cli nginx caddy chromium; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required" >&2; exit 1; }
done

for pkg in tests/idp tests/browser; do
  if [ ! -d "$pkg/node_modules" ] || [ "$pkg/package-lock.json" -nt "$pkg/node_modules" ]; then
    npm ci --prefix "$pkg" --no-audit --no-fund --loglevel=error
  fi
done

cargo test --locked "$@"
