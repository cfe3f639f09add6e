#!/usr/bin/env python3
"""bench/lean.py: one server's idle RSS, exec-to-first-answer time and /api/gpu-status req/s.

    lean.py NAME RUNS SECONDS CONNS WRK_THREADS -- COMMAND... (PORT in COMMAND is replaced)

Starts COMMAND once on a fresh data dir (that start's time is printed on its own), then RUNS
times on the data dir it made; each time: the time from exec to the first 200 from /healthz
(polled over a raw socket every 0.2 ms, from this already running process), VmRSS after 5
more requests, then one wrk run on /api/gpu-status. Prints one tab-separated line:
NAME, the fresh start's ms, the medians (ms, kB, req/s), the min-max of each, wrk's last p99 and the server's
shared libraries (from /proc/PID/maps). Timings only: never part of the tests.
"""
import os, re, socket, statistics, subprocess, sys, tempfile, time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path, timeout=1.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    finally:
        s.close()


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def libs(pid):
    out = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            m = re.search(r"/([^/]+\.so[.0-9]*)$", line.strip())
            if m:
                out.add(m.group(1))
    return out


def one(cmd, secs, conns, wrk_threads, d):
    port = free_port()
    argv = [a.replace("PORT", str(port)) for a in cmd]
    env = dict(os.environ, DATA_DIR=os.path.join(d, "data"))
    env.pop("VAST_API_KEY", None)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if p.poll() is not None:
                raise SystemExit("%s exited with %s" % (argv[0], p.returncode))
            try:
                if get(port, "/healthz") == 200:
                    break
            except OSError:
                pass
            time.sleep(0.0002)
        ready_ms = (time.monotonic() - t0) * 1000
        for _ in range(5):
            get(port, "/api/gpu-status")
        if secs == 0:
            return ready_ms, 0, 0, "", 0
        time.sleep(0.2)
        rss = status_kb(p.pid, "VmRSS")
        nlibs = len(libs(p.pid))
        w = subprocess.run(["wrk", "-t%d" % wrk_threads, "-c%d" % conns, "-d%ds" % secs, "--latency",
                            "http://127.0.0.1:%d/api/gpu-status" % port],
                           capture_output=True, text=True, check=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", w).group(1))
        p99 = re.search(r"^\s+99%\s+(\S+)", w, re.M).group(1)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", w)
        if bad:
            raise SystemExit("%s: %s non-2xx answers under wrk" % (argv[0], bad.group(1)))
        return ready_ms, rss, rps, p99, nlibs
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    a = sys.argv[1:]
    sep = a.index("--")
    name, runs, secs, conns, wt = a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4])
    cmd = a[sep + 1:]
    d = tempfile.mkdtemp(prefix="gs-lean-")
    try:
        fresh = one(cmd, 0, conns, wt, d)[0]   # creates the data dir: database, ssh key
        res = [one(cmd, secs, conns, wt, d) for _ in range(runs)]
    finally:
        subprocess.run(["rm", "-rf", d])
    col = lambda i: [r[i] for r in res]
    med = lambda i: statistics.median(col(i))
    print("\t".join([name, "%.1f" % fresh, "%.1f" % med(0), "%.1f-%.1f" % (min(col(0)), max(col(0))),
                     "%.1f" % (med(1) / 1024), "%.1f-%.1f" % (min(col(1)) / 1024, max(col(1)) / 1024),
                     "%.0f" % med(2), "%.0f-%.0f" % (min(col(2)), max(col(2))), res[-1][3],
                     str(res[-1][4])]))


main()
