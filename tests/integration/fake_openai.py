#!/usr/bin/env python3
"""A local stand-in for OpenAI's /v1/audio/transcriptions, for tests (loopback only).

Checks the bearer key and the multipart fields, records each request to --log (never the
key), and answers verbose_json with one segment per 2 s of a fixed text. --fail-status N makes
every request fail with OpenAI's error shape. Prints "fake-openai listening on PORT" first.
"""
import argparse, cgi, io, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--key", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--fail-status", type=int, default=0)
args = ap.parse_args()
TEXT = "this transcript came from the fake openai api"


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        auth_ok = self.headers.get("Authorization") == "Bearer " + args.key
        env = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(n)}
        form = cgi.FieldStorage(fp=io.BytesIO(raw), environ=env, keep_blank_values=True)
        fields = {k: (form[k].value if not form[k].filename else "<file %d bytes>" % len(form[k].value))
                  for k in form.keys()} if form.list else {}
        with open(args.log, "a") as f:
            f.write(json.dumps({"path": self.path, "auth_ok": auth_ok, "fields": fields}) + "\n")
        if not auth_ok:
            return self.reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
        if args.fail_status:
            return self.reply(args.fail_status, {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}})
        if self.path != "/v1/audio/transcriptions" or "file" not in fields:
            return self.reply(400, {"error": {"message": "bad request", "type": "invalid_request_error", "param": "file", "code": None}})
        words = TEXT.split()
        segs = [{"id": 0, "seek": 0, "start": 0.0, "end": 2.0, "text": " " + " ".join(words[:4]), "tokens": [], "temperature": 0.0,
                 "avg_logprob": -0.2, "compression_ratio": 1.1, "no_speech_prob": 0.01},
                {"id": 1, "seek": 200, "start": 2.0, "end": 4.0, "text": " " + " ".join(words[4:]), "tokens": [], "temperature": 0.0,
                 "avg_logprob": -0.3, "compression_ratio": 1.1, "no_speech_prob": 0.01}]
        self.reply(200, {"task": "transcribe", "language": "english", "duration": 4.0, "text": TEXT, "segments": segs})


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print("fake-openai listening on %d" % srv.server_address[1], flush=True)
try:
    srv.serve_forever()
except KeyboardInterrupt:
    pass
