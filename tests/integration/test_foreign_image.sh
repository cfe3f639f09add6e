#!/usr/bin/env bash
# A GPU image that is not the controller's distribution, as a real boot meets it: vastsim runs
# the instance in a Debian 11 root of its own (tests/images/debian11.sh: gcc 10, libmicrohttpd
# 0.9.72, jansson 2.13, glibc 2.31, no FFmpeg, libssh or SQLite), where neither the controller
# nor its own build of the worker can start. Setup must build gpuscribe-worker there from the
# source bundle, for real; the instance becomes ready, and a job is transcribed by that worker
# (asserted on the instance: the process serving is the worker built there). A second setup
# builds nothing (the worker is stamped with the source's sha256). The image's files stay the
# image's: what the instance writes lands in its own overlay.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
for tool in curl jq ssh ssh-keygen; do
    command -v $tool >/dev/null || { fail "prerequisite $tool" "not installed"; finish; exit 1; }
done

IMG=$("$ROOT/tests/images/debian11.sh" 2>"$TDIR/image.err")
if [ -z "$IMG" ]; then
    fail "the Debian 11 image is made" "$(tail -n 5 "$TDIR/image.err")"; finish; exit 1
fi
pass "the Debian 11 image is there ($IMG)"
IMAGE=gpuscribe-test/debian11
SIM_KEY=vast-img-key-$RANDOM$RANDOM
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 31 --image "$IMAGE=$IMG" ||
    { fail "vastsim starts"; finish; exit 1; }
skip_without_isolation "images"
sum_before=$(cd "$IMG" && find etc usr/lib -xdev -newer .gpuscribe-image 2>/dev/null | wc -l)

DATA=$TDIR/data
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" VAST_IMAGE="$IMAGE:latest" ENGINE=sphinx ||
    { fail "server starts"; finish; exit 1; }
mapfile -t OFFERS < <(sim_offers 5)
boot_instance "${OFFERS[0]}"
ID=$BOOTED
check "boot answered" test -n "$ID"
if wait_instance "$ID" ready 240; then pass "boot on the Debian 11 image -> ready"; else
    fail "boot on the Debian 11 image -> ready" "${BODY:0:800}"
    on_inst "$ID" 'tail -n 30 /workspace/gpuscribe/build.log /workspace/gpuscribe/setup.out' 2>&1 | sed 's/^/    | /'
fi

# inside: Debian 11, the controller's binaries cannot run, the worker was built there
out=$(on_inst "$ID" 'cat /etc/debian_version; test -e /usr/lib/x86_64-linux-gnu/libavformat.so.59 && echo HAS-FFMPEG; ldd --version | head -n 1')
check "the instance runs Debian 11" grep -q '^11\.' <<<"$out"
check "the instance has none of the controller's libraries" bash -c "! grep -q HAS-FFMPEG <<<'$out'"
check "the instance's glibc is 2.31" grep -q '2\.31' <<<"$out"
scp -q -i "$DATA/ssh/id_ed25519" -P "$(sim_inst "$ID" ssh_port)" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o BatchMode=yes "$ROOT/build/gpuscribe" root@127.0.0.1:/tmp/controller
out=$(on_inst "$ID" '/tmp/controller version 2>&1; echo rc=$?')
check "the controller's binary cannot start there" bash -c "grep -q 'rc=127' <<<'$out' && grep -qE 'error while loading shared libraries: lib[a-z0-9]+\\.so\\.[0-9]+: cannot open' <<<'$out'"
req GET "/api/vast/instances/$ID"
expect "setup log: the controller's worker could not run, the worker was built" 200 \
    '([.log[] | select(test("cannot run the sphinx engine here: building from source"))] | length) == 1 and ([.log[] | select(test("^built gpuscribe-worker .* with engines: sphinx"))] | length) == 1'
expect "setup log: each step timed" 200 \
    '[.log[] | select(test("^GPUSCRIBE-STEP (packages|build|worker|models) [0-9.]+$"))] | length == 4'
out=$(on_inst "$ID" 'cd /workspace/gpuscribe && p=$(cat worker.pid) && readlink /proc/$p/exe && ldd ./gpuscribe-worker | sed -n "s/^[[:space:]]*\(lib[^ ]*\).*/\1/p" | tr "\n" " "; echo; cat .worker-source')
exe=$(sed -n 1p <<<"$out")
libs=$(sed -n 2p <<<"$out")
stamp=$(sed -n 3p <<<"$out")
check "the worker serving is the one built on the instance" test "$exe" = /workspace/gpuscribe/gpuscribe-worker
check "the built worker links the image's libmicrohttpd 0.9.72 (.so.12) and pocketsphinx" bash -c "grep -q 'libmicrohttpd.so.12' <<<'$libs' && grep -q libpocketsphinx <<<'$libs'"
check "the built worker links no FFmpeg, libssh or SQLite" bash -c "! grep -qE 'libav|libssh\\.so|libsqlite3' <<<'$libs'"
check "the worker is stamped with the bundle's sha256" test "$stamp" = "$(cat "$ROOT/build/gpuscribe-src.id")"
check "the prebuilt worker is not kept" bash -c "! on_inst $ID 'test -e /workspace/gpuscribe/gpuscribe-worker.prebuilt' 2>/dev/null"

# a job through that worker
long_speech_wav "$TDIR/speech.wav" 1
req POST /api/jobs -F "file=@$TDIR/speech.wav"
JOB=$(jget .id)
expect "job accepted" 202 '.id != null'
st=$(wait_job "$JOB" 120)
check "job done on the instance's worker" test "$st" = done
req GET "/api/jobs/$JOB"
expect "job ran on the instance's worker" 200 '.backend == "remote" and .instance_id != null and .engine == "sphinx" and .attempts == 1'
req GET "/api/jobs/$JOB/transcript?format=txt"
check "transcript has words" test "$(wc -w <<<"$BODY")" -ge 5
out=$(on_inst "$ID" 'cat /workspace/gpuscribe/worker.log')
check "the instance's worker log has the job" grep -q "job $JOB" <<<"$out"

# setup again: nothing is built again
out=$(on_inst "$ID" "cd /workspace/gpuscribe && sh setup.sh --engine sphinx --model large-v3 --port 8765 --src-id $stamp; echo rc=\$?")
check "second setup succeeds" grep -q 'rc=0' <<<"$out"
check "second setup keeps the built worker" grep -q 'worker already installed' <<<"$out"
check "second setup builds nothing" bash -c "! grep -qiE 'installing:|building' <<<'$out'"

# the image itself is untouched: the instance's writes went to its overlay
sum_after=$(cd "$IMG" && find etc usr/lib -xdev -newer .gpuscribe-image 2>/dev/null | wc -l)
check "the image's files are unchanged" test "$sum_before" = "$sum_after"
check "the image has no worker in it" test ! -e "$IMG/workspace/gpuscribe/gpuscribe-worker"

jreq POST "/api/vast/destroy/$ID"
expect "destroy" 200 '.success == true'
stop_server
check "no instance left" test "$(sim_live_instances)" = 0
finish
