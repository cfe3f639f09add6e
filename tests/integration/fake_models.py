#!/usr/bin/env python3
"""A stand-in for the model host (Hugging Face's resolve URLs), on loopback, for setup.sh.

    fake_models.py DIR PORT_FILE

Serves DIR/<repo path> for GET and HEAD under /<org>/<repo>/resolve/main/<file>: a HEAD (and a
GET) first answers 302 to /cdn/<file> with X-Linked-Size and X-Linked-Etag (the sha256, quoted)
as the real host does for LFS files; /cdn/<file> serves the bytes with Range support.
Behaviour switches, per file, through files beside it in DIR:
  <file>.cut N     the first GET of the bytes stops after N bytes (the connection drops)
  <file>.badsha    X-Linked-Etag carries a wrong sha256
  <file>.nosha     no X-Linked-Etag header
Every request is appended to DIR/requests.log ("METHOD PATH RANGE AUTH"; AUTH is "auth" when an
Authorization header came, never its value).
"""
import hashlib
import http.server
import os
import sys

ROOT = sys.argv[1]


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def note(self):
        with open(os.path.join(ROOT, "requests.log"), "a") as f:
            f.write("%s %s %s %s\n" % (self.command, self.path, self.headers.get("Range", "-"),
                                       "auth" if self.headers.get("Authorization") else "-"))

    def not_found(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def file_for(self, name):
        p = os.path.join(ROOT, os.path.basename(name))
        return p if os.path.isfile(p) else None

    def answer(self, head):
        self.note()
        parts = self.path.split("/")
        if "resolve" in parts:
            p = self.file_for(parts[-1])
            if not p:
                return self.not_found()
            data = open(p, "rb").read()
            sha = hashlib.sha256(data).hexdigest()
            if os.path.exists(p + ".badsha"):
                sha = "0" * 64
            self.send_response(302)
            self.send_header("Location", "/cdn/" + parts[-1])
            self.send_header("X-Linked-Size", str(len(data)))
            if not os.path.exists(p + ".nosha"):
                self.send_header("X-Linked-Etag", '"%s"' % sha)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        p = self.file_for(parts[-1]) if parts[1:2] == ["cdn"] else None
        if not p:
            return self.not_found()
        data = open(p, "rb").read()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if head:
            return
        cut = p + ".cut"
        if os.path.exists(cut) and self.command == "GET":
            n = int(open(cut).read().strip())
            os.unlink(cut)
            self.wfile.write(body[:n])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def do_HEAD(self):
        self.answer(True)

    def do_GET(self):
        self.answer(False)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
srv.serve_forever()
