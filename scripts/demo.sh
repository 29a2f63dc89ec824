#!/usr/bin/env bash
# The main demo: two emulated cards served through the real PC/SC stack (pcscd + vsmartcard's vpcd), and the
# gpchannel host tool completing real secure sessions with them: SCP03 at security level 33 and SCP02 i=55 at
# level 03, with a readable transcript (--trace shows every APDU on the wire and the plain one beside it).
# Everything runs on the embedded defaults: the example profiles in examples/profiles/ (GlobalPlatform test keys).
set -euo pipefail
cd "$(dirname "$0")/.."

G=.venv/bin/gpchannel
RUN=run/demo
rm -rf "$RUN"
mkdir -p "$RUN"

./scripts/pcscd.sh start

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# quote ARGS...: the command line as a shell reads it back (Python's shlex.join): each argument as is when it holds
# only safe characters, else in single quotes (a ' inside written '"'"'), so a printed command can be pasted.
quote() {
    local out=() arg LC_ALL=C  # C: the ranges below mean ASCII letters only, as shlex
    for arg in "$@"; do
        if [[ -n $arg && $arg =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
            out+=("$arg")
        else
            out+=("'${arg//\'/\'\"\'\"\'}'")
        fi
    done
    printf '%s\n' "${out[*]}"
}
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "$(quote "${@:2}")"; "${@:2}"; }

$G card init --profile examples/profiles/scp03.toml --state "$RUN/card-scp03"
$G card init --profile examples/profiles/scp02.toml --state "$RUN/card-scp02"
$G card serve --state "$RUN/card-scp03" --vpcd 127.0.0.1:35963 --trace 2>"$RUN/card-scp03.log" &
pids+=($!)
$G card serve --state "$RUN/card-scp02" --vpcd 127.0.0.1:35964 --trace 2>"$RUN/card-scp02.log" &
pids+=($!)

SCP03_READER="Virtual PCD 00 00"
SCP02_READER="Virtual PCD 00 01"

step "PC/SC readers (pcscd + vpcd)" $G readers
step "SCP03 i=70, level 33 (C-MAC, C-DEC, R-MAC, R-ENC): card information" \
    $G --reader "$SCP03_READER" --security-level 33 --trace info
step "SCP03: card content" $G --reader "$SCP03_READER" --security-level 33 list
step "SCP03: add key set 31 with PUT KEY (keys encrypted under the DEK, KCVs checked)" \
    $G --reader "$SCP03_READER" --security-level 33 put-key --new-kvn 0x31 \
    --new-key 00112233445566778899AABBCCDDEEFF
step "SCP03: a session with the new key set 31" \
    $G --reader "$SCP03_READER" --kvn 0x31 --key 00112233445566778899AABBCCDDEEFF --security-level 03 list
step "SCP02 i=55, level 03 (C-MAC, C-DEC): card content, with the wire trace" \
    $G --reader "$SCP02_READER" --security-level 03 --trace list
echo
echo "== A wrong key: the host stops after INITIALIZE UPDATE (nothing that counts against the card is sent)"
echo "\$ $(quote "$G" --reader "$SCP03_READER" --key 000102030405060708090A0B0C0D0E0F list)"
if $G --reader "$SCP03_READER" --key 000102030405060708090A0B0C0D0E0F list; then
    echo "unexpected: the wrong key was accepted" >&2
    exit 1
else
    echo "(exit code $?, as expected)"
fi
echo
echo "The cards' own traces (plain APDUs inside the secure channels, never keys) are in $RUN/card-*.log;"
echo "their state (keys, counters, registry) survives restarts in $RUN/card-*/."
