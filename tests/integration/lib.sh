# lib.sh: helpers for integration tests (sourced by tests/integration/test_*.sh).
#
#   start_server [ENV=VALUE ...] [-- serve flags]  start `gpuscribe serve` on an ephemeral
#                     loopback port in a fresh temp dir; sets BASE, SERVER_PID, SERVER_LOG, TDIR
#   stop_server       SIGTERM, wait, and check a clean exit (status 0, no sanitizer report)
#   req METHOD PATH [curl args...]   sets STATUS and BODY
#   check NAME CMD... pass when CMD succeeds;  pass NAME / fail NAME MSG
#   skip WHAT REASON  counts a skip ("skip SUITE: WHAT -- REASON"); under CI=true a skip is a
#                     failure ("unexpected skip under CI"): CI is Debian 12 after
#                     scripts/setup.sh --test, where every test here can run
#   wait_for NAME SECONDS CMD...  runs CMD (a command or function) every 0.1 s until it
#                     succeeds: pass NAME, or fail NAME after SECONDS, a whole number (returns 1)
#   jget FILTER       jq -r FILTER on BODY
#   finish            prints "SUITE: N passed, N failed, N skipped" and exits non-zero on
#                     failure; fails when /dev/null stopped being a character device
#   at_exit 'CMD'     run CMD (evaluated then) at exit, before the server and vastsim are
#                     stopped and the temp dir removed; use it instead of a trap of one's own
#   log_port LOG PID REGEX   waits (10 s) for a port in LOG (sed -n 's/REGEX/\1/p') while PID
#                     lives; prints it, or nothing
#   jreq METHOD PATH [JSON] [curl args]  req with a JSON body; appends BODY to $ALL when set
#   wait_job ID [seconds=60]   prints the job's final state (done/failed/cancelled), or
#                     timeout:STATE (returns 1)
#   wait_job_state ID STATE [seconds=60]  until the job is in STATE
#   long_speech_wav OUT [repeats=2]  the pocketsphinx librivox clips, repeated, 1 s apart
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GS_BIN=${GS_BIN:-$ROOT/build/gpuscribe}
GS_SIM=${GS_SIM:-$ROOT/build/vastsim}
SUITE=${SUITE:-$(basename "$0" .sh)}
SUITE=${SUITE#test_}
PASSED=0
FAILED=0
SKIPPED=0
DEVNULL_OK=0; [ -c /dev/null ] && DEVNULL_OK=1
SERVER_PID=""
TDIR=$(mktemp -d /tmp/gs-it-XXXXXX)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# never let the developer's own settings leak into a test
unset HOST PORT DATA_DIR WEB_DIR VAST_API_KEY VAST_URL VAST_INSTANCE_ID HF_TOKEN OPENAI_API_KEY \
      OPENAI_BASE_URL API_TOKEN LOG_LEVEL XDG_CONFIG_HOME XDG_DATA_HOME VAST_IMAGE_MIN_CUDA \
      2>/dev/null || true
export HOME=$TDIR/home
mkdir -p "$HOME"

SIM_PID=""
_AT_EXIT=()
at_exit() { _AT_EXIT+=("$1"); }
_cleanup() {
    local c
    for c in "${_AT_EXIT[@]+"${_AT_EXIT[@]}"}"; do eval "$c"; done
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null
    sim_stop
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
skip() {
    if [ "${CI:-}" = true ]; then fail "$1" "unexpected skip under CI: $2"
    else SKIPPED=$((SKIPPED + 1)); echo "skip $SUITE: $1 -- $2"; fi
}
# server_dead: true when the server this suite started (SERVER_PID) has exited, so that the
# waits below stop at once instead of running out their time against a dead port
server_dead() {
    [ -n "$SERVER_PID" ] || return 1
    local st; st=$(awk '{print $3}' "/proc/$SERVER_PID/stat" 2>/dev/null)
    [ -z "$st" ] || [ "$st" = Z ]
}
# wait_for NAME SECONDS CMD...: pass NAME once CMD succeeds; fail NAME (and return 1) when it
# never did within SECONDS, or at once when the server died
wait_for() {
    local name=$1 t=$2 i; shift 2
    for i in $(seq 1 $((t * 10))); do
        if "$@" >/dev/null 2>&1; then pass "$name"; return 0; fi
        if server_dead; then fail "$name" "the server exited ($(tail -n 3 "$SERVER_LOG" | tr '\n' ' ' | cut -c1-300))"; return 1; fi
        sleep 0.1
    done
    fail "$name" "not within ${t}s: $*"
    return 1
}

# log_port LOG PID SED-REGEX: the first port REGEX's \1 finds in LOG, waiting while PID lives
log_port() {
    local log=$1 pid=$2 re=$3 i port=""
    for i in $(seq 1 200); do
        port=$(sed -n "s/$re/\\1/p" "$log" | head -n1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    printf '%s' "$port"
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
    local port
    port=$(log_port "$SERVER_LOG" "$SERVER_PID" '.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*')
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
    if grep -qE 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:' "$SERVER_LOG"; then
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

# jreq METHOD PATH [JSON] [curl args]: a JSON request; every body is kept in $ALL when set
jreq() {
    local m=$1 p=$2 d=${3:-}; shift 3 2>/dev/null || shift $#
    if [ -n "$d" ]; then req "$m" "$p" -H 'Content-Type: application/json' -d "$d" "$@"
    else req "$m" "$p" "$@"; fi
    [ -z "${ALL:-}" ] || printf '%s\n' "$BODY" >>"$ALL"
}

# wait_job ID [seconds]: prints the final state, or timeout:STATE (and returns 1)
wait_job() {
    local id=$1 t=${2:-60} i state=""
    for i in $(seq 1 $((t * 10))); do
        state=$(curl -s "$BASE/api/jobs/$id" | jq -r .state)
        case "$state" in done|failed|cancelled) echo "$state"; return 0;; esac
        server_dead && { echo "server-exited:$state"; return 1; }
        sleep 0.1
    done
    echo "timeout:$state"
    return 1
}
# wait_job_state ID STATE [seconds]: until the job is in STATE
wait_job_state() {
    local i; for i in $(seq 1 $((${3:-60} * 10))); do [ "$(curl -s "$BASE/api/jobs/$1" | jq -r .state)" = "$2" ] && return 0; server_dead && return 1; sleep 0.1; done; return 1
}

# long_speech_wav OUT [repeats]: real speech (the pocketsphinx librivox clips) REPEATS times
long_speech_wav() {
    python3 - "$1" "${2:-2}" <<'PY'
import sys,wave
d="/usr/share/pocketsphinx/test/data/librivox/"
src=[d+l.strip()+".wav" for l in open(d+"fileids") if l.strip()]
fr=[]; p=None
for _ in range(int(sys.argv[2])):
    for s in src:
        w=wave.open(s); p=w.getparams(); fr.append(w.readframes(w.getnframes())); fr.append(b"\0\0"*16000)
o=wave.open(sys.argv[1],"wb"); o.setparams(p); o.writeframes(b"".join(fr)); o.close()
PY
}

finish() {
    if [ "$DEVNULL_OK" = 1 ] && [ ! -c /dev/null ]; then
        DEVNULL_OK=0
        fail "/dev/null is still a character device" "it is now: $(ls -l /dev/null 2>&1); this suite broke it"
    fi
    echo "$SUITE: $PASSED passed, $FAILED failed, $SKIPPED skipped"
    [ "$FAILED" -eq 0 ]
}

# ---- the Vast emulator
#   start_vastsim [vastsim flags]  start $GS_SIM on a free port (also waits for --port-file);
#                                  sets SIM (base URL), SIM_PID, SIM_LOG and SIM_KEY (its account
#                                  key: $SIM_KEY when set); stopped at exit
#   sim_stop                       SIGTERM (SIGKILL after 5 s) and reap
#   sim METHOD PATH [curl args]    call it; the body lands in SBODY
#   fault JSON                     inject a fault (POST /_admin/faults)
#   sim_live_instances             how many instances are not destroyed
#   sim_offers N                   the ids of N offers whose hosts can run the default image
#                                  (CUDA >= 13.0, compute capability >= 7.5), one a line
#                                  (SIM_FIT is that filter, to merge into other searches)
#   sim_inst ID FIELD              a field of the instance in /_admin/state (dir, ssh_port, ...)
#   on_inst ID CMD                 run CMD inside the instance over SSH with the server's key
#                                  ($DATA/ssh/id_ed25519)
#   skip_without_isolation WHAT    when vastsim has no namespaces (not root): skips WHAT (a
#                                  failure under CI=true), finishes and exits
#   boot_instance OFFER_ID         POST /api/vast/boot (jreq); sets BOOTED to the instance id
#   wait_instance ID STATE SECONDS until /api/vast/instances/ID is in STATE (returns 1 early
#                                  on failed); BODY holds the last view
start_vastsim() {
    SIM_KEY=${SIM_KEY:-vast-test-key-$RANDOM$RANDOM}
    SIM_LOG=$TDIR/sim.log
    local a port_file="" prev=""
    for a in "$@"; do [ "$prev" = --port-file ] && port_file=$a; prev=$a; done
    : >"$TDIR/sim.out"    # a restart must not read the last run's URL or port
    [ -z "$port_file" ] || rm -f "$port_file"
    "$GS_SIM" --port 0 --api-key "$SIM_KEY" "$@" >"$TDIR/sim.out" 2>"$SIM_LOG" &
    SIM_PID=$!
    local i
    for i in $(seq 1 200); do
        [ -s "$TDIR/sim.out" ] && { [ -z "$port_file" ] || [ -s "$port_file" ]; } && break
        sleep 0.05
    done
    SIM=$(sed -n '1s/^vastsim listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$TDIR/sim.out")
    [ -n "$SIM" ] || { echo "vastsim did not start:" >&2; cat "$SIM_LOG" >&2; return 1; }
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
SIM_FIT='"cuda_max_good": {"gte": 13.0}, "compute_cap": {"gte": 750}'
sim_offers() {
    curl -sS -X POST -H 'Content-Type: application/json' -d "{\"limit\": $1, $SIM_FIT}" "$SIM/api/v0/bundles/" |
        jq -r '.offers[].id'
}
sim_inst() {
    sim GET /_admin/state
    jq -r --argjson id "$1" --arg f "$2" '.instances[] | select(.id == $id) | .[$f]' <<<"$SBODY"
}
on_inst() {
    ssh -q -i "$DATA/ssh/id_ed25519" -p "$(sim_inst "$1" ssh_port)" -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=5 root@127.0.0.1 "$2"
}
skip_without_isolation() {
    sim GET /_admin/state
    [ "$(jq -r .isolation <<<"$SBODY")" = true ] && return 0
    skip "$1" "vastsim has no namespace isolation here ($(jq -r .isolation_reason <<<"$SBODY")); they need root"
    sim_stop; finish; exit
}
boot_instance() {
    jreq POST /api/vast/boot "{\"offer_id\": $1}"
    BOOTED=$(jget .instance_id)
}
wait_instance() {
    local id=$1 want=$2 n=$(( $3 * 10 )) i s
    for i in $(seq 1 "$n"); do
        req GET "/api/vast/instances/$id"
        s=$(jget .state 2>/dev/null)
        [ "$s" = "$want" ] && return 0
        [ "$s" = failed ] && [ "$want" != failed ] && return 1
        server_dead && return 1
        sleep 0.1
    done
    return 1
}
