#!/usr/bin/env bash
# Install the Mosquitto broker the mqtt action tests start on a free port
# (tests/actions/test_actions_mqtt.py runs its own `mosquitto -c <temp config>`;
# nothing is started here, and the Debian service is left disabled).
# Idempotent: installs only when the binary is missing.
set -euo pipefail

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends mosquitto
fi
# The package may start a system broker on 1883; the tests do not need it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
    systemctl stop mosquitto || true
fi
