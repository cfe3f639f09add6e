#!/usr/bin/env bash
# Jobs on a GPU instance: a vastsim instance booted to ready runs the job in its worker,
# through the SSH tunnel (asserted from the instance's side), and every fault ends with the
# job done exactly once: all SSH connections dropped mid-job, the worker killed mid-job, SSH
# refused for 10 s mid-job, the instance destroyed mid-job.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 31 || { fail "vastsim starts"; finish; exit 1; }
sim GET /_admin/state
if [ "$(jq -r .isolation <<<"$SBODY")" != true ]; then
    echo "skip: vastsim has no namespace isolation here; GPU job tests need root"
    pass "skipped without isolation"; sim_stop; finish; exit 0
fi
A=$TDIR/a; mkdir -p "$A"
S1="the quick brown fox jumps over the lazy dog"
espeak-ng -v en-us -s 150 -w "$A/s1.wav" "$S1"
python3 - "$A" <<'PY'
import sys,wave
d="/usr/share/pocketsphinx/test/data/librivox/"
src=[d+l.strip()+".wav" for l in open(d+"fileids") if l.strip()]
fr=[]; p=None
for _ in range(2):
    for s in src:
        w=wave.open(s); p=w.getparams(); fr.append(w.readframes(w.getnframes())); fr.append(b"\0\0"*16000)
o=wave.open(sys.argv[1]+"/long.wav","wb"); o.setparams(p); o.writeframes(b"".join(fr)); o.close()
PY
export DATA=$TDIR/data
touch "$TDIR/app.env"
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx -- --env-file "$TDIR/app.env" ||
    { fail "server starts"; sim_stop; finish; exit 1; }
OFFER=$(curl -sS -X POST -H 'Content-Type: application/json' -d '{"limit": 5}' "$SIM/api/v0/bundles/" | jq -r '.offers[0].id')
req POST /api/vast/boot -H 'Content-Type: application/json' -d "{\"offer_id\": $OFFER}"
VID=$(jget .instance_id)
inst_state() { curl -s "$BASE/api/vast/instances/$VID" | jq -r .state; }
for i in $(seq 1 600); do s=$(inst_state); [ "$s" = ready ] || [ "$s" = failed ] && break; sleep 0.1; done
if [ "$(inst_state)" != ready ]; then
    fail "instance ready" "$(curl -s "$BASE/api/vast/instances/$VID" | jq -c '{state,error,log:.log[-5:]}')"
    tail -n 30 "$SERVER_LOG"
    stop_server; sim_stop; finish; exit 1
fi
pass "instance ready"
port=$(sim GET /_admin/state; jq -r --argjson id "$VID" '.instances[] | select(.id == $id) | .ssh_port' <<<"$SBODY")
on_inst() {
    ssh -q -i "$DATA/ssh/id_ed25519" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o BatchMode=yes -o ConnectTimeout=5 root@127.0.0.1 "$1"
}
worker_done() { on_inst 'curl -s http://127.0.0.1:8765/health' | jq -r .jobs_done; }
job_state() { curl -s "$BASE/api/jobs/$1" | jq -r .state; }
wait_job() { local i; for i in $(seq 1 $((${2:-90} * 10))); do case $(job_state "$1") in done|failed|cancelled) return 0;; esac; sleep 0.1; done; return 1; }
running_on_worker() { local i; for i in $(seq 1 200); do on_inst 'curl -s http://127.0.0.1:8765/health' | jq -e .busy >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# ---- a job through the tunnel, seen from the instance
req POST /api/jobs -F "file=@$A/s1.wav"
J=$(jget .id)
wait_job "$J" 60
req GET "/api/jobs/$J"
expect "job done on the GPU instance" 200 '.state == "done" and .backend == "remote" and .attempts == 1 and .instance_id != null'
check "the instance's worker ran it (jobs_done 1)" test "$(worker_done)" = 1
check "no audio or transcript left on the instance" bash -c "test -z \"\$(ssh -q -i '$DATA/ssh/id_ed25519' -p $port -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes root@127.0.0.1 'find /workspace -name \"*.wav\" 2>/dev/null')\""

# ---- all SSH connections dropped mid-job
req POST /api/jobs -F "file=@$A/long.wav"
J=$(jget .id)
running_on_worker
fault '{"type": "ssh_drop"}'
wait_job "$J" 120
req GET "/api/jobs/$J"
expect "SSH dropped mid-job: done once" 200 '.state == "done" and .backend == "remote" and .error == null'
check "the worker completed it once (jobs_done 2)" test "$(worker_done)" = 2

# ---- the worker killed mid-job (the supervisor restarts it; the job is resumed or rerun)
req POST /api/jobs -F "file=@$A/long.wav"
J=$(jget .id)
running_on_worker
on_inst 'kill -KILL $(cat /workspace/gpuscribe/worker.pid)' || true   # no pid namespace: never pkill
wait_job "$J" 150
req GET "/api/jobs/$J"
expect "worker killed mid-job: done once" 200 '.state == "done" and .backend == "remote"'

# ---- SSH refused for 10 s mid-job
req POST /api/jobs -F "file=@$A/long.wav"
J=$(jget .id)
running_on_worker
fault "{\"type\": \"ssh_refuse\", \"seconds\": 10}"
fault '{"type": "ssh_drop"}'
wait_job "$J" 150
req GET "/api/jobs/$J"
expect "SSH refused 10 s mid-job: done once" 200 '.state == "done" and .backend == "remote"'
check "instance ready again" test "$(inst_state)" = ready

# ---- the instance destroyed mid-job: the job goes back to the queue and finishes on the CPU
req POST /api/jobs -F "file=@$A/long.wav"
J=$(jget .id)
running_on_worker
sim DELETE "/api/v0/instances/$VID/" -H "Authorization: Bearer $SIM_KEY"
wait_job "$J" 240
req GET "/api/jobs/$J"
expect "instance destroyed mid-job: done once, elsewhere" 200 '.state == "done" and .backend == "local"'
req GET "/api/jobs?state=done"
expect "five jobs, each done once" 200 '.total == 5'
stop_server
check "no instance left running" test "$(sim_live_instances)" = 0
sim_stop
finish
