#!/usr/bin/env python3
"""sparse_speech.py OUT TOTAL_S START [START...]: a 16 kHz mono WAV of TOTAL_S seconds of
digital silence with real speech (the pocketsphinx librivox clips, 1 s apart, ~30 s) placed
at each START second. Long recordings for the long-audio test and bench, made in seconds."""
import sys
import wave

D = "/usr/share/pocketsphinx/test/data/librivox/"
clips = []
for line in open(D + "fileids"):
    if line.strip():
        w = wave.open(D + line.strip() + ".wav")
        clips.append(w.readframes(w.getnframes()))
speech = b"".join(c + b"\0\0" * 16000 for c in clips)
total = int(float(sys.argv[2]) * 16000)
out = wave.open(sys.argv[1], "wb")
out.setnchannels(1)
out.setsampwidth(2)
out.setframerate(16000)
pos = 0
for s in sorted(int(float(x) * 16000) for x in sys.argv[3:]):
    if s < pos or s + len(speech) // 2 > total:
        sys.exit("sparse_speech: speech at %.1f s overlaps or passes the end" % (s / 16000))
    out.writeframes(b"\0\0" * (s - pos))
    out.writeframes(speech)
    pos = s + len(speech) // 2
while pos < total:  # in pieces: a 10 h file is 1.15 GB
    n = min(total - pos, 16000 * 600)
    out.writeframes(b"\0\0" * n)
    pos += n
out.close()
