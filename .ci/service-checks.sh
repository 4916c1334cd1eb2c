#!/usr/bin/env bash
# Tools the service tests need beyond pip:
# - systemd-analyze (tests/service/test_systemd.py verifies the unit with it). Debian's
#   `systemd` package ships it; installing the package in a container does not start systemd.
# - promtool (tests/service/test_ekuiper_api.py lints GET /metrics with `promtool check
#   metrics`). Debian's `prometheus` package ships it; nothing is started.
set -euo pipefail
missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "service-checks: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
systemd-analyze --version | head -n 1
promtool --version 2>&1 | head -n 1
