#!/usr/bin/env bash
# Runs every tests/integration/test_*.sh (or those matching $1) and prints a closing
# "integration: N passed, N failed, N skipped" line. Each script prints its own
# "SUITE: N passed, N failed, N skipped", and its output is shown whole when it ends.
#
# ITEST_JOBS suites run at once (default 3: most suites wait on emulated peers more than they
# compute); the suites named in ALONE (latency assertions) run first, by themselves, then those
# in FIRST (the longest, so that the others fill the second slot beside them). Suites
# are independent: each has its own temp dir, ephemeral ports, vastsim and server.
# After each suite /dev/null must still be a character device: when it was broken (and the
# suite did not say so itself), that is a failure naming the suite that ended and any that
# ran beside it.
set -u
cd "$(dirname "$0")"
ALONE="test_hung_peers.sh"
FIRST="test_long_audio.sh test_gpu_jobs.sh test_remote_worker.sh test_package.sh test_fleet_scale.sh test_bad_inputs.sh"   # the longest: started first
jobs_max=${ITEST_JOBS:-3}
[[ "$jobs_max" =~ ^[1-9][0-9]*$ ]] || jobs_max=3
p=0; f=0; s=0
devnull_ok=0; [ -c /dev/null ] && devnull_ok=1
out_dir=$(mktemp -d /tmp/gs-itest-XXXXXX)
trap 'rm -rf "$out_dir"' EXIT

suites=(); alone=()
for t in $FIRST test_*.sh; do
    [[ " ${suites[*]-} " == *" $t "* ]] && continue
    [ -n "${1:-}" ] && [[ "$t" != *"$1"* ]] && continue
    if [[ " $ALONE " == *" $t "* ]]; then alone+=("$t"); else suites+=("$t"); fi
done
if [ $((${#suites[@]} + ${#alone[@]})) -eq 0 ]; then
    echo "FAIL integration: no test_*.sh matches '${1:-}'"
    echo "integration: 0 passed, 1 failed, 0 skipped"
    exit 1
fi

declare -A pid_of=() started=()
# collect T RC: show T's output and add its counts
collect() {
    local t=$1 rc=$2 out line tp tf ts
    out=$(cat "$out_dir/$t.out")
    echo "== $t"
    echo "$out"
    echo "($t: $((SECONDS - started[$t])) s)"
    if [ "$devnull_ok" = 1 ] && [ ! -c /dev/null ]; then
        devnull_ok=0
        if ! grep -q '^FAIL [^:]*: /dev/null' <<<"$out"; then
            echo "FAIL $t: /dev/null is no longer a character device after it (running beside it: ${!pid_of[*]}) ($(ls -l /dev/null 2>&1))"
            f=$((f + 1))
        fi
    fi
    line=$(grep -E '^[A-Za-z0-9_-]+: [0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n1)
    if [ -z "$line" ]; then
        echo "FAIL $t: printed no summary (exit $rc)"; f=$((f + 1)); return
    fi
    tp=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line"); tf=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    ts=0; [[ "$line" =~ ([0-9]+)\ skipped ]] && ts=${BASH_REMATCH[1]}
    p=$((p + tp)); f=$((f + tf)); s=$((s + ts))
    if [ "$rc" -ne 0 ] && [ "$tf" -eq 0 ]; then echo "FAIL $t: exit $rc"; f=$((f + 1)); fi
}
start() {
    started[$1]=$SECONDS
    bash "$1" >"$out_dir/$1.out" 2>&1 &
    pid_of[$1]=$!
}
# wait_one: wait for any running suite, collect it
wait_one() {
    local done_pid rc t
    wait -n -p done_pid "${pid_of[@]}"; rc=$?
    for t in "${!pid_of[@]}"; do
        if [ "${pid_of[$t]}" = "$done_pid" ]; then unset "pid_of[$t]"; collect "$t" "$rc"; return; fi
    done
}

for t in "${alone[@]+"${alone[@]}"}"; do start "$t"; wait_one; done
for t in "${suites[@]+"${suites[@]}"}"; do
    while [ "${#pid_of[@]}" -ge "$jobs_max" ]; do wait_one; done
    start "$t"
done
while [ "${#pid_of[@]}" -gt 0 ]; do wait_one; done
echo "integration: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
