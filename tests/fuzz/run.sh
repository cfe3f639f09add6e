#!/usr/bin/env bash
# run.sh fuzz|regress TARGET...: run the libFuzzer drivers built in build/fuzz/.
#   fuzz     each target for FUZZ_SECONDS (default 30) on a scratch copy of its seed corpus
#            (tests/fuzz/corpus/<target>/) plus its regression inputs
#            (tests/fuzz/regress/<target>/), FUZZ_JOBS targets at a time; a crash is saved in
#            build/fuzz/crashes/<target>/ and fails the run (copy it into regress/ once fixed)
#   regress  run every seed and regression input once; fails on any crash
set -u
cd "$(dirname "$0")/../.."
mode=$1; shift
secs=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-1}
export ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0

# per-target libFuzzer options
opts_for() {
    case $1 in
        http) echo "-detect_leaks=0 -timeout=20 -max_len=65536" ;;  # the server frees after replying
        audio) echo "-timeout=20 -max_len=65536 -rss_limit_mb=4096" ;;
        vast) echo "-timeout=20 -max_len=32768" ;;
        *) echo "-timeout=10 -max_len=16384" ;;
    esac
}

dirs_for() {
    local d
    for d in tests/fuzz/corpus/$1 tests/fuzz/regress/$1; do [ -d "$d" ] && echo "$d"; done
}

run_one() {
    local t=$1 bin=build/fuzz/fuzz_$1 log=build/fuzz/logs/$1.log
    mkdir -p build/fuzz/logs "build/fuzz/crashes/$t" "build/fuzz/work/$t"
    if [ "$mode" = regress ]; then
        # -runs=0: load (execute) every input once, then stop
        # shellcheck disable=SC2046
        if "$bin" $(opts_for "$t") -runs=0 $(dirs_for "$t") >"$log" 2>&1; then
            echo "ok   fuzz-regress: $t ($(grep -c . <(find $(dirs_for "$t") -type f)) inputs)"
        else
            echo "FAIL fuzz-regress: $t (see $log)"; tail -n 40 "$log"; return 1
        fi
        return 0
    fi
    # shellcheck disable=SC2046
    "$bin" $(opts_for "$t") -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="build/fuzz/crashes/$t/" "build/fuzz/work/$t" $(dirs_for "$t") \
        >"$log" 2>&1
    local rc=$?
    local execs cov
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | cut -d' ' -f2)
    if [ $rc -eq 0 ]; then
        printf 'ok   fuzz: %-11s %8s runs in %ss, coverage %s\n' "$t" "${execs:-?}" "$secs" "${cov:-?}"
    else
        echo "FAIL fuzz: $t (exit $rc; inputs in build/fuzz/crashes/$t/, log $log)"
        grep -E 'ERROR|SUMMARY|runtime error|abort' "$log" | head -n 8
        return 1
    fi
}

fails=0
pids=()
for t in "$@"; do
    if [ "$jobs" -le 1 ]; then
        run_one "$t" || fails=$((fails + 1))
    else
        run_one "$t" & pids+=($!)
        if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}" || fails=$((fails + 1)); pids=("${pids[@]:1}"); fi
    fi
done
for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" || fails=$((fails + 1)); done
echo "fuzz-$mode: $(( $# - fails )) passed, $fails failed"
[ "$fails" -eq 0 ]
