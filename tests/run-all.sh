#!/usr/bin/env bash
# Runs every suite: unit tests (normal, then ASan+UBSan build; each runner runs TEST_JOBS tests
# at once, default the online CPUs), then the integration suite against the sanitizer build.
# Prints one closing "all: N passed, N failed, N skipped" line for all of them. After each
# suite /dev/null must still be a character device; if not, that is a failure named after the
# suite that ran last. CI=true (the runners' rule) turns an unexpected skip into a failure.
set -u
cd "$(dirname "$0")/.."
total_p=0; total_f=0; total_s=0; rc=0
log=$(mktemp); trap 'rm -f "$log"' EXIT
devnull_ok=1
if [ ! -c /dev/null ]; then
    echo "FAIL all: /dev/null is not a character device before any suite ran ($(ls -l /dev/null 2>&1))"
    total_f=1; rc=1; devnull_ok=0
fi
# run_suite NAME CMD...: runs CMD, adds its summary line's counts
run_suite() {
    local name=$1; shift
    local t0=$SECONDS
    "$@" 2>&1 | tee "$log"
    local status=${PIPESTATUS[0]} out p f s=0
    if [ "$devnull_ok" = 1 ] && [ ! -c /dev/null ]; then
        devnull_ok=0
        if ! grep -q '^FAIL [^:]*: /dev/null' "$log"; then
            echo "FAIL all: /dev/null is no longer a character device after the $name suite ($(ls -l /dev/null 2>&1))"
            total_f=$((total_f + 1)); rc=1
        fi
    fi
    out=$(grep -E '^[a-z_-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
    if [ -z "$out" ]; then echo "FAIL all: the $name suite printed no summary (exit $status)"; rc=1; total_f=$((total_f+1)); return; fi
    p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$out"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$out")
    [[ "$out" =~ ([0-9]+)\ skipped ]] && s=${BASH_REMATCH[1]}
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL all: the $name suite exited $status"; f=1
    fi
    echo "($name: $((SECONDS - t0)) s)"
    total_p=$((total_p+p)); total_f=$((total_f+f)); total_s=$((total_s+s))
    [ "$f" -eq 0 ] || rc=1
}
# The root file systems two integration suites need (debootstrap: minutes, once per cache)
# are made in the background (`make test` starts them before the build; again here, which
# does nothing when they are made or being made); the suites' own calls of the same scripts
# wait on their locks.
tests/images/prewarm.sh
run_suite unit build/unit_tests
run_suite unit-asan build/asan/unit_tests
GS_BIN=$PWD/build/asan/gpuscribe GS_SIM=$PWD/build/asan/vastsim run_suite integration tests/integration/run.sh
# no maker left running behind us
for l in "${GS_IMAGE_CACHE:-/var/cache/gpuscribe-tests}"/.debian1[12].lock; do
    [ -e "$l" ] && command -v flock >/dev/null && flock "$l" true
done
echo
echo "all: $total_p passed, $total_f failed, $total_s skipped"
exit $rc
