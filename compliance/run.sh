#!/usr/bin/env bash
# RFC 6455 compliance: the Autobahn|Testsuite against ekws, both roles, cases 1.* to 10.*
# (12.* and 13.* are compression, which ekws never negotiates).
#
#   bash compliance/run.sh          # PYTHON=... picks the interpreter that has ekws installed
#
# The suite is a Python 2.7 program: it is installed once into $AUTOBAHN_DIR with
# pip --target. Without a Python 2.7 this script says so and exits 0 (skipped).
# Exit status: 0 when every case is OK, NON-STRICT or INFORMATIONAL; 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
AUTOBAHN_DIR=${AUTOBAHN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ekws-autobahn}
CASES='["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "9.*", "10.*"]'
# Every case of 1.* to 10.* runs (about 40 s on 2 cores, the 9.* limits included);
# EXCLUDE='["9.1.*"]' leaves some out when a machine is slow.
EXCLUDE=${EXCLUDE:-'[]'}

# -- find a Python 2.7 ---------------------------------------------------------------
PY27=()
if command -v pyenv >/dev/null 2>&1; then
    version=$(pyenv versions --bare 2>/dev/null | grep -E '^2\.7(\.|$)' | tail -n 1 || true)
    if [ -n "$version" ]; then
        PY27=(env "PYENV_VERSION=$version" "$(pyenv root)/versions/$version/bin/python2.7")
    fi
fi
if [ ${#PY27[@]} -eq 0 ] && command -v python2.7 >/dev/null 2>&1 \
        && python2.7 -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
    PY27=(python2.7)
fi
if [ ${#PY27[@]} -eq 0 ]; then
    echo "compliance: SKIPPED - no Python 2.7 found (the Autobahn|Testsuite needs one; pyenv install 2.7.18)"
    exit 0
fi

# -- install the suite once ------------------------------------------------------------
if [ ! -f "$AUTOBAHN_DIR/.installed" ]; then
    echo "compliance: installing autobahntestsuite into $AUTOBAHN_DIR"
    rm -rf "$AUTOBAHN_DIR"
    mkdir -p "$AUTOBAHN_DIR"
    target=$(cd "$(dirname "$AUTOBAHN_DIR")" && pwd)/$(basename "$AUTOBAHN_DIR")
    # From / so that pip does not mistake this checkout for an installed package.
    (cd / && "${PY27[@]}" -m pip install -q --disable-pip-version-check --no-warn-conflicts \
        --target "$target" autobahntestsuite 2>&1 | grep -v "is ignored: it is neither" || true)
    [ -d "$AUTOBAHN_DIR/autobahntestsuite" ] || { echo "compliance: installing autobahntestsuite failed"; exit 1; }
    touch "$AUTOBAHN_DIR/zope/__init__.py"  # zope.interface as a plain package under --target
    touch "$AUTOBAHN_DIR/.installed"
fi
wstest() { PYTHONPATH="$AUTOBAHN_DIR" "${PY27[@]}" -m autobahntestsuite.wstest "$@"; }

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do
        if "$PYTHON" -c "import socket, sys; socket.create_connection(('127.0.0.1', $1), 1).close()" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "compliance: nothing listens on port $1" >&2
    return 1
}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

status=0

# -- server role: Autobahn's fuzzing client against compliance/echo_server.py ----------------------
port=$(free_port)
"$PYTHON" compliance/echo_server.py --port "$port" >"$WORK/echo_server.log" 2>&1 &
PIDS+=($!)
wait_port "$port"
cat >"$WORK/fuzzingclient.json" <<JSON
{"outdir": "$WORK/server", "servers": [{"agent": "ekws", "url": "ws://127.0.0.1:$port"}],
 "cases": $CASES, "exclude-cases": $EXCLUDE, "exclude-agent-cases": {}}
JSON
(cd "$WORK" && wstest -m fuzzingclient -s "$WORK/fuzzingclient.json" >"$WORK/fuzzingclient.log" 2>&1) \
    || { echo "compliance: the fuzzing client failed:"; tail -n 20 "$WORK/fuzzingclient.log"; status=1; }
if [ -f "$WORK/server/index.json" ]; then
    "$PYTHON" compliance/report.py "$WORK/server/index.json" "server role (echo_server.py)" || status=1
else
    echo "compliance: no report from the fuzzing client"; status=1
fi

# -- client role: compliance/echo_client.py against Autobahn's fuzzing server -------------------
port=$(free_port)
cat >"$WORK/fuzzingserver.json" <<JSON
{"url": "ws://127.0.0.1:$port", "outdir": "$WORK/client",
 "cases": $CASES, "exclude-cases": $EXCLUDE, "exclude-agent-cases": {}}
JSON
(cd "$WORK" && exec env PYTHONPATH="$AUTOBAHN_DIR" "${PY27[@]}" -m autobahntestsuite.wstest \
    -m fuzzingserver -s "$WORK/fuzzingserver.json" --webport 0 >"$WORK/fuzzingserver.log" 2>&1) &
PIDS+=($!)
wait_port "$port"
"$PYTHON" compliance/echo_client.py --url "ws://127.0.0.1:$port" --agent ekws >"$WORK/echo_client.log" 2>&1 \
    || { echo "compliance: the echo client failed:"; tail -n 20 "$WORK/echo_client.log"; status=1; }
if [ -f "$WORK/client/index.json" ]; then
    "$PYTHON" compliance/report.py "$WORK/client/index.json" "client role (echo_client.py)" || status=1
else
    echo "compliance: no report from the fuzzing server"; status=1
fi

if [ "$status" -eq 0 ]; then
    echo "compliance: PASSED - every case OK, NON-STRICT or INFORMATIONAL"
else
    echo "compliance: FAILED"
fi
exit "$status"
