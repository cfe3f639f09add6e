#!/usr/bin/env bash
# sim_chroot: vastsim started inside a chroot refuses namespace isolation with a clear
# message, instead of entering instance namespaces that would land in the machine's real
# root. The chroot is a root of its own (its /usr, /etc and vastsim's directory bound in,
# /proc mounted) made in a private mount namespace (unshare -m): nothing outside the test
# changes, and every mount ends with the namespace.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then skip "vastsim in a chroot" "needs root (chroot, mount namespaces)"; finish; exit; fi
R=$TDIR/root; mkdir -p "$R/usr" "$R/etc" "$R/proc" "$R/sim" "$R/tmp"
for d in lib lib64 bin sbin; do [ -L "/$d" ] && ln -s "usr/$d" "$R/$d"; done
unshare -m --propagation private bash -c '
    R=$1 SIM=$2
    mount --rbind /usr "$R/usr" && mount --bind /etc "$R/etc" && mount -t proc proc "$R/proc" &&
        mount --bind "$(dirname "$SIM")" "$R/sim" &&
        exec chroot "$R" "/sim/$(basename "$SIM")" --port 0 --api-key made-up-sim-key
' _ "$R" "$GS_SIM" >"$TDIR/sim.out" 2>"$TDIR/sim.err" &
CPID=$!
at_exit 'kill $CPID 2>/dev/null; wait $CPID 2>/dev/null'
wait_for "vastsim started inside the chroot" 10 test -s "$TDIR/sim.out"
URL=$(sed -n '1s/^vastsim listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$TDIR/sim.out")
check "it answers on loopback" test -n "$URL"
S=$(curl -sS "$URL/_admin/state")
check "isolation refused" jq -e '.isolation == false' <<<"$S"
check "the reason names the chroot" jq -e '.isolation_reason | test("inside a chroot")' <<<"$S"
check "and it says so loudly in its log" grep -q "refusing namespace isolation: vastsim runs inside a chroot" "$TDIR/sim.err"
kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null

# the same chroot without /proc: it cannot tell, so it refuses as well
unshare -m --propagation private bash -c '
    R=$1 SIM=$2
    mount --rbind /usr "$R/usr" && mount --bind /etc "$R/etc" &&
        mount --bind "$(dirname "$SIM")" "$R/sim" &&
        exec chroot "$R" "/sim/$(basename "$SIM")" --port 0 --api-key made-up-sim-key
' _ "$R" "$GS_SIM" >"$TDIR/sim2.out" 2>"$TDIR/sim2.err" &
CPID=$!
wait_for "vastsim started in a chroot without /proc" 10 test -s "$TDIR/sim2.out"
URL=$(sed -n '1s/^vastsim listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$TDIR/sim2.out")
S=$(curl -sS "$URL/_admin/state")
check "without /proc: isolation refused, saying it cannot tell" \
    jq -e '.isolation == false and (.isolation_reason | test("cannot tell"))' <<<"$S"
kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null
check "the host's /dev/null is still a character device" test -c /dev/null
check "no mount of the test is left on the host" bash -c "! grep -q '$R' /proc/self/mountinfo"
finish
