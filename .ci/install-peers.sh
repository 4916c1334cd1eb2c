#!/usr/bin/env bash
# Install the independent WebSocket peers the server-mode tests talk to:
# headless Chromium (Debian package) and Node's npm "ws" (tests/node).
# Idempotent: each step runs only when its result is missing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y chromium
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y nodejs npm
fi

if [ ! -d "$repo/tests/node/node_modules/ws" ]; then
    cd "$repo/tests/node"
    if [ -f package-lock.json ]; then
        npm ci --no-audit --no-fund
    else
        npm install --no-audit --no-fund
    fi
fi
