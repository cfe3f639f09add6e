#!/usr/bin/env python3
"""Synthetic conversations with known turns, and the diarization error rate (bench/diarize.sh).

  diarize_conv.py make OUTDIR --speakers N --seed S [--minutes M]
      OUTDIR/conv.wav (16 kHz mono 16-bit) and OUTDIR/ref.json {"turns": [[start, end, spk]],
      "speakers": N, "duration"}: turns of 2-20 s from espeak-ng voices of distinct pitch,
      timbre and accent, pauses of 0.1-0.9 s, about one turn in six a short back-channel
      ("yeah", "right", ...) by another speaker; a -65 dBFS noise floor.
  diarize_conv.py der REF.json HYP.json [--collar 0.25]
      {"der", "missed", "false_alarm", "confusion", "ref_speakers", "hyp_speakers",
       "count_error"}: frame-based at 10 ms, the speakers mapped one-to-one to maximise the
      agreement (as md-eval does), a collar of 0.25 s around every reference boundary
      not scored, rates over the scored reference speech.
Only the standard library (wave, array, random), espeak-ng and sox.
"""
import array, itertools, json, math, os, random, subprocess, sys, tempfile, wave

VOICES = [  # (espeak-ng voice, pitch 0-99, words per minute)
    ("en-us+m3", 30, 165),
    ("en-gb+f4", 75, 175),
    ("en-gb-scotland+m7", 15, 150),
    ("en-us+f2", 60, 185),
]
WORDS = ("time people way day man thing woman life child world school state family student "
         "group country problem hand part place case week company system program question work "
         "government number night point home water room mother area money story fact month lot "
         "right study book eye job word business issue side kind head house service friend father "
         "power hour game line end member law car city community name president team minute idea "
         "kid body information back parent face others level office door health person art war "
         "history party result change morning reason research girl guy moment air teacher force "
         "education").split()
BACKCHANNELS = ["yeah", "right", "okay", "I see", "mm hmm", "sure", "really", "no way"]
RATE = 16000


def synth(voice, text, tmp):
    v, pitch, wpm = voice
    raw, out = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "s.wav")
    subprocess.run(["espeak-ng", "-v", v, "-p", str(pitch), "-s", str(wpm), "-w", raw, text],
                   check=True)
    subprocess.run(["sox", raw, "-r", str(RATE), "-c", "1", "-b", "16", out], check=True)
    with wave.open(out) as w:
        a = array.array("h", w.readframes(w.getnframes()))
    # trim to the audible part (the reference turn is what is heard)
    thr = 300
    lo = next((i for i, x in enumerate(a) if abs(x) > thr), 0)
    hi = len(a) - next((i for i, x in enumerate(reversed(a)) if abs(x) > thr), 0)
    return a[lo:hi]


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make(outdir, nspk, seed, minutes):
    rng = random.Random(seed)
    os.makedirs(outdir, exist_ok=True)
    voices = VOICES[:nspk]
    pcm = array.array("h")
    turns = []
    prev = -1
    with tempfile.TemporaryDirectory() as tmp:
        while len(pcm) < minutes * 60 * RATE:
            others = [s for s in range(nspk) if s != prev] or [0]
            spk = rng.choice(others)
            if prev >= 0 and nspk > 1 and rng.random() < 1 / 6:
                text = rng.choice(BACKCHANNELS)
            else:
                secs = rng.uniform(2, 20)
                text = ", ".join(sentence(rng, rng.randint(5, 12))
                                 for _ in range(max(1, round(secs / 3.5))))
            a = synth(voices[spk], text, tmp)
            gap = int(rng.uniform(0.1, 0.9) * RATE)
            pcm.extend([0] * gap)
            start = len(pcm) / RATE
            pcm.extend(a)
            turns.append([round(start, 3), round(len(pcm) / RATE, 3), spk])
            prev = spk
    pcm.extend([0] * (RATE // 2))
    for i in range(len(pcm)):  # a noise floor (about -65 dBFS), so silence is not digital
        pcm[i] = max(-32768, min(32767, pcm[i] + rng.randint(-18, 18)))
    with wave.open(os.path.join(outdir, "conv.wav"), "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(RATE); w.writeframes(pcm.tobytes())
    ref = {"speakers": nspk, "duration": len(pcm) / RATE, "turns": turns}
    with open(os.path.join(outdir, "ref.json"), "w") as f:
        json.dump(ref, f)


def frames(turns, n):
    lab = [-1] * n
    for s, e, k in turns:
        for i in range(max(0, int(round(s * 100))), min(n, int(round(e * 100)))):
            lab[i] = k
    return lab


def der(ref_path, hyp_path, collar):
    ref, hyp = json.load(open(ref_path)), json.load(open(hyp_path))
    n = int(math.ceil(max([ref.get("duration", 0)] + [t[1] for t in ref["turns"]] +
                          [t[1] for t in hyp["turns"]]) * 100)) + 1
    r, h = frames(ref["turns"], n), frames(hyp["turns"], n)
    scored = [True] * n
    c = int(round(collar * 100))
    for s, e, _ in ref["turns"]:
        for b in (int(round(s * 100)), int(round(e * 100))):
            for i in range(max(0, b - c), min(n, b + c)):
                scored[i] = False
    rs = sorted({k for k in r if k >= 0}); hs = sorted({k for k in h if k >= 0})
    co = {}
    for i in range(n):
        if scored[i] and r[i] >= 0 and h[i] >= 0:
            co[(r[i], h[i])] = co.get((r[i], h[i]), 0) + 1
    best = 0
    # one-to-one mapping maximising the agreement (brute force: a handful of speakers)
    small, large = (rs, hs) if len(rs) <= len(hs) else (hs, rs)
    for perm in itertools.permutations(large, len(small)):
        pairs = zip(small, perm) if small is rs else zip(perm, small)
        best = max(best, sum(co.get(p, 0) for p in pairs))
    total = miss = fa = both = 0
    for i in range(n):
        if not scored[i]:
            continue
        if r[i] >= 0:
            total += 1
            if h[i] < 0:
                miss += 1
            else:
                both += 1
        elif h[i] >= 0:
            fa += 1
    conf = both - best
    t = max(1, total)
    return {"der": (miss + fa + conf) / t, "missed": miss / t, "false_alarm": fa / t,
            "confusion": conf / t, "ref_speakers": len(rs), "hyp_speakers": len(hs),
            "count_error": len(hs) - len(rs), "scored_s": total / 100}


def main():
    a = sys.argv[1:]
    if a and a[0] == "make":
        opt = dict(zip(a[2::2], a[3::2]))
        make(a[1], int(opt.get("--speakers", 2)), int(opt.get("--seed", 1)),
             float(opt.get("--minutes", 3)))
    elif a and a[0] == "der":
        opt = dict(zip(a[3::2], a[4::2]))
        print(json.dumps(der(a[1], a[2], float(opt.get("--collar", 0.25)))))
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
