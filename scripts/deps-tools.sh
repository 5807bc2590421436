#!/usr/bin/env bash
# Installs the tools the tests and lint need, idempotently:
#   - headless Chromium (Debian `chromium`) for browser tests;
#   - staticcheck (from the Go module proxy) into .deps/bin.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"
if ! command -v chromium >/dev/null; then
  echo "deps: installing Debian's chromium"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1
fi
bin="$root/.deps/bin"
if [[ ! -x "$bin/staticcheck" || "$(cat "$bin/.staticcheck-version" 2>/dev/null)" != "$STATICCHECK_VERSION" ]]; then
  echo "deps: installing staticcheck $STATICCHECK_VERSION"
  mkdir -p "$bin"
  GOBIN="$bin" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
  echo "$STATICCHECK_VERSION" > "$bin/.staticcheck-version"
fi
