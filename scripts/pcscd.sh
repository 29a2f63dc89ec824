#!/usr/bin/env bash
# scripts/pcscd.sh start|stop|restart|status
#
# Runs Debian's pcscd (with vsmartcard's vpcd driver, /etc/reader.conf.d/vpcd) in the background for the tests
# and the demo, without systemd: `pcscd --foreground` detached with setsid, its log in ./run/pcscd.log and its
# pid in ./run/pcscd.pid. `start` is idempotent (a pcscd that already answers is left alone) and returns only
# once the daemon answers and lists the virtual readers; it exits non-zero with the reason when it cannot.
# `status` prints the readers and exits 0 when the daemon answers, 3 when it does not.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR="$PWD/run"
LOG="$RUN_DIR/pcscd.log"
PIDFILE="$RUN_DIR/pcscd.pid"
SYS_PIDFILE=/run/pcscd/pcscd.pid
SYS_SOCKET=/run/pcscd/pcscd.comm
VPCD_CONF=/etc/reader.conf.d/vpcd
WAIT_SECONDS=${PCSCD_WAIT_SECONDS:-15}

say() { echo "pcscd.sh: $*"; }
die() { echo "pcscd.sh: $*" >&2; exit 1; }

# Asks the daemon through libpcsclite (ctypes, so no virtualenv is needed) for its readers.
# Prints one reader per line; exit 0 = daemon answers, 2 = library missing, 3 = no daemon.
probe() {
    python3 - <<'PY'
import ctypes
import ctypes.util
import sys

name = ctypes.util.find_library("pcsclite") or "libpcsclite.so.1"
try:
    lib = ctypes.CDLL(name)
except OSError as exc:
    print(f"cannot load libpcsclite ({exc}): apt-get install libpcsclite1", file=sys.stderr)
    sys.exit(2)
# pcsc-lite on Linux: SCARDCONTEXT and LONG are C longs, DWORD is an unsigned long.
lib.SCardEstablishContext.restype = ctypes.c_long
lib.SCardListReaders.restype = ctypes.c_long
lib.SCardReleaseContext.restype = ctypes.c_long
ctx = ctypes.c_long()
rv = lib.SCardEstablishContext(ctypes.c_ulong(2), None, None, ctypes.byref(ctx))  # SCARD_SCOPE_SYSTEM
if rv != 0:
    sys.exit(3)
size = ctypes.c_ulong(0)
rv = lib.SCardListReaders(ctx, None, None, ctypes.byref(size))
names: list[str] = []
if rv == 0 and size.value:
    buf = ctypes.create_string_buffer(size.value)
    rv = lib.SCardListReaders(ctx, None, buf, ctypes.byref(size))
    if rv == 0:
        names = [n.decode() for n in buf.raw[: size.value].split(b"\0") if n]
lib.SCardReleaseContext(ctx)
for n in names:
    print(n)
sys.exit(0)
PY
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = pcscd ]; }

daemon_pid() {
    # The pcscd that owns the system socket (whoever started it), else the one this script started.
    local pid
    for f in "$SYS_PIDFILE" "$PIDFILE"; do
        pid=$({ tr -dc '0-9' <"$f"; } 2>/dev/null || true)
        if alive "$pid"; then echo "$pid"; return 0; fi
    done
    return 1
}

readers_ready() {
    # The daemon answers and lists the vpcd readers.
    local out
    out=$(probe 2>/dev/null) || return 1
    grep -q "Virtual PCD" <<<"$out"
}

start() {
    command -v pcscd >/dev/null || die "pcscd is not installed (apt-get install pcscd, or run scripts/bootstrap.sh)"
    [ -f "$VPCD_CONF" ] || die "$VPCD_CONF is missing: vsmartcard's vpcd driver is not installed (apt-get install vsmartcard-vpcd)"
    command -v python3 >/dev/null || die "python3 is needed to check that pcscd answers"
    if readers_ready; then
        say "already running (pid $(daemon_pid || echo '?'))"
        return 0
    fi
    local old
    if old=$(daemon_pid); then
        # A pcscd process exists but does not answer (still starting, or wedged): give it a moment, then replace it.
        for _ in $(seq 1 20); do readers_ready && { say "already running (pid $old)"; return 0; }; sleep 0.1; done
        say "pcscd (pid $old) does not answer; restarting it"
        stop_daemon
    fi
    # Leftovers of a pcscd that died: pcscd refuses to start while its socket file exists.
    if [ -e "$SYS_SOCKET" ] && ! daemon_pid >/dev/null; then
        rm -f "$SYS_SOCKET" "$SYS_PIDFILE"
    fi
    mkdir -p "$RUN_DIR"
    echo "--- $(date -u +%FT%TZ) pcscd.sh start" >>"$LOG"
    # setsid + every descriptor redirected or closed: the daemon outlives this script and holds no caller's pipe
    # open, nor a lock file (`flock FILE scripts/pcscd.sh start` would otherwise stay locked while pcscd runs).
    (
        for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done
        exec setsid pcscd --foreground --info </dev/null >>"$LOG" 2>&1
    ) &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    local steps=$((WAIT_SECONDS * 10))
    for _ in $(seq 1 "$steps"); do
        if readers_ready; then
            say "started (pid $pid, log $LOG)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "pcscd.sh: pcscd exited at once; the end of $LOG:" >&2
            tail -n 15 "$LOG" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    echo "pcscd.sh: pcscd (pid $pid) did not list the vpcd readers within ${WAIT_SECONDS}s; the end of $LOG:" >&2
    tail -n 15 "$LOG" >&2 || true
    exit 1
}

stop_daemon() {
    local pid
    pid=$(daemon_pid) || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        say "pcscd (pid $pid) ignored SIGTERM for 5s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
        rm -f "$SYS_SOCKET" "$SYS_PIDFILE"
    fi
    rm -f "$PIDFILE"
    say "stopped (pid $pid)"
}

status() {
    local out
    if out=$(probe 2>&1); then
        say "running (pid $(daemon_pid || echo '?')); readers:"
        if [ -n "$out" ]; then sed 's/^/  /' <<<"$out"; else echo "  (none)"; fi
        return 0
    fi
    say "not running${out:+ ($out)}"
    return 3
}

case "${1:-}" in
    start) start ;;
    stop) stop_daemon ;;
    restart) stop_daemon; start ;;
    status) status ;;
    *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
