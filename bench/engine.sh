#!/usr/bin/env bash
# Benchmark: the CPU engine (pocketsphinx) real-time factor and peak memory, transcribing the
# pocketsphinx test corpus (real speech) repeated to ~2 minutes, in one process.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GS_BIN:-$ROOT/build/gpuscribe}
T=$(mktemp -d); trap 'rm -rf $T' EXIT
D=/usr/share/pocketsphinx/test/data/librivox
files=(); for i in 1 2 3 4 5; do for f in $(cat $D/fileids); do files+=("$D/$f.wav"); done; done
sox "${files[@]}" "$T/speech.wav"
dur=$(soxi -D "$T/speech.wav")
/usr/bin/time -v "$BIN" transcribe "$T/speech.wav" --format txt -o "$T/out.txt" 2>"$T/time" >/dev/null
wall=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$T/time")
rss=$(awk -F': ' '/Maximum resident/{print $2}' "$T/time")
printf '%-28s %s\n' "machine" "$(nproc) cores, $(awk '/model name/{$1=$2=$3="";print;exit}' /proc/cpuinfo | xargs)"
printf '%-28s %.1f s of real speech\n' "input" "$dur"
printf '%-28s %.2f s (includes model load)\n' "wall time" "$wall"
printf '%-28s %.3f\n' "real-time factor" "$(awk -v w=$wall -v d=$dur 'BEGIN{print w/d}')"
printf '%-28s %s kB\n' "peak RSS" "$rss"
