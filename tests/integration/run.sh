#!/usr/bin/env bash
# Runs every tests/integration/test_*.sh (or those matching $1) and prints a closing
# "integration: N passed, N failed" line. Each script prints its own "SUITE: N passed, N failed".
set -u
cd "$(dirname "$0")"
p=0; f=0
for t in test_*.sh; do
    [ -n "${1:-}" ] && [[ "$t" != *"$1"* ]] && continue
    echo "== $t"
    out=$(bash "$t" 2>&1); rc=$?
    echo "$out"
    line=$(grep -E '^[A-Za-z0-9_-]+: [0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n1)
    if [ -z "$line" ]; then
        echo "FAIL $t: printed no summary (exit $rc)"; f=$((f + 1)); continue
    fi
    tp=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line"); tf=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    p=$((p + tp)); f=$((f + tf))
    if [ "$rc" -ne 0 ] && [ "$tf" -eq 0 ]; then echo "FAIL $t: exit $rc"; f=$((f + 1)); fi
done
echo "integration: $p passed, $f failed"
[ "$f" -eq 0 ]
