# lib.sh: helpers for integration tests (sourced by tests/integration/test_*.sh).
#
#   start_server [ENV=VALUE ...] [-- serve flags]  start `gpuscribe serve` on an ephemeral
#                     loopback port in a fresh temp dir; sets BASE, SERVER_PID, SERVER_LOG, TDIR
#   stop_server       SIGTERM, wait, and check a clean exit (status 0, no sanitizer report)
#   req METHOD PATH [curl args...]   sets STATUS and BODY
#   check NAME CMD... pass when CMD succeeds;  pass NAME / fail NAME MSG
#   jget FILTER       jq -r FILTER on BODY
#   finish            prints "SUITE: N passed, N failed" and exits non-zero on failure
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GS_BIN=${GS_BIN:-$ROOT/build/gpuscribe}
GS_SIM=${GS_SIM:-$ROOT/build/vastsim}
SUITE=${SUITE:-$(basename "$0" .sh)}
SUITE=${SUITE#test_}
PASSED=0
FAILED=0
SERVER_PID=""
TDIR=$(mktemp -d /tmp/gs-it-XXXXXX)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# never let the developer's own settings leak into a test
unset HOST PORT DATA_DIR WEB_DIR VAST_API_KEY VAST_URL VAST_INSTANCE_ID HF_TOKEN OPENAI_API_KEY \
      OPENAI_BASE_URL API_TOKEN LOG_LEVEL XDG_CONFIG_HOME XDG_DATA_HOME 2>/dev/null || true
export HOME=$TDIR/home
mkdir -p "$HOME"

_cleanup() {
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null
    rm -rf "$TDIR"
}
trap _cleanup EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok   $SUITE: $1"; }
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL $SUITE: $1${2:+ -- $2}"
}
check() {
    local name=$1; shift
    if "$@" >/dev/null 2>&1; then pass "$name"; else fail "$name" "command failed: $*"; fi
}

# start_server [VAR=VALUE ...] [-- extra flags]
start_server() {
    local envs=() flags=()
    while [ $# -gt 0 ]; do
        if [ "$1" = "--" ]; then shift; flags=("$@"); break; fi
        envs+=("$1"); shift
    done
    SERVER_DIR=$(mktemp -d "$TDIR/srv-XXXX")
    SERVER_LOG=$SERVER_DIR/server.log
    (cd "$SERVER_DIR" && exec env "${envs[@]+"${envs[@]}"}" "$GS_BIN" serve --port 0 \
        --data-dir "${DATA:-$SERVER_DIR/data}" "${flags[@]+"${flags[@]}"}") >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    local i port=""
    for i in $(seq 1 200); do
        port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$SERVER_LOG" | head -n1)
        [ -n "$port" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        echo "server did not start; log:" >&2; cat "$SERVER_LOG" >&2
        SERVER_PID=""
        return 1
    fi
    BASE=http://127.0.0.1:$port
}

# stop_server [expected exit code]: returns non-zero (and records a failure) when unclean
stop_server() {
    local want=${1:-0} rc
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID"; rc=$?
    SERVER_PID=""
    if [ "$rc" -ne "$want" ]; then fail "server exit status" "got $rc, want $want"; sed 's/^/    | /' "$SERVER_LOG" | tail -n 40; return 1; fi
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$SERVER_LOG"; then
        fail "sanitizer clean" "see log"; sed 's/^/    | /' "$SERVER_LOG" | tail -n 60; return 1
    fi
    return 0
}

# req METHOD PATH [curl args...]
req() {
    local method=$1 path=$2; shift 2
    local out
    out=$(curl -sS -o "$TDIR/body" -w '%{http_code}' -X "$method" "$@" "$BASE$path" 2>"$TDIR/curl.err") || true
    STATUS=$out
    BODY=$(cat "$TDIR/body" 2>/dev/null)
}

jget() { jq -r "$1" <<<"$BODY"; }

# expect NAME STATUS [jq-condition]: STATUS matches and (optionally) the body satisfies jq -e
expect() {
    local name=$1 want=$2 cond=${3:-}
    if [ "$STATUS" != "$want" ]; then fail "$name" "status $STATUS, want $want; body: ${BODY:0:300}"; return; fi
    if [ -n "$cond" ] && ! jq -e "$cond" >/dev/null 2>&1 <<<"$BODY"; then
        fail "$name" "body fails $cond: ${BODY:0:300}"; return
    fi
    pass "$name"
}

finish() {
    echo "$SUITE: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

# ---- the Vast emulator
#   start_vastsim [vastsim flags]  start $GS_SIM on a free port; sets SIM (base URL), SIM_PID,
#                                  SIM_KEY (its account key); stopped at exit
#   sim METHOD PATH [curl args]    call it; the body lands in SBODY
#   fault JSON                     inject a fault (POST /_admin/faults)
#   sim_live_instances             how many instances are not destroyed
SIM_PID=""
start_vastsim() {
    SIM_KEY=${SIM_KEY:-vast-test-key-$RANDOM$RANDOM}
    "$GS_SIM" --port 0 --api-key "$SIM_KEY" "$@" >"$TDIR/sim.out" 2>"$TDIR/sim.log" &
    SIM_PID=$!
    local i
    for i in $(seq 1 200); do [ -s "$TDIR/sim.out" ] && break; sleep 0.05; done
    SIM=$(sed -n '1s/^vastsim listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$TDIR/sim.out")
    [ -n "$SIM" ] || { echo "vastsim did not start:" >&2; cat "$TDIR/sim.log" >&2; return 1; }
    trap 'sim_stop; _cleanup' EXIT
}
sim_stop() {
    [ -n "$SIM_PID" ] || return 0
    kill -TERM "$SIM_PID" 2>/dev/null
    local i
    for i in $(seq 1 100); do kill -0 "$SIM_PID" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$SIM_PID" 2>/dev/null
    wait "$SIM_PID" 2>/dev/null
    SIM_PID=""
}
sim() { local m=$1 p=$2; shift 2; SBODY=$(curl -sS -X "$m" "$@" "$SIM$p"); }
fault() { sim POST /_admin/faults -H 'Content-Type: application/json' -d "$1"; }
sim_live_instances() {
    sim GET /_admin/state
    jq '[.instances[] | select((.destroyed // false) | not)] | length' <<<"$SBODY"
}
