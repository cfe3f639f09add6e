#!/usr/bin/env bash
# The lean worker and its source bundle: build/gpuscribe-worker links none of FFmpeg's
# libraries, libssh or SQLite; the bundle (what the controller sends to instances) unpacked
# into an empty directory builds the worker there with `make worker` alone, holds exactly the
# worker's sources (no test, tool or controller file), and is deterministic (the same source
# gives the same sha256, which is what instances are stamped with).
source "$(dirname "$0")/lib.sh"

W=$ROOT/build/gpuscribe-worker
B=$ROOT/build/gpuscribe-src.tar.gz
for f in "$W" "$B" "$ROOT/build/gpuscribe-src.id"; do
    [ -e "$f" ] || { fail "built: $f" "missing (make all)"; finish; exit 1; }
done
libs=$(ldd "$W" | awk '{print $1}')
check "the worker links libmicrohttpd, jansson and libcurl" bash -c "grep -q libmicrohttpd <<<'$libs' && grep -q libjansson <<<'$libs' && grep -q libcurl <<<'$libs'"
check "the worker links no FFmpeg library" bash -c "! grep -qE '^libav|^libsw' <<<'$libs'"
check "the worker links no libssh" bash -c "! grep -qE '^libssh\\.so' <<<'$libs'"
check "the worker links no SQLite" bash -c "! grep -q '^libsqlite3' <<<'$libs'"
check "the controller does link them (the check can see them)" bash -c "ldd '$ROOT/build/gpuscribe' | grep -q libavformat && ldd '$ROOT/build/gpuscribe' | grep -q 'libssh\\.so' && ldd '$ROOT/build/gpuscribe' | grep -q libsqlite3"
out=$("$W" version --features)
check "the worker reports its engines" grep -qw sphinx <<<"$out"

# the bundle, built where nothing else is
mkdir -p "$TDIR/empty"
tar -xzf "$B" -C "$TDIR/empty"
files=$(cd "$TDIR/empty" && find . -type f | sed 's|^\./||' | sort)
check "the bundle has the Makefile, VERSION and setup.sh" bash -c "grep -qx Makefile <<<'$files' && grep -qx VERSION <<<'$files' && grep -qx remote/setup.sh <<<'$files'"
check "the bundle has no tests, tools or controller modules" bash -c "! grep -qE '^(tests|tools|web)/|^src/(store|ssh|audio|fleet|api|jobs)/|^src/main\\.c' <<<'$files'"
if (cd "$TDIR/empty" && make worker) >"$TDIR/build.log" 2>&1; then pass "make worker builds the unpacked bundle"; else
    fail "make worker builds the unpacked bundle" "$(tail -n 15 "$TDIR/build.log")"
fi
check "the built worker runs" "$TDIR/empty/build/gpuscribe-worker" version
check "the bundle's build does not ask pkg-config for the controller's libraries" bash -c "! grep -qE 'libavformat|libssh|sqlite3' '$TDIR/build.log'"
# every C file in the bundle is compiled by make worker
unused=""
for c in $(grep '\.c$' <<<"$files"); do
    [ -f "$TDIR/empty/build/worker/obj/${c%.c}.o" ] || unused="$unused $c"
done
check "every C file in the bundle is part of the worker${unused:+ (unused:$unused)}" test -z "$unused"

# deterministic: the same tree gives the same bundle
rebuild() { (cd "$ROOT" && rm -f build/gpuscribe-src.tar.gz && make -s build/gpuscribe-src.tar.gz) >/dev/null 2>&1; }
rebuild
id1=$(cat "$ROOT/build/gpuscribe-src.id")
sleep 1.1   # other file times: they must not reach the bundle
rebuild
check "the bundle is rebuilt the same (same sha256)" test "$(sha256sum "$B" | cut -c1-64)" = "$id1"
finish
