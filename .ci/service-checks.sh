#!/usr/bin/env bash
# Tools the service tests need beyond pip: systemd-analyze (tests/service/test_systemd.py
# verifies the unit with it). Debian's `systemd` package ships it; installing the
# package in a container does not start systemd.
set -euo pipefail
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "service-checks: installing systemd (for systemd-analyze)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
systemd-analyze --version | head -n 1
