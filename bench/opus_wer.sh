#!/usr/bin/env bash
# Benchmark: what sending workers Ogg Opus instead of PCM costs in recognition (issue 13). The
# pocketsphinx test corpus (five LibriVox clips, real speech, 71 words), a longer
# concatenation of them, and ~3.5 min of espeak-ng speech (the GPL-3 preamble, 559 words, two
# voices; synthetic, but enough words to see a 1-point WER change) are transcribed by the CPU
# engine (pocketsphinx, `gpuscribe transcribe`) from the PCM WAV and from its round trip
# through our Opus encoder and decoder (src/audio/opus.h, driven by build/opusrt, built here)
# at each bitrate and Opus application; word error rates against the reference texts.
# Usage: bench/opus_wer.sh [bitrates...] (default 24000 32000)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GS_BIN:-$ROOT/build/gpuscribe}
D=/usr/share/pocketsphinx/test/data/librivox
[ -x "$BIN" ] || { echo "opus_wer: build $BIN first (make)"; exit 1; }
[ -d "$D" ] || { echo "opus_wer: needs pocketsphinx-testdata"; exit 1; }
rates=("$@"); [ ${#rates[@]} -gt 0 ] || rates=(24000 32000)
T=$(mktemp -d); trap 'rm -rf $T' EXIT
cd "$ROOT"
# opusrt links only the Opus module and src/core/{util,log}.c (built here, not by `make all`)
for app in AUDIO VOIP; do
    cc -std=gnu11 -Wall -Wextra -Werror -O2 -Isrc -DGS_OPUS_APPLICATION=OPUS_APPLICATION_$app \
       $(pkg-config --cflags opus libopusenc opusfile) tools/opusrt/main.c src/audio/opus_enc.c \
       src/audio/opus_dec.c src/core/util.c src/core/log.c \
       $(pkg-config --libs libopusenc opusfile) -lpthread -lm -o "$T/opusrt-$app"
done

ids=(); for f in $(cat $D/fileids); do ids+=("$f"); cp "$D/$f.wav" "$T/$f.wav"; done
# the long input: the five clips three times over (~74 s)
long=(); for i in 1 2 3; do for f in "${ids[@]}"; do long+=("$T/$f.wav"); done; done
sox "${long[@]}" "$T/long.wav"
for i in 1 2 3; do for f in "${ids[@]}"; do grep "($f)" $D/transcription | sed 's/ *(.*)$//'; done; done \
    | tr '\n' ' ' >"$T/long.ref"
for f in "${ids[@]}"; do grep "($f)" $D/transcription | sed 's/ *(.*)$//' >"$T/$f.ref"; done
# synthetic: the GPL-3 preamble read by two espeak-ng voices
sed -n '/Preamble/,/TERMS AND CONDITIONS/p' /usr/share/common-licenses/GPL-3 | sed '1d;$d' >"$T/gpl.txt"
for v in en-us en-gb; do espeak-ng -v $v -s 165 -f "$T/gpl.txt" -w "$T/e-$v.wav" 2>/dev/null; done
sox "$T/e-en-us.wav" "$T/e-en-gb.wav" -r 16000 -c 1 -b 16 "$T/espeak.wav"
cat "$T/gpl.txt" "$T/gpl.txt" >"$T/espeak.ref"
inputs=("${ids[@]}" long espeak)

transcribe() { "$BIN" transcribe "$1" --engine sphinx --format txt -o "$2" >/dev/null 2>"$2.log" ||
               { cat "$2.log"; exit 1; }; }
for x in "${inputs[@]}"; do transcribe "$T/$x.wav" "$T/$x.pcm.txt"; done
for app in AUDIO VOIP; do for r in "${rates[@]}"; do
    for x in "${inputs[@]}"; do
        "$T/opusrt-$app" "$T/$x.wav" "$r" "$T/$x.$app.$r.opus" "$T/$x.$app.$r.wav" >"$T/$x.$app.$r.rt"
        transcribe "$T/$x.$app.$r.wav" "$T/$x.$app.$r.txt"
    done
done; done

python3 - "$T" "${rates[@]}" <<'EOF'
import os, re, sys
T, rates = sys.argv[1], sys.argv[2:]
ids = sorted(f[:-4] for f in os.listdir(T) if f.endswith('.ref') and f[:-4] not in ('long', 'espeak'))
def words(s): return re.sub(r"[^a-z' ]", " ", re.sub(r"</?s>", " ", s.lower())).split()
def edits(r, h):
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        p, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            p, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, p + (r[i - 1] != h[j - 1]))
    return d[len(h)]
def rd(p): return open(os.path.join(T, p)).read()
def wer(names, tag):
    e = n = 0
    for x in names:
        r = words(rd(x + '.ref')); e += edits(r, words(rd(x + '.' + tag + '.txt'))); n += len(r)
    return 100.0 * e / n
print("%-6s %-7s %7s %8s | %-21s | %-21s | %-21s | %7s %7s" % ("app", "bitrate", "MB/hour",
      "len diff", "WER clips PCM/Opus", "WER long PCM/Opus", "WER espeak PCM/Opus", "enc xRT", "dec xRT"))
pc, pl, pe = wer(ids, 'pcm'), wer(['long'], 'pcm'), wer(['espeak'], 'pcm')
for app in ('AUDIO', 'VOIP'):
    for r in rates:
        tag = app + '.' + r
        nb = ns = 0; maxdiff = 0; te = td = 0.0
        for x in ids + ['long', 'espeak']:
            f = rd(x + '.' + tag + '.rt').split()
            nin, nbytes, nout = int(f[1]), int(f[3]), int(f[5])
            nb += nbytes; ns += nin; maxdiff = max(maxdiff, abs(nout - nin))
            te += float(f[7]); td += float(f[9])
        mbh = nb / (ns / 16000.0) * 3600 / 1e6
        oc, ol, oe = wer(ids, tag), wer(['long'], tag), wer(['espeak'], tag)
        secs = ns / 16000.0
        cell = lambda a, b: "%5.1f / %5.1f (%+4.1f)" % (a, b, b - a)
        print("%-6s %-7s %7.1f %5d sm | %s | %s | %s | %7.0f %7.0f" % (app.lower(), r, mbh, maxdiff,
              cell(pc, oc), cell(pl, ol), cell(pe, oe), secs / te, secs / td))
print("PCM WAV (16 kHz s16): %.1f MB per audio hour" % (16000 * 2 * 3600 / 1e6))
print("WER in %: the five clips together (71 words), the long input (the clips 3 times), espeak"
      " (1118 words); len diff: the largest |decoded - input| length in samples; xRT: audio seconds"
      " per second of encoding / decoding (one core)")
EOF
