#!/usr/bin/env python3
"""tarpit.py: listeners that accept TCP connections and never answer (a hung peer).

Usage: tarpit.py N PORTFILE -- listens on N loopback ports, writes them (one a line) to
PORTFILE, then holds every connection open, reading and discarding what arrives, until
killed. Prints each accepted connection's port on stderr, for the test's log."""
import selectors
import socket
import sys

n, portfile = int(sys.argv[1]), sys.argv[2]
sel = selectors.DefaultSelector()
ports = []
for _ in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    sel.register(s, selectors.EVENT_READ, "listen")
    ports.append(s.getsockname()[1])
with open(portfile + ".tmp", "w") as f:
    f.write("".join(f"{p}\n" for p in ports))
import os
os.rename(portfile + ".tmp", portfile)
held = []
while True:
    for key, _ in sel.select():
        if key.data == "listen":
            c, _ = key.fileobj.accept()
            held.append(c)
            sel.register(c, selectors.EVENT_READ, "conn")
            print(f"accepted on {key.fileobj.getsockname()[1]}", file=sys.stderr, flush=True)
        else:
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
