#!/usr/bin/env bash
# The foundation: start-up, gpu-status, errors, static files, auth, origin/host checks,
# configuration precedence and validation, secrets, graceful shutdown.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1

# ---- start-up and status
start_server || { fail "server starts"; finish; exit 1; }
pass "server starts"
check "one log line with the URL" test "$(grep -c 'listening on http://127.0.0.1:' "$SERVER_LOG")" = 1
req GET /api/gpu-status
expect "gpu-status without GPU" 200 \
  '(keys == ["available","cuda_available","message","type","vast_instance"]) and .available == false and .type == "none" and .cuda_available == false and .vast_instance == null and (.message|type) == "string"'
req GET /healthz
expect "healthz" 200 '.status == "ok"'

# ---- errors are JSON with the right status
req GET /api/nope
expect "unknown api route -> 404 json" 404 '.error | test("no such endpoint")'
req POST /api/gpu-status
expect "wrong method -> 405 json" 405 '.error | test("not allowed")'
check "405 carries Allow" bash -c "curl -s -i -X DELETE $BASE/api/gpu-status | grep -qi '^Allow: GET'"
req GET /nonexistent.html
expect "missing static file -> 404 json" 404 '.error'

# ---- static files and traversal
req GET /
check "index page served" grep -q '<title>gpuscribe</title>' <<<"$BODY"
req GET /docs
check "docs page served" grep -q 'openapi.json' <<<"$BODY"
req GET /openapi.json
expect "openapi describes routes" 200 '.openapi == "3.0.3" and (.paths | has("/api/gpu-status")) and (.paths | has("/healthz")) and .paths["/api/gpu-status"].get.responses["200"].content["application/json"].schema.required == ["available","type","cuda_available","vast_instance","message"]'
for p in '/../../../etc/passwd' '/%2e%2e/%2e%2e/etc/passwd' '/.env' '/..%2f..%2fetc/passwd' '/static/../../etc/passwd' '//etc/passwd'; do
    code=$(curl -s --path-as-is -o "$TDIR/b" -w '%{http_code}' "$BASE$p")
    if [ "$code" -ge 400 ] && [ "$code" -lt 500 ] && ! grep -q 'root:' "$TDIR/b" && jq -e .error "$TDIR/b" >/dev/null; then
        pass "traversal refused: $p"
    else
        fail "traversal refused: $p" "got $code"
    fi
done

# ---- host and origin checks
req GET /api/gpu-status -H 'Host: attacker.example:8000'
expect "foreign Host refused (DNS rebinding)" 421 '.error'
req POST /api/gpu-status -H 'Origin: http://attacker.example'
expect "foreign Origin refused on POST" 403 '.error == "cross-origin request refused"'
req GET /api/gpu-status -H 'Origin: http://attacker.example'
expect "GET with foreign Origin allowed" 200
stop_server && pass "clean shutdown (exit 0, sanitizers quiet)"
check "database closed cleanly (no WAL left)" bash -c "test -f $SERVER_DIR/data/gpuscribe.db && ! test -s $SERVER_DIR/data/gpuscribe.db-wal"
check "data dir is private" test "$(stat -c %a "$SERVER_DIR/data")" = 700

# ---- a fake NVML reporting one GPU
cat >"$TDIR/fake_nvml.c" <<'C'
#include <string.h>
int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = 1; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) { (void)i; *h = (void *)1; return 0; }
int nvmlDeviceGetName(void *h, char *name, unsigned len) { (void)h; strncpy(name, "Fake RTX 4090", len); return 0; }
C
gcc -shared -fPIC -o "$TDIR/libfakenvml.so" "$TDIR/fake_nvml.c"
start_server GS_NVML_LIB="$TDIR/libfakenvml.so"
req GET /api/gpu-status
expect "gpu-status with a local GPU" 200 '.available == true and .type == "local" and .cuda_available == true and (.message | test("Fake RTX 4090"))'
stop_server

# ---- API token
start_server API_TOKEN=test-token-123456
req GET /api/gpu-status
expect "no token -> 401" 401 '.error | test("API token")'
req GET /api/gpu-status -H 'Authorization: Bearer wrong-token-000000'
expect "wrong token -> 401" 401
req GET /api/gpu-status -H 'Authorization: Bearer test-token-123456'
expect "right token -> 200" 200 '.type == "none"'
req GET /healthz
expect "healthz needs no token and says one is required" 200 '.auth_required == true'
req GET /api/config -H 'Authorization: Bearer test-token-123456'
expect "config dump hides the token" 200 '.API_TOKEN == true'
check "token never echoed" bash -c "! grep -q test-token-123456 <<<'$BODY'"
stop_server

# ---- binding beyond loopback needs a token
out=$(cd "$TDIR" && "$GS_BIN" serve --host 0.0.0.0 --port 0 --data-dir "$TDIR/d0" 2>&1); rc=$?
check "non-loopback without token refused" test "$rc" -ne 0
check "refusal explains API_TOKEN" grep -q 'API_TOKEN' <<<"$out"

# ---- configuration precedence: default < .env < environment < flag
mkdir -p "$TDIR/cfg" && cd "$TDIR/cfg"
printf '# comment kept\nVAST_URL=http://127.0.0.1:1/from-envfile\nLOG_LEVEL=warn\n' > .env
cfgval() { # run the server in $TDIR/cfg with args, print VAST_URL and LOG_LEVEL from /api/config
    (cd "$TDIR/cfg" && exec env "$@" "$GS_BIN" serve --port 0 --data-dir "$TDIR/cfg/data" "${FLAGS[@]}") >"$TDIR/cfg/log" 2>&1 &
    local pid=$! port="" i
    for i in $(seq 1 100); do
        port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$TDIR/cfg/log" | head -n1)
        [ -n "$port" ] && break; sleep 0.05
    done
    curl -s "http://127.0.0.1:$port/api/config" | jq -r '"\(.VAST_URL) \(.LOG_LEVEL)"'
    kill -TERM $pid; wait $pid
}
FLAGS=(--log-level info)   # LOG_LEVEL=warn would hide the listening line
check "default < .env" test "$(cfgval X=1)" = "http://127.0.0.1:1/from-envfile info"
check ".env < environment" test "$(cfgval VAST_URL=http://127.0.0.1:2/env)" = "http://127.0.0.1:2/env info"
FLAGS=(--log-level info --vast-url http://127.0.0.1:3/flag)
check "environment < flag" test "$(cfgval VAST_URL=http://127.0.0.1:2/env)" = "http://127.0.0.1:3/flag info"
FLAGS=(--log-level=debug --env-file "$TDIR/other.env")
printf 'VAST_URL="http://127.0.0.1:4/quoted # not a comment"\n' > "$TDIR/other.env"
check "--env-file and quoting" test "$(cfgval X=1)" = "http://127.0.0.1:4/quoted # not a comment debug"
cd "$ROOT"

# ---- invalid values name the option and exit non-zero
bad() { # bad NAME EXPECTED-TEXT cmd...
    local name=$1 want=$2; shift 2
    local out rc
    out=$(cd "$TDIR" && "$@" 2>&1); rc=$?
    if [ "$rc" -ne 0 ] && grep -q -- "$want" <<<"$out"; then pass "$name"; else fail "$name" "rc=$rc out=$out"; fi
}
bad "PORT not a number" "PORT: invalid value 'abc'" env PORT=abc "$GS_BIN" serve
bad "--port out of range" "PORT: invalid value '99999'" "$GS_BIN" serve --port 99999
bad "LOG_LEVEL unknown" "LOG_LEVEL: invalid value 'loud'" env LOG_LEVEL=loud "$GS_BIN" serve
bad "IDLE_DESTROY_MINUTES negative" "IDLE_DESTROY_MINUTES" "$GS_BIN" serve --idle-destroy-minutes -1
bad "secret as a flag refused" "secrets are not accepted on the command line" "$GS_BIN" serve --api-token abcdef
bad "unknown argument" "unexpected argument" "$GS_BIN" serve --no-such-flag
bad "missing --env-file" "cannot read env file" "$GS_BIN" serve --env-file /nonexistent/.env
bad "malformed .env" "malformed line" bash -c "printf 'this is not an assignment\n' > bad.env && '$GS_BIN' serve --env-file bad.env"
bad "unknown command" "unknown command" "$GS_BIN" frobnicate

# ---- help lists every option with its default
help=$("$GS_BIN" serve --help)
missing=""
for o in HOST PORT DATA_DIR VAST_API_KEY VAST_URL VAST_INSTANCE_ID HF_TOKEN OPENAI_API_KEY OPENAI_BASE_URL API_TOKEN LOG_LEVEL MAX_UPLOAD_MB IDLE_DESTROY_MINUTES; do
    grep -q "$o" <<<"$help" || missing="$missing $o"
done
check "serve --help lists every option" test -z "$missing"
check "help shows defaults" grep -q '\[127.0.0.1\]' <<<"$help"
check "gpuscribe --help lists commands" bash -c "'$GS_BIN' --help | grep -q 'serve'"

# ---- secrets: never in responses or logs; found in the vast CLI's key file
mkdir -p "$HOME/.config/vastai"
echo "vastkey-from-file-0123456789" > "$HOME/.config/vastai/vast_api_key"
start_server LOG_LEVEL=debug HF_TOKEN=hf_secret_value_987654321
req GET /api/config
expect "vast key found in the CLI key file" 200 '.VAST_API_KEY == true and .HF_TOKEN == true'
check "no secret in config response" bash -c "! grep -qE 'vastkey-from-file|hf_secret_value' <<<'$BODY'"
curl -s "$BASE/api/nope-hf_secret_value_987654321" >/dev/null
stop_server
check "no secret in logs" bash -c "! grep -qE 'vastkey-from-file|hf_secret_value' '$SERVER_LOG'"
rm -rf "$HOME/.config/vastai"

# ---- status CLI against a running server
start_server
port=${BASE##*:}
out=$("$GS_BIN" status --port "$port"); rc=$?
check "status CLI prints the message" grep -q 'No GPU available' <<<"$out"
check "status CLI exits 3 when no GPU" test "$rc" = 3
check "status --json" bash -c "'$GS_BIN' status --port $port --json | jq -e '.type == \"none\"'"
stop_server
out=$("$GS_BIN" status --port 1 2>&1); rc=$?
check "status CLI fails on an unreachable server" test "$rc" -ne 0
check "status CLI explains an unreachable server" grep -q 'cannot reach' <<<"$out"

finish
