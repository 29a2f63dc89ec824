#!/usr/bin/env bash
# scripts/postgres.sh start|stop|restart|status|url [DATABASE]
#
# A throwaway PostgreSQL cluster for the tests, the demo and benchmarks: created with initdb under ./.pg (data,
# socket, log), listening on 127.0.0.1 only, port $PGPORT (default 55432), trust authentication for local
# connections only, superuser "postgres", started with pg_ctl (no systemd). `start` is idempotent (a cluster of
# ours that answers is left alone), waits until it accepts connections and creates the database "gpchannel"; it
# exits non-zero with the reason when it cannot. `url [DB]` prints the SQLAlchemy URL
# (postgresql+psycopg://postgres@127.0.0.1:PORT/DB, default gpchannel). `status` exits 0 when it answers, 3 if not.
#
# initdb and the server refuse to run as root: as root they run as the `postgres` user (created by Debian's
# postgresql package), which then owns the cluster directory. When that user cannot reach ./.pg (a project under
# a private home), the cluster goes to ${TMPDIR:-/tmp}/gpchannel-pg-<uid>-<port> instead. PG_DIR overrides both.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PGPORT:-55432}
HOST=127.0.0.1
SUPERUSER=postgres
DEFAULT_DB=gpchannel
WAIT_SECONDS=${PG_WAIT_SECONDS:-60}

say() { echo "postgres.sh: $*"; }
die() { echo "postgres.sh: $*" >&2; exit 1; }

bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    fi
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    d=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
    if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    return 1
}

AS_ROOT=0
[ "$(id -u)" -eq 0 ] && AS_ROOT=1

# Runs a command as the cluster's owner (the postgres user when we are root).
as_owner() {
    if [ "$AS_ROOT" -eq 1 ]; then
        # From /, which the postgres user can always enter (the project may be under a private home).
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

cluster_dir() {
    if [ -n "${PG_DIR:-}" ]; then echo "$PG_DIR"; return; fi
    local local_dir="$PWD/.pg"
    if [ "$AS_ROOT" -eq 0 ] || runuser -u postgres -- test -x "$PWD" 2>/dev/null; then
        echo "$local_dir"
    else
        echo "${TMPDIR:-/tmp}/gpchannel-pg-$(id -u)-$PORT"
    fi
}

DIR=$(cluster_dir)
DATA="$DIR/data"
SOCK="$DIR/run"
LOG="$DIR/postgres.log"
LOCK="$DIR/script.lock"

url() { echo "postgresql+psycopg://$SUPERUSER@$HOST:$PORT/${1:-$DEFAULT_DB}"; }

psql_cmd() { as_owner "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U "$SUPERUSER" "$@"; }

answers() { as_owner "$BIN/pg_isready" -q -h "$HOST" -p "$PORT" -U "$SUPERUSER" -d postgres 2>/dev/null; }

ours_running() {
    [ -f "$DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

init_cluster() {
    [ -f "$DATA/PG_VERSION" ] && return 0
    if [ "$AS_ROOT" -eq 1 ]; then
        id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user to run the server as"
    fi
    rm -rf "$DATA"
    as_owner mkdir -p "$DATA" "$SOCK"
    say "initdb in $DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=reject >"$DIR/initdb.log" 2>&1 || {
        tail -n 20 "$DIR/initdb.log" >&2
        die "initdb failed (log: $DIR/initdb.log)"
    }
    # Only this machine: the Unix socket in the cluster directory and TCP on the loopback address, both trusted.
    as_owner tee "$DATA/pg_hba.conf" >/dev/null <<EOF
# gpchannel's throwaway test cluster (scripts/postgres.sh): local connections only, no password.
local   all all              trust
host    all all 127.0.0.1/32 trust
host    all all ::1/128      trust
EOF
    as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# --- scripts/postgres.sh
listen_addresses = '$HOST'
unix_socket_directories = '$SOCK'
max_connections = 300
shared_buffers = 64MB
log_min_messages = warning
EOF
}

start() {
    BIN=$(bindir) || die "PostgreSQL is not installed (apt-get install postgresql, or run scripts/bootstrap.sh)"
    mkdir -p "$DIR"
    [ "$AS_ROOT" -eq 1 ] && chown postgres: "$DIR"
    exec 9>>"$LOCK"
    flock -w 120 9 || die "another postgres.sh holds $LOCK"
    if ours_running && answers; then
        say "already running (port $PORT, $DATA)"
    else
        if answers; then
            die "port $PORT answers but is not the cluster in $DATA: set PGPORT to a free port"
        fi
        init_cluster
        [ -d "$SOCK" ] || as_owner mkdir -p "$SOCK"
        echo "--- $(date -u +%FT%TZ) postgres.sh start" | as_owner tee -a "$LOG" >/dev/null
        # A server that died hard leaves postmaster.pid behind; pg_ctl start copes with a stale one.
        if ! as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$WAIT_SECONDS" -o "-p $PORT" start >/dev/null 9>&-; then
            tail -n 20 "$LOG" >&2 || true
            die "pg_ctl start failed (log: $LOG)"
        fi
        answers || die "the server started but does not answer on $HOST:$PORT (log: $LOG)"
        say "started (port $PORT, data $DATA, log $LOG)"
    fi
    if [ "$(psql_cmd -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DEFAULT_DB'")" != 1 ]; then
        psql_cmd -d postgres -c "CREATE DATABASE $DEFAULT_DB" 2>/dev/null ||
            [ "$(psql_cmd -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DEFAULT_DB'")" = 1 ] ||
            die "cannot create database $DEFAULT_DB"
    fi
}

stop() {
    BIN=$(bindir) || die "PostgreSQL is not installed"
    if ours_running; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w -t "$WAIT_SECONDS" stop >/dev/null
        say "stopped ($DATA)"
    else
        say "not running ($DATA)"
    fi
}

status() {
    BIN=$(bindir) || die "PostgreSQL is not installed"
    if ours_running && answers; then
        say "running on $HOST:$PORT ($DATA); $(url)"
        return 0
    fi
    say "not running ($DATA, port $PORT)"
    return 3
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    status) status ;;
    url) url "${2:-}" ;;
    *) echo "usage: $0 start|stop|restart|status|url [DATABASE]" >&2; exit 2 ;;
esac
