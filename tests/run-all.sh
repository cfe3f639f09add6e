#!/usr/bin/env bash
# Runs every suite: unit tests (normal and ASan+UBSan builds), then the integration suite
# against the sanitizer build. Prints one closing "N passed, N failed" line for all of them.
set -u
cd "$(dirname "$0")/.."
total_p=0; total_f=0; rc=0
log=$(mktemp); trap 'rm -f "$log"' EXIT
run_suite() {
    local out
    "$@" 2>&1 | tee "$log"
    local status=${PIPESTATUS[0]}
    out=$(grep -E '^[a-z_-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
    local p f
    p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$out"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$out")
    if [ -z "$out" ]; then echo "suite $* printed no summary" >&2; rc=1; total_f=$((total_f+1)); return; fi
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "suite $* exited $status" >&2; f=1
    fi
    total_p=$((total_p+p)); total_f=$((total_f+f))
    [ "$f" -eq 0 ] || rc=1
}
# the two unit builds run side by side (each is one process running its tests in turn), and
# their outputs are shown one after the other
u1=$(mktemp); u2=$(mktemp); trap 'rm -f "$log" "$u1" "$u2"' EXIT
build/unit_tests >"$u1" 2>&1 & p1=$!
build/asan/unit_tests >"$u2" 2>&1 & p2=$!
wait $p1; s1=$?; wait $p2; s2=$?
run_suite bash -c "cat '$u1'; exit $s1"
run_suite bash -c "cat '$u2'; exit $s2"
GS_BIN=$PWD/build/asan/gpuscribe GS_SIM=$PWD/build/asan/vastsim run_suite tests/integration/run.sh
echo
echo "all: $total_p passed, $total_f failed"
exit $rc
