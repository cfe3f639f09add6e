#!/usr/bin/env bash
# Runs every tests/integration/test_*.sh (or those matching $1) and prints a closing
# "integration: N passed, N failed, N skipped" line. Each script prints its own
# "SUITE: N passed, N failed, N skipped". After each script /dev/null must still be a
# character device: when a script broke it (and did not say so itself), that is a failure.
set -u
cd "$(dirname "$0")"
p=0; f=0; s=0; matched=0
devnull_ok=0; [ -c /dev/null ] && devnull_ok=1
for t in test_*.sh; do
    [ -n "${1:-}" ] && [[ "$t" != *"$1"* ]] && continue
    matched=$((matched + 1))
    echo "== $t"
    t0=$SECONDS
    out=$(bash "$t" 2>&1); rc=$?
    echo "$out"
    echo "($t: $((SECONDS - t0)) s)"
    if [ "$devnull_ok" = 1 ] && [ ! -c /dev/null ]; then
        devnull_ok=0
        if ! grep -q '^FAIL [^:]*: /dev/null' <<<"$out"; then
            echo "FAIL $t: /dev/null is no longer a character device after it ($(ls -l /dev/null 2>&1))"
            f=$((f + 1))
        fi
    fi
    line=$(grep -E '^[A-Za-z0-9_-]+: [0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n1)
    if [ -z "$line" ]; then
        echo "FAIL $t: printed no summary (exit $rc)"; f=$((f + 1)); continue
    fi
    tp=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line"); tf=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    ts=0; [[ "$line" =~ ([0-9]+)\ skipped ]] && ts=${BASH_REMATCH[1]}
    p=$((p + tp)); f=$((f + tf)); s=$((s + ts))
    if [ "$rc" -ne 0 ] && [ "$tf" -eq 0 ]; then echo "FAIL $t: exit $rc"; f=$((f + 1)); fi
done
if [ "$matched" -eq 0 ]; then echo "FAIL integration: no test_*.sh matches '${1:-}'"; f=$((f + 1)); fi
echo "integration: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
