#!/usr/bin/env bash
# ekws under a real systemd 252: boot Debian bookworm in systemd-nspawn, follow
# systemd/README.md inside it, and check what the unit promises (checks.sh).
#
#   1. debootstrap a minbase bookworm rootfs with systemd into the cache
#      ($EKWS_CI_CACHE, default /var/cache/ekws-ci; reused when complete);
#   2. on the host: wheels for '.[fast]' and its build tools (the container has
#      no network: --private-network), a copy of this tree, a TLS cert;
#   3. boot an overlay of the cached rootfs (the cache stays clean) with
#      `systemd-nspawn --boot --register=no --keep-unit --private-network`
#      (the host's PID 1 is not systemd, so there is no machined to register with);
#   4. run checks.sh inside (nsenter into the container's PID 1 namespaces),
#      reboot the container, run the second half (the store kept across a reboot).
#
# EKWS_CI_HOLD=SECONDS: boot, print how to enter the container, run nothing
# and keep it that long (debugging a check by hand).
# Prints PASS/FAIL lines and, last, one "systemd: ..." summary line.
# Exit 0: every check passed; 1: a check failed; 77: skipped (the reason printed).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
here="$repo/.ci/systemd"
cache="${EKWS_CI_CACHE:-/var/cache/ekws-ci}"
mirror="${EKWS_CI_MIRROR:-http://deb.debian.org/debian}"
# What the rootfs holds; the marker file records it, so a change rebuilds the cache.
# procps: /bin/kill, which ExecReload runs (systemd/README.md installs it; the
# container has no network for apt, so it is in the rootfs already).
include="systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates,procps"
rootfs="$cache/rootfs-bookworm"
marker="$rootfs/.ekws-ci-complete"
start=$SECONDS

say() { printf 'systemd-ci (%ds): %s\n' $((SECONDS - start)) "$*"; }
skip() {
    say "SKIP: $*"
    echo "systemd: skipped: $*"
    exit 77
}

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, mount, systemd-nspawn); running as uid $(id -u)"

# --- 1. tools and the cached rootfs -------------------------------------------
if ! command -v debootstrap >/dev/null 2>&1 || ! command -v systemd-nspawn >/dev/null 2>&1; then
    say "installing debootstrap systemd-container"
    export DEBIAN_FRONTEND=noninteractive
    if ! { timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq --no-install-recommends \
        debootstrap systemd-container; } >/tmp/ekws-ci-apt.log 2>&1; then
        tail -n 20 /tmp/ekws-ci-apt.log
        skip "apt-get install debootstrap systemd-container failed (log above)"
    fi
fi
say "$(systemd-nspawn --version | head -n 1)"

# One build at a time (two CI runs on one host share the cache).
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 900 9 || skip "another run has held $cache/.lock for 15 minutes"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$include" ]; then
    say "rootfs cached: $rootfs"
else
    say "debootstrap bookworm into $rootfs (a minute or two; cached afterwards)"
    rm -rf "$rootfs" "$rootfs.tmp"
    if ! timeout 900 debootstrap --variant=minbase --include="$include" bookworm "$rootfs.tmp" "$mirror" \
        >"$cache/debootstrap.log" 2>&1; then
        tail -n 20 "$cache/debootstrap.log"
        rm -rf "$rootfs.tmp"
        skip "debootstrap failed (log above, $cache/debootstrap.log)"
    fi
    rm -rf "$rootfs.tmp/var/cache/apt/archives/"*.deb
    echo "$include" >"$rootfs.tmp/.ekws-ci-complete"
    mv "$rootfs.tmp" "$rootfs"
    say "rootfs built"
fi
flock -u 9

# --- 2. this run's copy of the rootfs, with the tree, wheels and a cert -------
work="$(mktemp -d "${TMPDIR:-/tmp}/ekws-systemd.XXXXXX")"
root="$work/root"
mkdir -p "$root" "$work/upper" "$work/overlay-work"
nspawn_pid=""
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null || true # nspawn powers the container off
        for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
    if mountpoint -q "$root"; then umount "$root" || umount -l "$root" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT # so that cleanup runs (the container powered off, the overlay unmounted)

if mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$work/upper,workdir=$work/overlay-work" "$root" 2>"$work/mount.err"; then
    say "rootfs: an overlay on the cache"
else
    say "overlay mount failed ($(cat "$work/mount.err")); copying the rootfs"
    cp -a "$rootfs/." "$root/"
fi

stage="$root/root/ekws-ci"
mkdir -p "$stage/tree" "$stage/wheels" "$stage/tls"
# The tree as git sees it (tracked and untracked files, not what .gitignore lists).
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$stage/tree"
else
    tar -C "$repo" --exclude=.git --exclude=.venv --exclude=node_modules -cf - . | tar -xf - -C "$stage/tree"
fi
cp "$here/checks.sh" "$here/peer.py" "$stage/"

say "wheels for '.[fast]' on the host (the container has no network)"
python="${PYTHON:-$(command -v python3)}"
if ! { "$python" -m venv "$work/venv" \
        && "$work/venv/bin/python" -m pip wheel -q --wheel-dir "$stage/wheels" \
            "$stage/tree[fast]" "setuptools>=61" wheel; } >"$work/pip.log" 2>&1; then
    tail -n 20 "$work/pip.log"
    skip "pip wheel on the host failed (log above): no package index reachable?"
fi
# The ekws wheel itself is built again inside, by the recipe's `pip install '.[fast]'`.
rm -f "$stage/wheels"/ekws-*.whl
rm -rf "$stage/tree/build" "$stage/tree/"*.egg-info

# A self-signed server certificate for the TLS check (Python's ssl cannot make one).
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$stage/tls/server.key" -out "$stage/tls/server.crt" >"$work/openssl.log" 2>&1; then
    cat "$work/openssl.log"
    say "openssl failed: the TLS check will fail"
fi

# --- 3. boot, run, reboot, run ------------------------------------------------
results="$work/results"
: >"$results"

boot() { # boot LABEL: start the container; sets nspawn_pid and init_pid
    systemd-nspawn -D "$root" --machine=ekws-ci --register=no --keep-unit --private-network \
        --boot --console=pipe -q >"$work/console-$1.log" 2>&1 </dev/null &
    nspawn_pid=$!
    init_pid=""
    for _ in $(seq 100); do
        init_pid="$(ps -o pid= --ppid "$nspawn_pid" | head -n 1 | tr -d ' ' || true)"
        if [ -n "$init_pid" ] && [ "$(cat "/proc/$init_pid/comm" 2>/dev/null)" = systemd ]; then
            break
        fi
        kill -0 "$nspawn_pid" 2>/dev/null || break
        init_pid=""
        sleep 0.1
    done
    if [ -z "$init_pid" ]; then
        cat "$work/console-$1.log"
        skip "systemd-nspawn --boot did not start systemd in the container (its output above)"
    fi
    # PID 1 answers on its private socket once it is up; before that systemctl fails.
    for _ in $(seq 300); do
        [ -S "/proc/$init_pid/root/run/systemd/private" ] && break
        kill -0 "$nspawn_pid" 2>/dev/null || break
        sleep 0.1
    done
    local state
    state="$(inside timeout 90 systemctl is-system-running --wait 2>&1 || true)"
    say "booted ($1): systemd is '$state'"
    if [ "$state" != running ] && [ "$state" != degraded ]; then
        cat "$work/console-$1.log"
        skip "the container's systemd did not finish booting: is-system-running says '$state'"
    fi
    [ "$state" = running ] || inside systemctl --failed --no-pager || true
}

inside() { # inside CMD...: run CMD in the container (its namespaces, a clean environment)
    nsenter -t "$init_pid" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

halt() { # halt VERB: poweroff or reboot, wait for nspawn to exit
    inside systemctl "$1" --no-block >/dev/null 2>&1 || true
    local status=0
    timeout 60 tail --pid="$nspawn_pid" -f /dev/null || say "the container did not stop within 60 s"
    wait "$nspawn_pid" || status=$?
    nspawn_pid=""
    say "container stopped ($1): systemd-nspawn exit $status"
}

boot first
if [ -n "${EKWS_CI_HOLD:-}" ]; then # debugging: the container booted and installed by hand, nothing run
    say "holding the container for $EKWS_CI_HOLD s: nsenter -t $init_pid -a bash (checks: bash /root/ekws-ci/checks.sh first)"
    timeout "$EKWS_CI_HOLD" tail --pid="$nspawn_pid" -f /dev/null || true
    exit 0
fi
inside timeout 420 bash /root/ekws-ci/checks.sh first 2>&1 | tee -a "$results" || true
halt reboot
boot second
inside timeout 120 bash /root/ekws-ci/checks.sh second 2>&1 | tee -a "$results" || true
if grep -q '^FAIL' "$results"; then
    inside journalctl -u ekws --no-pager -n 60 -o short-monotonic 2>&1 | sed 's/^/journal: /' || true
fi
halt poweroff

passed="$(grep -c '^PASS' "$results" || true)"
failed_names="$(grep '^FAIL' "$results" | awk '{print $2}' | tr -d : | sort -u | paste -sd, - || true)"
total=$((passed + $(grep -c '^FAIL' "$results" || true)))
say "done"
if [ -n "$failed_names" ]; then
    echo "systemd: $passed of $total checks passed in $((SECONDS - start)) s; FAILED: $failed_names"
    exit 1
fi
if [ "$passed" -eq 0 ]; then
    echo "systemd: no check ran ($((SECONDS - start)) s)"
    exit 1
fi
echo "systemd: all $total checks passed (systemd 252 booted in a bookworm container), $((SECONDS - start)) s"
