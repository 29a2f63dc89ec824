#!/usr/bin/env bash
# scripts/campaign-demo.sh [--postgres] [--cards N] [--keep]
#
# An SCP80 campaign end to end on this machine, with nothing but the project:
#   1. a fleet of N (default 20) emulated cards and its inventory  (gpchannel fleet generate)
#   2. the handset bridge in front of the fleet: the SMS centre     (gpchannel bridge --fleet)
#   3. the OTA server with its SCP80 worker bound to the bridge     (gpchannel server --smpp)
#      on SQLite (default) or on the throwaway PostgreSQL cluster   (--postgres: scripts/postgres.sh)
#   4. the inventory imported: cards, numbers, keys                  (gpchannel inventory import)
#   5. a campaign: select EF SPN, update it, read it back over RFM   (gpchannel campaign create)
#   6. its progress, then every card's results                       (gpchannel campaign status --watch / results)
#   7. an SCP81 campaign: the cards open their PSK-TLS admin sessions (gpchannel fleet agents)
# and everything stopped at the end (or on Ctrl-C). The work directory is removed unless --keep.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
CARDS=20
STORE=sqlite
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --postgres) STORE=postgres ;;
        --cards) CARDS=$2; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "campaign-demo: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

[ -x "$PY" ] || { echo "campaign-demo: $PY is missing: run scripts/bootstrap.sh (or make) first" >&2; exit 1; }
gp() { "$PY" -c "from gpchannel.cli.main import main; main()" "$@"; }
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
say() { printf '\n== %s\n' "$*"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpchannel-campaign-demo.XXXXXX")
PIDS=()
PG_DB=""
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$PG_DB" ]; then
        "$PY" - "$PG_SERVER" "$PG_DB" <<'EOF' || true
import sys
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
admin = create_engine(make_url(sys.argv[1]).set(database="postgres"), isolation_level="AUTOCOMMIT")
with admin.connect() as c:
    c.execute(text(f'DROP DATABASE IF EXISTS "{sys.argv[2]}" WITH (FORCE)'))
EOF
    fi
    if [ "$KEEP" -eq 1 ]; then
        echo "campaign-demo: kept $WORK (bridge.log, server.log, fleet/, data/)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until FILE has a line matching PATTERN (the process PID must stay alive), prints that line.
wait_for() {
    local file=$1 pattern=$2 pid=$3 i
    for i in $(seq 1 300); do
        if grep -m1 -E "$pattern" "$file" 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "campaign-demo: the process stopped; its log:" >&2; cat "$file" >&2; return 1
        fi
        sleep 0.1
    done
    echo "campaign-demo: timed out waiting for '$pattern' in $file" >&2
    return 1
}

if [ "$STORE" = postgres ]; then
    say "PostgreSQL: the throwaway cluster of scripts/postgres.sh"
    ./scripts/postgres.sh start
    PG_SERVER=$(./scripts/postgres.sh url)
    PG_DB="gpc_demo_$$"
    "$PY" - "$PG_SERVER" "$PG_DB" <<'EOF'
import sys
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
admin = create_engine(make_url(sys.argv[1]).set(database="postgres"), isolation_level="AUTOCOMMIT")
with admin.connect() as c:
    c.execute(text(f'CREATE DATABASE "{sys.argv[2]}"'))
EOF
    DB_URL=$(./scripts/postgres.sh url "$PG_DB")
else
    DB_URL="sqlite:///$WORK/data/gpchannel-server.db"
fi
echo "store: $DB_URL"

say "1. a fleet of $CARDS emulated cards"
gp fleet generate --count "$CARDS" --dir "$WORK/fleet"
gp fleet show "$WORK/fleet" --cards 3

say "2. the handset bridge in front of the fleet"
SMPP_PORT=$(free_port)
gp bridge --smpp "127.0.0.1:$SMPP_PORT" --fleet "$WORK/fleet" >"$WORK/bridge.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/bridge.log" '^bridge: SMPP on' "${PIDS[-1]}"

say "3. the OTA server (admin listener, job API, SCP80 worker bound to the bridge)"
API_PORT=$(free_port)
export GPCHANNEL_API="http://127.0.0.1:$API_PORT"
export GPCHANNEL_MASTER_KEY=${GPCHANNEL_MASTER_KEY:-$("$PY" -c 'import os; print(os.urandom(32).hex())')}
mkdir -p "$WORK/data"
# the job API wants a token: one for this walk-through (admin: every scope), kept in a file, never on a command line
gp server token create --db "$DB_URL" --data "$WORK/data" --name demo --scope admin >"$WORK/api.token"
export GPCHANNEL_API_TOKEN=$(cat "$WORK/api.token")
gp server --admin 127.0.0.1:0 --api "127.0.0.1:$API_PORT" --db "$DB_URL" --data "$WORK/data" \
    --smpp "127.0.0.1:$SMPP_PORT" --log-level warning >"$WORK/server.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/server.log" '^ready' "${PIDS[-1]}" >/dev/null
grep -E '^(admin|api) ' "$WORK/server.log"
ADMIN=$(grep -m1 '^admin ' "$WORK/server.log" | cut -d' ' -f2)

say "4. the inventory into the server (cards, numbers, keys)"
gp inventory import "$WORK/fleet/inventory.csv"

say "5. a campaign: update EF SPN and read it back over RFM (TAR B00001) on every card"
gp campaign create --name "SPN update" --target B00001 --inventory "$WORK/fleet/inventory.csv" \
    --rate 50 --burst 20 00A4080C047F206F46 00D600000441424344 00B0000004

say "6. progress, then the results"
gp campaign status 1 --watch --interval 0.5
gp campaign results 1
gp campaign results 1 --fail-on-error >/dev/null && echo "every card: done"

say "the cards' own view (their SCP80 counters, kept in each card's state directory)"
gp fleet show "$WORK/fleet" --cards 5

say "7. an SCP81 campaign (GET DATA, read-only): each card opens its PSK-TLS admin session to $ADMIN"
gp campaign create --name "IIN over SCP81" --transport scp81 --inventory "$WORK/fleet/inventory.csv" 80CA004200
gp fleet agents "$WORK/fleet" --server "$ADMIN"
gp campaign status 2
gp campaign results 2 --fail-on-error >/dev/null && echo "every card: done over SCP81"

say "8. the audit trail: who did what (hash-chained), checked"
gp audit verify --db "$DB_URL" --data "$WORK/data"
