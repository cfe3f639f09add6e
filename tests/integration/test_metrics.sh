#!/usr/bin/env bash
# GET /metrics (Prometheus text format 0.0.4) against vastsim: a boot to ready, a job on the
# GPU worker, the destroy, jobs on the CPU, a cancelled job; then the page passes
# `promtool check metrics`, and its values match /api/cost (total and per instance) and
# /api/jobs (jobs by state); deleting a done job and restarting the controller never lower
# a counter. Auth: open on loopback without tokens; with API_TOKEN, 401 without a token,
# 200 with METRICS_TOKEN or API_TOKEN (METRICS_TOKEN opens nothing under /api/). The
# Grafana dashboard (contrib/grafana/gpuscribe.json) is valid JSON and uses only metrics
# the page has.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DASH=$ROOT/contrib/grafana/gpuscribe.json
PAGE=$TDIR/metrics.txt

# metrics [curl args]: GET /metrics into $PAGE; STATUS and CTYPE set
metrics() {
    STATUS=$(curl -sS -o "$PAGE" -w '%{http_code}' -D "$TDIR/mh" "$@" "$BASE/metrics" 2>"$TDIR/curl.err") || true
    CTYPE=$(tr -d '\r' <"$TDIR/mh" | sed -n 's/^[Cc]ontent-[Tt]ype: //p' | head -n1)
}
# mval SERIES: the value of one exact series line (name{labels}) in $PAGE, "" when absent
mval() { awk -v s="$1" '$1 == s { print $2; exit }' "$PAGE"; }
# approx A B: equal within 1e-9
approx() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(0 if abs(a-b)<=1e-9 else 1)" "$1" "$2" 2>/dev/null; }
promtool_ok() { promtool check metrics <"$PAGE" >"$TDIR/promtool.out" 2>&1; }

if ! command -v promtool >/dev/null; then
    skip "promtool check metrics" "promtool is not installed (Debian package prometheus: scripts/setup.sh --test)"
fi
check "the Grafana dashboard is valid JSON" jq -e . "$DASH"

start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 51 || { fail "vastsim starts"; finish; exit 1; }
skip_without_isolation "metrics with a booted instance"
A=$TDIR/a; mkdir -p "$A"
espeak-ng -v en-us -s 150 -w "$A/s1.wav" "the quick brown fox jumps over the lazy dog"
espeak-ng -v en-us -s 150 -w "$A/s2.wav" "metrics are counted from the store"
long_speech_wav "$A/long.wav" 2
export DATA=$TDIR/data
touch "$TDIR/app.env"
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx BUDGET_DAILY_USD=5 \
    -- --env-file "$TDIR/app.env" || { fail "server starts"; sim_stop; finish; exit 1; }

# ---- before anything happened
metrics
check "/metrics is open on loopback without tokens (200)" test "$STATUS" = 200
check "content type is text/plain; version=0.0.4; charset=utf-8" \
    test "$CTYPE" = "text/plain; version=0.0.4; charset=utf-8"
if command -v promtool >/dev/null; then
    if promtool_ok; then pass "promtool check metrics (fresh server)"
    else fail "promtool check metrics (fresh server)" "$(head -n 20 "$TDIR/promtool.out")"; fi
fi
check "every family has HELP and TYPE" test "$(grep -c '^# HELP ' "$PAGE")" = "$(grep -c '^# TYPE ' "$PAGE")"
check "no jobs yet: gpuscribe_jobs{state=\"done\"} 0" test "$(mval 'gpuscribe_jobs{state="done"}')" = 0
check "budget limit shown (BUDGET_DAILY_USD=5)" test "$(mval 'gpuscribe_budget_limit_dollars{period="daily"}')" = 5

# ---- a boot to ready: instance and tunnel metrics
boot_instance "$(sim_offers 5 | head -n1)"
VID=$BOOTED
if ! wait_instance "$VID" ready 60; then
    fail "instance ready" "$(jq -c '{state,error,log:.log[-5:]}' <<<"$BODY")"
    tail -n 30 "$SERVER_LOG"; stop_server; sim_stop; finish; exit 1
fi
pass "instance $VID ready"
metrics
check "gpuscribe_instances{state=\"ready\"} 1" test "$(mval 'gpuscribe_instances{state="ready"}')" = 1
check "the ready instance's tunnel is up" \
    test "$(mval "gpuscribe_tunnel_state{instance_id=\"$VID\",state=\"up\"}")" = 1
check "only one tunnel state is 1" \
    test "$(grep -c "^gpuscribe_tunnel_state{instance_id=\"$VID\",state=\"[a-z]*\"} 1$" "$PAGE")" = 1
check "its reconnects counter is there" test -n "$(mval "gpuscribe_tunnel_reconnects_total{instance_id=\"$VID\"}")"
check "the running instance costs something (ledger)" \
    python3 -c "import sys; sys.exit(0 if float('$(mval "gpuscribe_instance_cost_dollars_total{instance_id=\"$VID\"}")' or 0) > 0 else 1)"

# ---- a job on the GPU worker, then the destroy, then jobs on the CPU
req POST /api/jobs -F "file=@$A/s1.wav"
J1=$(jget .id)
check "job on the GPU worker done" test "$(wait_job "$J1" 60)" = done
req GET "/api/jobs/$J1"
expect "it ran remotely" 200 '.backend == "remote"'
J1_AUDIO=$(jget .audio_duration)
J1_GPU=$(jget .gpu_seconds)
jreq POST "/api/vast/destroy/$VID"
expect "destroy" 200 '.success == true'
req POST /api/jobs -F "file=@$A/s2.wav"
J2=$(jget .id)
check "job on the CPU done" test "$(wait_job "$J2" 60)" = done
req POST /api/jobs -F "file=@$A/long.wav"
J3=$(jget .id)
jreq DELETE "/api/jobs/$J3"
expect "a job cancelled" 200
check "the cancelled job is final" test "$(wait_job "$J3" 30)" = cancelled

# ---- the values agree with /api/cost and /api/jobs (nothing accrues: no instance is live)
metrics
if command -v promtool >/dev/null; then
    if promtool_ok; then pass "promtool check metrics (after jobs, a boot and a destroy)"
    else fail "promtool check metrics (after jobs, a boot and a destroy)" "$(head -n 20 "$TDIR/promtool.out")"; fi
fi
req GET /api/cost
COST=$BODY
check "total cost = /api/cost totals.all_time" approx "$(mval gpuscribe_cost_dollars_total)" "$(jq .totals.all_time <<<"$COST")"
check "total cost is not zero" python3 -c "import sys; sys.exit(0 if float('$(mval gpuscribe_cost_dollars_total)') > 0 else 1)"
n=0; bad=""
while read -r id cost; do
    n=$((n + 1))
    approx "$(mval "gpuscribe_instance_cost_dollars_total{instance_id=\"$id\"}")" "$cost" ||
        bad="$bad $id: metrics $(mval "gpuscribe_instance_cost_dollars_total{instance_id=\"$id\"}") vs cost $cost;"
done < <(jq -r '.instances[] | "\(.id) \(.cost_usd)"' <<<"$COST")
if [ "$n" -ge 1 ] && [ -z "$bad" ]; then pass "per-instance cost = /api/cost instances[].cost_usd ($n instance(s))"
else fail "per-instance cost = /api/cost instances[].cost_usd" "n=$n$bad"; fi
check "budget spent (daily) = /api/cost budgets.daily.spent" \
    approx "$(mval 'gpuscribe_budget_spent_dollars{period="daily"}')" "$(jq .budgets.daily.spent <<<"$COST")"
bad=""
for s in queued running done failed cancelled; do
    req GET "/api/jobs?state=$s&limit=1"
    [ "$(mval "gpuscribe_jobs{state=\"$s\"}")" = "$(jget .total)" ] || bad="$bad $s: metrics $(mval "gpuscribe_jobs{state=\"$s\"}") vs api $(jget .total);"
done
if [ -z "$bad" ]; then pass "jobs by state = /api/jobs?state= totals"; else fail "jobs by state = /api/jobs?state= totals" "$bad"; fi
check "2 done, 1 cancelled" test "$(mval 'gpuscribe_jobs{state="done"}'),$(mval 'gpuscribe_jobs{state="cancelled"}')" = "2,1"
check "queue empty (jobs and audio seconds)" test "$(mval gpuscribe_queue_jobs),$(mval gpuscribe_queue_audio_seconds)" = "0,0"
REMOTE_AUDIO=$(mval 'gpuscribe_audio_transcribed_seconds_total{engine="sphinx",backend="remote"}')
check "audio seconds on the GPU = the remote job's audio_duration" approx "$REMOTE_AUDIO" "$J1_AUDIO"
check "GPU seconds = the remote job's gpu_seconds" \
    approx "$(mval 'gpuscribe_gpu_seconds_total{engine="sphinx",backend="remote"}')" "$J1_GPU"
LOCAL_DONE=$(mval 'gpuscribe_jobs_done_total{engine="sphinx",backend="local"}')
check "one job done on the CPU (engine sphinx, backend local)" test "$LOCAL_DONE" = 1
check "no retries" test "$(mval gpuscribe_job_retries_total)" = 0
check "instances: 1 destroyed, 0 ready" \
    test "$(mval 'gpuscribe_instances{state="destroyed"}'),$(mval 'gpuscribe_instances{state="ready"}')" = "1,0"
check "no tunnel series once the instance is gone" test -z "$(grep '^gpuscribe_tunnel_state{' "$PAGE")"
check "Vast API: a create (PUT) and a destroy (DELETE) counted" \
    test "$(mval 'gpuscribe_vast_api_calls_total{method="PUT"}')" -ge 1 -a \
         "$(mval 'gpuscribe_vast_api_calls_total{method="DELETE"}')" -ge 1
check "HTTP requests counted by route pattern" \
    test "$(mval 'gpuscribe_http_requests_total{route="/api/jobs/{id}",method="GET",code="200"}')" -ge 1
check "HTTP latency histogram with +Inf" \
    test -n "$(mval 'gpuscribe_http_request_duration_seconds_bucket{route="/api/jobs",method="POST",status_class="2xx",le="+Inf"}')"
check "never a raw path (no job id in the page)" test -z "$(grep -F -e "$J1" -e "$J2" "$PAGE")"
check "no secret in the page" test -z "$(grep -F "$SIM_KEY" "$PAGE")"
# every metric the dashboard uses is on the page
missing=""
for m in $(grep -o 'gpuscribe_[a-z_]*' "$DASH" | sort -u); do
    base=${m%_bucket}; base=${base%_sum}; base=${base%_count}
    grep -q "^# TYPE $base " "$PAGE" || missing="$missing $m"
done
if [ -z "$missing" ]; then pass "the dashboard uses only metrics the page has"
else fail "the dashboard uses only metrics the page has" "missing:$missing"; fi

# ---- counters never go down: a deleted job, a restart
jreq DELETE "/api/jobs/$J2"
expect "a done job deleted" 200
metrics
check "deleting a done job leaves the CPU job counter at 1" \
    test "$(mval 'gpuscribe_jobs_done_total{engine="sphinx",backend="local"}')" = 1
check "and gpuscribe_jobs{state=\"done\"} drops to 1 (a gauge)" test "$(mval 'gpuscribe_jobs{state="done"}')" = 1
COST_BEFORE=$(mval gpuscribe_cost_dollars_total)
stop_server || true
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx -- --env-file "$TDIR/app.env" ||
    { fail "server restarts"; sim_stop; finish; exit 1; }
metrics
check "after a restart: audio seconds on the GPU unchanged" \
    approx "$(mval 'gpuscribe_audio_transcribed_seconds_total{engine="sphinx",backend="remote"}')" "$REMOTE_AUDIO"
check "after a restart: CPU jobs done unchanged" \
    test "$(mval 'gpuscribe_jobs_done_total{engine="sphinx",backend="local"}')" = 1
check "after a restart: total cost unchanged" approx "$(mval gpuscribe_cost_dollars_total)" "$COST_BEFORE"
stop_server || true
sim_stop

# ---- auth
start_server API_TOKEN=api-tok-0123456789 METRICS_TOKEN=met-tok-0123456789 ||
    { fail "server with tokens starts"; finish; exit 1; }
metrics
check "API_TOKEN set: /metrics without a token -> 401" test "$STATUS" = 401
metrics -H "Authorization: Bearer wrong-token"
check "a wrong token -> 401" test "$STATUS" = 401
metrics -H "Authorization: Bearer met-tok-0123456789"
check "METRICS_TOKEN -> 200" test "$STATUS" = 200
check "no token in the page" test -z "$(grep -F -e met-tok -e api-tok "$PAGE")"
metrics -H "Authorization: Bearer api-tok-0123456789"
check "API_TOKEN -> 200 too" test "$STATUS" = 200
req GET /api/jobs -H "Authorization: Bearer met-tok-0123456789"
check "METRICS_TOKEN opens nothing under /api/ (401)" test "$STATUS" = 401
req GET /api/config -H "Authorization: Bearer api-tok-0123456789"
expect "/api/config shows METRICS_TOKEN only as set" 200 '.METRICS_TOKEN == true'
check "the token is not in /api/config" test -z "$(grep -F met-tok <<<"$BODY")"
stop_server || true
finish
