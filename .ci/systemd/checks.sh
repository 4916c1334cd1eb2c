#!/usr/bin/env bash
# Inside the container (run.sh starts it with nsenter, as root): follow
# systemd/README.md, then check what the unit promises. One line per check:
#   PASS name: what was seen      FAIL name: what was seen
#   checks.sh first    the recipe and every check up to the reboot
#   checks.sh second   after the container rebooted
# Every wait is bounded; where no event exists (a restart that must NOT
# happen) a fixed window is watched and its length printed.
set -uo pipefail
phase="$1"
ci=/root/ekws-ci
tree="$ci/tree"
py=/opt/ekws/venv/bin/python
ekws=/opt/ekws/venv/bin/ekws
conf=/etc/ekws/ekws.yaml
data_url=ws://127.0.0.1:10081/api/data
# pip has no network here: run.sh put the wheels of '.[fast]' in $ci/wheels.
export PIP_NO_INDEX=1 PIP_FIND_LINKS="$ci/wheels" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

pass() { echo "PASS $1: $2 [at ${SECONDS} s]"; }
fail() { echo "FAIL $1: $2 [at ${SECONDS} s]"; }
verdict() { # verdict NAME OK(0|1) WHAT
    if [ "$2" -eq 0 ]; then pass "$1" "$3"; else fail "$1" "$3"; fi
}
prop() { timeout 10 systemctl show -p "$1" --value ekws; }
peer() { timeout "${PEER_TIMEOUT:-60}" "$py" "$ci/peer.py" "$@"; }
cursor() { timeout 10 journalctl -n 0 --show-cursor -q | sed -n 's/^-- cursor: //p'; }
since() { timeout 10 journalctl --after-cursor="$1" --no-pager -q "${@:2}"; }

# recipe HEADING: the first ```sh block after "## HEADING" in systemd/README.md,
# `sudo ` dropped (this is root; minbase has no sudo).
recipe() {
    awk -v heading="## $1" '
        $0 == heading { section = 1; next }
        section && /^## / { exit }
        section && /^```sh$/ { block = 1; next }
        block && /^```$/ { exit }
        block { print }
    ' "$tree/systemd/README.md" | sed -E 's/^sudo //; s/(\||&&|;) *sudo /\1 /g'
}

# run_recipe HEADING DIR: run that block as a script in DIR, each command echoed.
run_recipe() {
    local script
    script="$(recipe "$1")"
    if [ -z "$script" ]; then
        echo "recipe: no sh block under '## $1' in systemd/README.md"
        return 1
    fi
    (cd "$2" && timeout 300 bash -e -x -c "$script" 2>&1) | sed 's/^/recipe: /'
}

# wait_active OLD_PID SECONDS: until ekws is active with a main PID other than OLD_PID.
wait_active() {
    local deadline=$((SECONDS + $2)) pid state
    while [ $SECONDS -lt $deadline ]; do
        pid="$(prop MainPID)"
        state="$(prop ActiveState)"
        if [ "$state" = active ] && [ "$pid" != 0 ] && [ "$pid" != "$1" ]; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# restart_clean: a manual restart with the start limiter reset first (the checks
# restart ekws more often than StartLimitBurst allows in StartLimitIntervalSec).
restart_clean() {
    timeout 10 systemctl reset-failed ekws 2>/dev/null || true
    timeout 60 systemctl restart ekws
}

# edit_conf PYTHON: change /etc/ekws/ekws.yaml; the code sees `doc` (the loaded YAML).
edit_conf() {
    "$py" - "$conf" "$1" <<'EOF'
import sys, yaml
path, code = sys.argv[1], sys.argv[2]
with open(path) as f:
    doc = yaml.safe_load(f)
exec(code)
with open(path, "w") as f:
    yaml.safe_dump(doc, f, sort_keys=False)
EOF
}

has_rule() { timeout 20 "$ekws" show rules 2>&1 | grep -qw "$1"; }


# --- the recipe, with PID 1 logging at debug so its journal shows READY=1 ---
check_recipe() {
    echo "inside: $(systemctl --version | head -n 1); $(. /etc/os-release && echo "$PRETTY_NAME"); $(python3 --version)"
    timeout 10 systemd-analyze log-level debug
    local begin
    begin="$(cursor)"
    if run_recipe "Install (Debian 12, Raspberry Pi OS bookworm, Ubuntu 22.04+)" "$tree"; then
        pass recipe "systemd/README.md's Install block ran as written (sudo dropped), every command exit 0"
    else
        fail recipe "systemd/README.md's Install block failed (the commands above)"
    fi
    timeout 10 systemd-analyze log-level info
    check_ready "$begin"
}

# --- active only after READY=1: PID 1's own debug lines, in order ---
check_ready() {
    local log start_line ready_line running_line
    log="$(since "$1" _PID=1 -o short-monotonic | grep -F 'ekws.service')"
    start_line="$(grep -n -m1 -E 'ekws.service: Changed dead -> start$' <<<"$log" | cut -d: -f1)"
    ready_line="$(grep -n -m1 -E 'ekws.service: Got notification message from PID [0-9]+ \(READY=1' <<<"$log" | cut -d: -f1)"
    running_line="$(grep -n -m1 -E 'ekws.service: Changed start -> running$' <<<"$log" | cut -d: -f1)"
    if [ -n "$start_line" ] && [ -n "$ready_line" ] && [ -n "$running_line" ] \
        && [ "$start_line" -lt "$ready_line" ] && [ "$ready_line" -lt "$running_line" ]; then
        local t0 t1
        t0="$(sed -n "${start_line}p" <<<"$log" | sed -E 's/^\[ *([0-9.]+)\].*/\1/')"
        t1="$(sed -n "${running_line}p" <<<"$log" | sed -E 's/^\[ *([0-9.]+)\].*/\1/')"
        pass ready "PID 1's journal: 'Changed dead -> start', $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s later '$(sed -n "${ready_line}p" <<<"$log" | sed -E 's/.*(Got notification[^)]*\)).*/\1/' | cut -c1-110)', then 'Changed start -> running'; the REST API answered at once (the recipe's ekws show streams)"
    else
        fail ready "expected 'Changed dead -> start', 'Got notification ... (READY=1', 'Changed start -> running' in order; lines $start_line/$ready_line/$running_line of: $(head -c 1500 <<<"$log")"
    fi
}

check_status() {
    local status health
    status="$(prop StatusText)"
    verdict status "$([ -n "$status" ]; echo $?)" "StatusText='$status'"
    # The README's `curl -s localhost:9081/health` (minbase has no curl).
    health="$(timeout 20 "$py" -c 'import urllib.request as u; r = u.urlopen("http://127.0.0.1:9081/health", timeout=10); print(r.status, r.read().decode().strip()[:100])' 2>&1 | tail -n 1)"
    verdict health "$(grep -q '^200' <<<"$health"; echo $?)" "GET /health: $health"
}

# --- systemctl kill -s HUP does what reload does (it used to stop the service) ---
check_kill_hup() {
    local pid invocation before after=0
    pid="$(prop MainPID)"
    invocation="$(prop InvocationID)"
    reloads() { timeout 10 journalctl -q --no-pager -o cat _SYSTEMD_INVOCATION_ID="$invocation" | grep -c 'reload: done'; }
    before="$(reloads)"
    timeout 10 systemctl kill -s HUP --kill-whom=main ekws
    for _ in $(seq 100); do
        after="$(reloads)"
        [ "$after" -gt "$before" ] && break
        sleep 0.1
    done
    verdict kill-hup "$([ "$(prop MainPID)" = "$pid" ] && [ "$(prop ActiveState)" = active ] && [ "$after" -gt "$before" ]; echo $?)" \
        "systemctl kill -s HUP: main PID $pid -> $(prop MainPID), $(prop ActiveState)/$(prop SubState), Result=$(prop Result); 'reload: done' lines of this invocation $before -> $after"
}

# --- a rule created over REST, to be found after a restart and a reboot ---
check_rest_rule() {
    local out rc
    out="$(timeout 20 "$ekws" create rule keepme '{"sql": "SELECT * FROM websocketDemo", "actions": [{"file": {"path": "/var/lib/ekws/keepme.jsonl"}}]}' 2>&1)"
    rc=$?
    verdict rest-rule "$([ $rc -eq 0 ] && has_rule keepme; echo $?)" \
        "ekws create rule keepme: exit $rc, '$out'; DynamicUser=$(prop DynamicUser), /var/lib/ekws -> $(readlink /var/lib/ekws), holding $(ls /var/lib/private/ekws 2>&1 | paste -sd' ' -)"
}

# --- the watchdog restarts a stopped process ---
check_watchdog() {
    local pid restarts began
    pid="$(prop MainPID)"
    restarts="$(prop NRestarts)"
    began=$SECONDS
    kill -STOP "$pid"
    if wait_active "$pid" 75; then
        local line
        line="$(journalctl -u ekws -q --no-pager -n 80 -o cat | grep -m1 'Watchdog timeout')"
        verdict watchdog "$([ "$(prop NRestarts)" -gt "$restarts" ] && [ -n "$line" ]; echo $?)" \
            "kill -STOP $pid: new main PID $(prop MainPID) after $((SECONDS - began)) s (WatchdogSec=$(prop WatchdogUSec)), NRestarts $restarts -> $(prop NRestarts); journal: $line"
    else
        fail watchdog "kill -STOP $pid: no restart within 75 s ($(prop ActiveState)/$(prop SubState), MainPID $(prop MainPID))"
        kill -CONT "$pid" 2>/dev/null
    fi
}

check_kill_9() {
    local pid restarts began
    pid="$(prop MainPID)"
    restarts="$(prop NRestarts)"
    began=$SECONDS
    kill -9 "$pid"
    if wait_active "$pid" 30; then
        verdict kill-9 "$([ "$(prop NRestarts)" -gt "$restarts" ]; echo $?)" \
            "kill -9 $pid: new main PID $(prop MainPID) after $((SECONDS - began)) s, NRestarts $restarts -> $(prop NRestarts)"
    else
        fail kill-9 "kill -9 $pid: not active again within 30 s ($(prop ActiveState)/$(prop SubState), Result $(prop Result))"
    fi
}

check_store_restart() {
    restart_clean
    verdict store-restart "$(has_rule keepme; echo $?)" \
        "after systemctl restart, ekws show rules: $(rules_line)"
}

# --- systemctl stop: exit 0, and a connected peer gets 1001 ---
check_stop_1001() {
    local out=/tmp/peer-hold.out peer_pid stop_rc began
    timeout 40 "$py" "$ci/peer.py" hold "$data_url" 30 >"$out" 2>&1 &
    peer_pid=$!
    for _ in $(seq 100); do grep -q connected "$out" && break; sleep 0.1; done
    began=$SECONDS
    timeout 30 systemctl stop ekws
    stop_rc=$?
    wait "$peer_pid"
    verdict stop-1001 "$([ $stop_rc -eq 0 ] && grep -q '^closed 1001' "$out"; echo $?)" \
        "systemctl stop: exit $stop_rc in $((SECONDS - began)) s, Result=$(prop Result), main exit $(prop ExecMainStatus); the peer: $(paste -sd' ' "$out")"
    timeout 10 systemctl reset-failed ekws 2>/dev/null
    timeout 60 systemctl start ekws
}

# --- systemctl reload: a new declared rule while a peer keeps sending ---
check_reload() {
    local out=/tmp/peer-send.out send_pid reload_rc pid_before
    edit_conf 'doc.setdefault("rules", []).append({"id": "seqA", "sql": "SELECT * FROM websocketDemo", "actions": [{"file": {"path": "/var/lib/ekws/seq-a.jsonl"}}]})'
    rm -f /var/lib/ekws/seq-a.jsonl /var/lib/ekws/seq-b.jsonl
    restart_clean
    # 600 records at 100/s; the reload comes after the first 100 (5 s to apply it).
    timeout 60 "$py" "$ci/peer.py" send "$data_url" 600 100 >"$out" 2>&1 &
    send_pid=$!
    for _ in $(seq 150); do grep -q 'sent 100' "$out" && break; sleep 0.1; done
    edit_conf 'doc["rules"].append({"id": "seqB", "sql": "SELECT * FROM websocketDemo", "actions": [{"file": {"path": "/var/lib/ekws/seq-b.jsonl"}}]})'
    pid_before="$(prop MainPID)"
    timeout 30 systemctl reload ekws
    reload_rc=$?
    local at_return
    at_return="$(has_rule seqB && echo "already listed" || echo "not yet listed")"
    wait "$send_pid"
    verdict reload "$([ $reload_rc -eq 0 ] && [ "$(prop MainPID)" = "$pid_before" ] && [ "$(prop ActiveState)" = active ]; echo $?)" \
        "systemctl reload: exit $reload_rc (seqB $at_return when it returned), main PID $pid_before -> $(prop MainPID), $(prop ActiveState)/$(prop SubState), Result=$(prop Result); journal: $(journalctl -u ekws -q --no-pager -n 30 -o cat | grep -i -E 'reload|seqB|error' | tail -n 4 | paste -sd'|' - | cut -c1-400)"
    peer waitlines /var/lib/ekws/seq-a.jsonl 600 15 >/dev/null
    verdict reload-nothing-lost "$(grep -q 'done 600 open' "$out" && peer seq /var/lib/ekws/seq-a.jsonl 600 all >/tmp/seq-a.out 2>&1; echo $?)" \
        "the peer: $(tail -n 1 "$out"); rule seqA (running through the reload): $(cat /tmp/seq-a.out 2>/dev/null || echo 'no output file')"
    verdict reload-new-rule "$(has_rule seqB && peer seq /var/lib/ekws/seq-b.jsonl 600 tail >/tmp/seq-b.out 2>&1; echo $?)" \
        "rule seqB, added by the reload: listed $(has_rule seqB && echo yes || echo no); its file: $(cat /tmp/seq-b.out 2>/dev/null || echo none)"
}

# --- LoadCredential TLS, as the README's TLS block does it ---
check_tls() {
    if run_recipe "TLS key files" "$ci/tls"; then
        local out
        out="$(peer tls wss://127.0.0.1:10081/api/data "$ci/tls/server.crt" 2>&1)"
        verdict tls "$(grep -q '^tls ok' <<<"$out" && [ "$(prop ActiveState)" = active ]; echo $?)" \
            "wss handshake verified against server.crt: $out; the key is $(stat -c '%a %U' /etc/ekws/tls/server.key) in /etc/ekws/tls, handed over in $(ls -d /run/credentials/ekws.service 2>&1): $(ls /run/credentials/ekws.service 2>&1 | paste -sd' ' -)"
    else
        fail tls "the README's TLS block failed (above); ekws is $(prop ActiveState), Result=$(prop Result)"
    fi
    rm -f /etc/systemd/system/ekws.service.d/tls.conf
    timeout 30 systemctl daemon-reload
    restart_clean
}

# --- a config error (exit 2) is not restarted; journalctl -p err shows it ---
# (Entries are picked by the invocation's ID: journalctl --after-cursor with -p
# missed the stderr line of a process that had already exited.)
check_config_error() {
    local restart_rc window=8 restarts invocation scheduled errors
    cp "$conf" "$conf.good"
    edit_conf 'doc["restPort"] = "not-a-port"'
    timeout 10 systemctl reset-failed ekws 2>/dev/null
    timeout 60 systemctl restart ekws 2>/dev/null
    restart_rc=$?
    invocation="$(prop InvocationID)"
    restarts="$(prop NRestarts)"
    sleep "$window" # no event for a restart that must not come: watch RestartSec=2 four times over
    scheduled="$(timeout 10 journalctl -q --no-pager -u ekws -o cat --since=-$((window + 2))s | grep -c 'Scheduled restart job')"
    verdict config-error "$([ "$(prop ActiveState)" = failed ] && [ "$(prop ExecMainStatus)" = 2 ] \
        && [ "$(prop NRestarts)" = "$restarts" ] && [ "$(prop InvocationID)" = "$invocation" ] && [ "$scheduled" = 0 ]; echo $?)" \
        "restPort: not-a-port: systemctl restart exit $restart_rc; ${window} s later $(prop ActiveState)/$(prop SubState), main exit $(prop ExecMainStatus), Result=$(prop Result), NRestarts $restarts -> $(prop NRestarts), $scheduled restarts scheduled"
    errors="$(timeout 10 journalctl -q --no-pager -p err -o cat _SYSTEMD_INVOCATION_ID="$invocation")"
    verdict journal-err "$([ -n "$errors" ]; echo $?)" \
        "journalctl -p err, ekws's lines of the failed start: '$(head -n 2 <<<"$errors" | paste -sd'|' - | cut -c1-300)'"
    mv "$conf.good" "$conf"
}

# --- a reload of a file that does not load: an ERROR in the journal, the running config kept ---
check_reload_bad() {
    local pid rc invocation errors rules
    timeout 10 systemctl reset-failed ekws 2>/dev/null
    timeout 60 systemctl start ekws
    pid="$(prop MainPID)"
    rules="$(rules_line)"
    invocation="$(prop InvocationID)"
    cp "$conf" "$conf.good"
    printf 'streams: [unclosed\n' >>"$conf"
    timeout 30 systemctl reload ekws
    rc=$?
    errors=""
    for _ in $(seq 50); do # the reload is applied after systemctl returns: until its ERROR is logged
        errors="$(timeout 10 journalctl -q --no-pager -p err -o cat _SYSTEMD_INVOCATION_ID="$invocation")"
        [ -n "$errors" ] && break
        sleep 0.1
    done
    verdict reload-bad-config "$([ $rc -eq 0 ] && [ "$(prop MainPID)" = "$pid" ] && [ "$(prop ActiveState)" = active ] \
        && grep -q ERROR <<<"$errors" && [ "$(rules_line)" = "$rules" ]; echo $?)" \
        "broken YAML, systemctl reload: exit $rc, main PID $pid -> $(prop MainPID), $(prop ActiveState); journalctl -p err: '$(head -n 1 <<<"$errors" | cut -c1-300)'; rules before and after: $rules / $(rules_line)"
    mv "$conf.good" "$conf"
    timeout 30 systemctl reload ekws
}

# --- a crash loop (the REST port taken: exit 1) hits the start limit ---
check_start_limit() {
    local listen_pid begin began line deadline
    timeout 10 systemctl stop ekws
    timeout 70 "$py" "$ci/peer.py" listen 9081 60 >/tmp/listen.out 2>&1 &
    listen_pid=$!
    for _ in $(seq 100); do grep -q listening /tmp/listen.out && break; sleep 0.1; done
    begin="$(cursor)"
    began=$SECONDS
    timeout 10 systemctl reset-failed ekws 2>/dev/null
    timeout 60 systemctl start ekws 2>/dev/null
    deadline=$((SECONDS + 45))
    line=""
    while [ $SECONDS -lt $deadline ]; do
        line="$(since "$begin" -u ekws -o cat | grep -m1 'Start request repeated too quickly')"
        [ -n "$line" ] && break
        sleep 0.5
    done
    verdict start-limit "$([ -n "$line" ] && [ "$(prop ActiveState)" = failed ]; echo $?)" \
        "127.0.0.1:9081 held by another process: after $((SECONDS - began)) s $(prop ActiveState), main exit $(prop ExecMainStatus), $(since "$begin" -u ekws -o cat | grep -c 'Scheduled restart job') restarts scheduled (StartLimitBurst=$(prop StartLimitBurst) in $(prop StartLimitIntervalUSec)); journal: '$line'"
    kill "$listen_pid" 2>/dev/null
    wait "$listen_pid" 2>/dev/null
    timeout 10 systemctl reset-failed ekws 2>/dev/null
    timeout 60 systemctl start ekws
}

rules_line() { timeout 20 "$ekws" show rules 2>&1 | tr -d ' \n' | cut -c1-240; }

first() {
    check_recipe
    check_status
    check_rest_rule
    check_watchdog
    check_kill_9
    check_store_restart
    check_stop_1001
    check_reload
    check_tls
    check_config_error
    check_reload_bad
    check_kill_hup
    check_start_limit
    echo "before the reboot: ekws $(prop ActiveState), $(systemctl is-enabled ekws 2>&1), rules: $(rules_line)"
}

# --- after the container rebooted: started at boot, the store kept ---
second() {
    local deadline=$((SECONDS + 45))
    while [ $SECONDS -lt $deadline ] && [ "$(prop ActiveState)" != active ]; do sleep 0.2; done
    verdict boot-start "$([ "$(prop ActiveState)" = active ]; echo $?)" \
        "after the container rebooted: ekws $(prop ActiveState)/$(prop SubState) (enabled: $(systemctl is-enabled ekws 2>&1)), StatusText='$(prop StatusText)'"
    verdict store-reboot "$(has_rule keepme; echo $?)" \
        "the rule created over REST before the reboot: ekws show rules: $(rules_line)"
}

# checks.sh first | second | check_NAME (one check, by hand)
"$phase"
