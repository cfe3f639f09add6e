#!/usr/bin/env bash
# Runs every benchmark script in bench/ and prints their tables.
set -u
cd "$(dirname "$0")"
for b in *.sh; do
    [ "$b" = run.sh ] && continue
    echo "== $b"
    bash "$b"
    echo
done
