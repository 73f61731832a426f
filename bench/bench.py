#!/usr/bin/env python3
"""bench.py — how fast is pyexec behind a real nginx, compared with starting
Python by hand?

Usage (from the repository, after `./quickstart test` or `make`):

    python3 bench/bench.py [--requests 200] [--duration 5] [--size-mib 20]

It starts pyexec-fcgi ($PYEXEC_FCGI, default fcgi/pyexec-fcgi or
_build/release/fcgi/pyexec-fcgi) and nginx on
free loopback ports with t/harness.py, then measures in one run:

  a) latency of a hello-world POST /execute through nginx (p50, p90) against
     a bare `python3 -s main.py` started with subprocess, same script, same
     count;
  b) throughput (requests/s) at concurrency 1, 2 and 8, each for --duration
     seconds, and where the CPU went at concurrency 8 (ms per request: the
     Python runs, pyexec's own processes, nginx, this client, and idle);
  c) a --size-mib upload and a --size-mib generated file: wall time and the
     growth of the workers' peak RSS (VmHWM of /proc/<pid>/status, read
     before and after: it is cumulative; a warm-up with 256 KiB of the same
     kind of data comes first, so only growth with the size shows);
  d) dependencies (README, "Dependencies"), from a private index on loopback
     (t/pyindex.py, wheels built here): the hello-world request with a cached
     dependency set against the same request without one (p50, p90,
     --requests each, interleaved so both see the same machine), and the
     cold install of --cold new sets (wall time of the request, and pyexec's
     own deps_ms from its log line);
  e) the sandbox layers (README, "Security"): bare `python3 -s main.py`, a server
     with sandbox=rlimits and one with sandbox=namespaces, sample by sample
     in turn, for hello world and for `import numpy` (--layer-requests each):
     request latency and the run alone (X-Execution-Time, which starts once
     the sandbox is set up); the layer's cost per run is the namespaces
     request minus the rlimits one (whose run takes what a bare start
     takes); target: <= 3 ms. The samples go one at a time, so each finds
     its worker idle with the next run's sandbox set up ahead (a spare):
     the figure is what a request pays on a server that is not saturated.
     At saturation the set-up's CPU is paid all the same, and shows in b).
  f) the warm start (README, "Warm start"): servers with warm = no, warm =
     yes, warm_runs = 5 (a zygote replaced every 5 runs) and warm_preload =
     numpy, against a bare start, sample by sample in turn
     (--warm-requests each): hello world p50 and p90 through nginx, and
     `import numpy` (bare, cold, preloaded); then starts per second at
     concurrency 8 (bare python started by 8 threads at a time, the real
     parallel floor of a machine whose process creation does not scale with
     its cores, then each server: warm with the default workers and with 8,
     8 runs at a time as bare has 8 pythons, and cold; each measure waits
     for the machine to be idle first), CPU per request, and the zygotes'
     RSS and PSS. Then the ceiling of any warm start that forks Python:
     bench/floor.c, built here, forks hello worlds from an initialised
     Python 8 at a time, as they are and each in new mount, pid, ipc, uts
     and network namespaces, with no sandbox and no HTTP. Targets: warm p50
     <= 0.5 x bare p50, warm rate at 8 >= 2 x bare's, preloaded import
     numpy p50 <= 0.25 x a bare one. On the namespace layer, or with
     --sandbox rlimits on the rlimits layer; with --tmpfs-work-root (as
     root) each server's work_root is on a tmpfs of its own, else where
     the harness makes it (under /tmp): the output names its file system.
  g) zygotes of dependency sets (README, "Warm start"): a set of 300
     modules (t/pyindex.py's heavy_wheel, from a private index on
     loopback), cached, requested from a server with warm_deps_after = 0
     (cold) and one with the default (warm), sample by sample in turn
     (--set-requests each), against a bare start; its import's own time in
     a cold run; requests per second at concurrency 8 of each; the zygotes'
     RSS and PSS with 4 such sets warm in one worker. Targets: warm p50 <=
     0.15 x cold from the cache, warm rate at 8 >= 3 x cold's.

and prints a table and the ratios the project targets (README, "Performance"):

  p50 / bare p50                     <= 1.3
  throughput@8 / (cores / bare p50)  >= 0.8
  worker peak-RSS growth / size      ~ 0 (flat in the size of the data)
  cached deps p50 / no deps p50      <= 1.05, or at most 1 ms slower

--workers N passes -w N (default: pyexec's own default). --cold 0 skips
the dependency part. --json also prints
the figures as JSON. The client runs on the same machine and takes some of
its CPU; the figures are for comparing runs on one machine, not absolute.
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "t"))
import harness  # noqa: E402
import pyindex  # noqa: E402

PYTHON = os.environ.get("BENCH_PYTHON", "/usr/bin/python3")
HELLO = b'print("hello world")\n'


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class Client:
    """One keep-alive HTTP connection to nginx."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def post(self, body, ctype, path="/execute", sink=False):
        """Returns (status, headers, body or byte count, seconds)."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            t0 = time.perf_counter()
            try:
                self.conn.request("POST", path, body=body,
                                  headers={"Content-Type": ctype})
                resp = self.conn.getresponse()
                if sink:
                    n = 0
                    while True:
                        chunk = resp.read(1 << 20)
                        if not chunk:
                            break
                        n += len(chunk)
                    data = n
                else:
                    data = resp.read()
                dt = time.perf_counter() - t0
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, resp, data, dt
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def hello_latency(port, n, body, ctype):
    """Latency of a bare `python3 -s main.py` and of the same script through
    nginx and pyexec, sample by sample in turn, so both see the same machine.
    Returns (bare, through pyexec, X-Execution-Time of each)."""
    d = tempfile.mkdtemp(prefix="pyexec-bench-bare-")
    c = Client(port)
    try:
        with open(os.path.join(d, "main.py"), "wb") as f:
            f.write(HELLO)
        for _ in range(5):
            subprocess.run([PYTHON, "-s", "main.py"], cwd=d, stdout=subprocess.PIPE, check=True)
            status, resp, data, _ = c.post(body, ctype)
            if status != 200 or b"hello world" not in data:
                raise SystemExit("hello world failed: HTTP %d %r" % (status, data[:300]))
        bare, lat, inner = [], [], []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run([PYTHON, "-s", "main.py"], cwd=d, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=True)
            bare.append(time.perf_counter() - t0)
            status, resp, data, dt = c.post(body, ctype)
            if status != 200:
                raise SystemExit("HTTP %d during the latency run" % status)
            lat.append(dt)
            inner.append(float(resp.getheader("X-Execution-Time", "nan")))
        return bare, lat, inner
    finally:
        c.close()
        shutil.rmtree(d, ignore_errors=True)


def cpu_seconds(pid, children=False):
    """utime+stime of pid (plus its waited-for children), in seconds."""
    stat = harness._read("/proc/%d/stat" % pid)
    if stat is None:
        return 0.0
    f = stat[stat.rindex(b")") + 2:].split()
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(server):
    """CPU seconds so far of the runs (the workers' waited-for children), the
    pyexec processes themselves, nginx, and this client."""
    table = harness.proc_table()
    workers = server.worker_pids()
    runs = sum(cpu_seconds(w, True) - cpu_seconds(w) for w in workers)
    pyexec = sum(cpu_seconds(w) for w in workers) + cpu_seconds(server.proc.pid)
    nginx = sum(cpu_seconds(p) for p in [server.nginx.pid] +
                harness.descendants(table, server.nginx.pid))
    t = os.times()
    with open("/proc/stat") as f:
        cpu = f.readline().split()
    idle = (int(cpu[4]) + int(cpu[5])) / os.sysconf("SC_CLK_TCK")   # idle + iowait
    return {"idle_host": idle, "runs": runs, "pyexec": pyexec, "nginx": nginx, "client": t.user + t.system,
            "wall": time.perf_counter()}


def in_threads(conc, run):
    """Runs run(i) in conc threads at once, i from 0; the seconds they took."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def throughput(port, conc, duration, body, ctype, server=None, path="/execute"):
    """(requests/s, errors, CPU ms per request by component or None)."""
    before = cpu_snapshot(server) if server else None
    stop = time.perf_counter() + duration
    counts = [0] * conc
    errors = [0] * conc

    def run(i):
        c = Client(port)
        while time.perf_counter() < stop:
            try:
                status, resp, _, _ = c.post(body, ctype, path)
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                continue
            if status == 200 and resp.getheader("X-Execution-Status") == "ok":
                counts[i] += 1
            else:
                errors[i] += 1
        c.close()

    elapsed = in_threads(conc, run)
    n = max(sum(counts), 1)
    per = None
    if server:
        after = cpu_snapshot(server)
        per = {k: (after[k] - before[k]) * 1e3 / n for k in before
                if k not in ("wall", "idle_host")}
        idle = (after["idle_host"] - before["idle_host"]) * 1e3 / n
        # What no process of the benchmark was charged for and the machine
        # did not spend idle either: the kernel's own threads (writeback,
        # the journal), interrupts, other processes.
        per["other"] = ((after["wall"] - before["wall"]) * (os.cpu_count() or 1) * 1e3 / n
                        - sum(per.values()) - idle)
        per["idle"] = idle
    return sum(counts) / elapsed, sum(errors), per


def deps_index(cold):
    """The private index of the dependency part: bench-dep (the cached set)
    and one package per cold install."""
    ix = pyindex.PackageIndex().start()
    try:
        ix.add_module("bench-dep", "1.0", body="def hello():\n    return 'hello'\n")
        for i in range(cold):
            ix.add_module("bench-cold-%d" % i, "1.0")
    except BaseException:
        ix.stop()
        raise
    return ix


def deps_ms_of(server, resp):
    """deps_ms of the request's log line, or nan."""
    rid = resp.getheader("X-Request-Id")
    text = (harness._read(server.pyexec_log) or b"").decode("utf-8", "replace")
    for line in reversed(text.splitlines()):
        if rid and ("request id=%s " % rid) in line:
            for field in line.split():
                if field.startswith("deps_ms="):
                    return float(field[8:])
    return float("nan")


def deps_latency(server, n, cold):
    """Latency of hello world with a cached set vs without, interleaved;
    then the cold installs. Returns a dict of lists (seconds; deps_ms in
    ms)."""
    c = Client(server.port)
    body, ctype = harness.build_multipart([("files", "main.py", HELLO, None)])
    plain, cached = "/execute", "/execute?dependencies=bench-dep"
    status, resp, data, dt = c.post(body, ctype, path=cached)
    if status != 200 or b"hello world" not in data:
        raise SystemExit("dependencies=bench-dep failed: HTTP %d %r" % (status, data[:600]))
    first = resp.getheader("X-Dependencies")
    for _ in range(5):
        for path in (plain, cached):
            c.post(body, ctype, path=path)
    out = {"none": [], "cached": [], "none_run": [], "cached_run": [],
           "cold": [], "cold_deps_ms": [], "first": first}
    for i in range(n):
        # alternate which goes first, so neither always follows the other
        order = ((plain, "none"), (cached, "cached"))
        for path, key in (order if i % 2 == 0 else order[::-1]):
            status, resp, data, dt = c.post(body, ctype, path=path)
            if status != 200 or (key == "cached" and resp.getheader("X-Dependencies") != "cached"):
                raise SystemExit("HTTP %d (X-Dependencies %s) during the dependency run: %r"
                                 % (status, resp.getheader("X-Dependencies"), data[:300]))
            out[key].append(dt)
            out[key + "_run"].append(float(resp.getheader("X-Execution-Time", "nan")))
    for i in range(cold):
        status, resp, data, dt = c.post(body, ctype, path="/execute?dependencies=bench-cold-%d" % i)
        if status != 200 or resp.getheader("X-Dependencies") != "installed":
            raise SystemExit("cold install %d: HTTP %d (X-Dependencies %s) %r"
                             % (i, status, resp.getheader("X-Dependencies"), data[:600]))
        out["cold"].append(dt)
        out["cold_deps_ms"].append(deps_ms_of(server, resp))
    c.close()
    return out


def workers_hwm(server):
    return {pid: harness.proc_status_kib(pid, "VmHWM") or 0 for pid in server.worker_pids()}


def rss_growth(before, after):
    """Largest growth of peak RSS (KiB) of any worker present both times;
    None when no worker could be seen."""
    both = [after[p] - before[p] for p in after if p in before]
    return max(both) if both else None


def big_transfers(server, size):
    c = Client(server.port)
    # The same work first with 256 KiB of the same kind of data, so that the
    # baseline peak holds what any request touches (libmagic's database is
    # mapped and paged in by content: random bytes touch other pages than
    # text). What grows after that grows with the size. Every worker does
    # it: as many requests at once as there are workers, each holding its
    # worker a while (one after the other, a fast worker would take them
    # all).
    workers = len(server.worker_pids())
    warm = {"main.py": b"import os, time\nprint(os.path.getsize('data.bin'))\ntime.sleep(0.2)\n",
            "data.bin": os.urandom(256 << 10)}
    gen_small = (b"import os, time\nopen('out.bin','wb').write(os.urandom(256 << 10))\n"
                 b"time.sleep(0.2)\n")
    for files, sink in ((warm, False), ({"main.py": gen_small}, True)):
        body, ctype = harness.build_multipart([("files", k, v, None) for k, v in files.items()])

        def one(i, body=body, ctype=ctype, sink=sink):
            w = Client(server.port)
            w.post(body, ctype, sink=sink)
            w.close()
        for _ in range(2):
            in_threads(workers, one)

    res = {}
    up = {"main.py": b"import os\nprint(os.path.getsize('data.bin'))\n",
          "data.bin": os.urandom(size)}
    body, ctype = harness.build_multipart([("files", k, v, None) for k, v in up.items()])
    before = workers_hwm(server)
    status, resp, data, dt = c.post(body, ctype)
    after = workers_hwm(server)
    if status != 200 or str(size).encode() not in data:
        raise SystemExit("upload failed: HTTP %d %r" % (status, data[:300]))
    res["upload"] = (dt, rss_growth(before, after), max(after.values() or [0]))

    gen = ("import os\nwith open('out.bin', 'wb') as f:\n"
           "    for _ in range(%d):\n        f.write(os.urandom(1 << 20))\n" % (size >> 20)).encode()
    body, ctype = harness.build_multipart([("files", "main.py", gen, None)])
    before = workers_hwm(server)
    status, resp, n, dt = c.post(body, ctype, sink=True)
    after = workers_hwm(server)
    if status != 200 or n < size:
        raise SystemExit("generated file failed: HTTP %d, %d bytes" % (status, n))
    res["generate"] = (dt, rss_growth(before, after), max(after.values() or [0]))
    c.close()
    return res


NUMPY = b"import numpy\nprint('hello world', numpy.arange(3).sum())\n"


def main_in(d, src):
    """Writes src as d/main.py; the multipart body (and its type) that
    uploads it."""
    with open(os.path.join(d, "main.py"), "wb") as f:
        f.write(src)
    return harness.build_multipart([("files", "main.py", src, None)])


def bare_start(d):
    """Seconds of one bare `python3 -s main.py` in d."""
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-s", "main.py"], cwd=d, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, check=True)
    return time.perf_counter() - t0


def layers(n):
    """Bare `python3 -s main.py`, the rlimits layer and the namespace layer,
    sample by sample in turn, for hello world and for `import numpy`.
    Returns {script: {"bare": [...], "rlimits": [...], "namespaces": [...],
    "rlimits_run": [...], "namespaces_run": [...]}} in seconds, or None
    when the namespace layer is not available here."""
    servers = {k: harness.Server(name="bench-" + k, workers=2, sandbox=k)
               for k in ("rlimits", "namespaces")}
    out = {}
    d = tempfile.mkdtemp(prefix="pyexec-bench-layers-")
    try:
        for srv in servers.values():
            srv.start()
        if servers["namespaces"].request("GET", "/healthz").json().get("sandbox") != "namespaces":
            return None
        clients = {k: Client(srv.port) for k, srv in servers.items()}
        for name, src in (("hello", HELLO), ("numpy", NUMPY)):
            body, ctype = main_in(d, src)
            r = {"bare": [], "rlimits": [], "namespaces": [], "rlimits_run": [],
                 "namespaces_run": []}
            for i in range(n + 3):
                bare = bare_start(d)
                samples = {}
                for k, c in clients.items():
                    status, resp, data, dt = c.post(body, ctype)
                    if status != 200 or b"hello world" not in data:
                        raise SystemExit("%s/%s failed: HTTP %d %r" % (k, name, status, data[:300]))
                    samples[k] = (dt, float(resp.getheader("X-Execution-Time", "nan")))
                if i < 3:
                    continue          # warm-up
                r["bare"].append(bare)
                for k, (dt, run) in samples.items():
                    r[k].append(dt)
                    r[k + "_run"].append(run)
            out[name] = r
        for c in clients.values():
            c.close()
        return out
    finally:
        for srv in servers.values():
            srv.stop()
            srv.cleanup_dir()
        shutil.rmtree(d, ignore_errors=True)


def bare_parallel(conc, duration, src):
    """Bare `python3 -s main.py` started by conc threads at a time for
    duration seconds: starts per second."""
    d = tempfile.mkdtemp(prefix="pyexec-bench-par-")
    stop = time.perf_counter() + duration
    counts = [0] * conc

    def run(i):
        while time.perf_counter() < stop:
            subprocess.run([PYTHON, "-s", "main.py"], cwd=d, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=True)
            counts[i] += 1

    try:
        with open(os.path.join(d, "main.py"), "wb") as f:
            f.write(src)
        elapsed = in_threads(conc, run)
        return sum(counts) / elapsed
    finally:
        shutil.rmtree(d, ignore_errors=True)


def memory_kib(pid):
    """(RSS, PSS) of pid in KiB, from /proc/<pid>/smaps_rollup."""
    text = harness._read("/proc/%d/smaps_rollup" % pid, "r") or ""
    vals = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:"):
            vals[parts[0][:-1]] = int(parts[1])
    return vals.get("Rss", 0), vals.get("Pss", 0)


def settle(limit=10.0):
    """Waits (at most limit seconds) until the machine is idle again: the
    kernel tears a network namespace down in its own threads, seconds after
    the run that made it, and a measure taken meanwhile would pay for the
    one before it."""
    def idle_total():
        f = open("/proc/stat").readline().split()[1:]
        v = [int(x) for x in f]
        return v[3] + v[4], sum(v)
    stop = time.perf_counter() + limit
    while time.perf_counter() < stop:
        i0, t0 = idle_total()
        time.sleep(0.3)
        i1, t1 = idle_total()
        if t1 > t0 and (i1 - i0) / (t1 - t0) >= 0.9:
            return


def floor_rates(duration, conc):
    """bench/floor.c, built here against PYTHON's libpython and run: the
    rate of hello worlds forked from an initialised Python, conc at a time,
    as they are and each in new namespaces. ({"fork": r, "namespaces": r},
    None) or (None, why)."""
    info = subprocess.run(
        [PYTHON, "-c", "import sysconfig as s; print(s.get_paths()['include']); "
         "print(s.get_config_var('LIBDIR')); print(s.get_config_var('LDVERSION'))"],
        capture_output=True, text=True)
    if info.returncode != 0:
        return None, "cannot ask %s where its libpython is" % PYTHON
    inc, libdir, ver = info.stdout.split()
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor.c")
    d = tempfile.mkdtemp(prefix="pyexec-bench-floor-")
    try:
        exe = os.path.join(d, "floor")
        cc = subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", exe, src, "-I" + inc,
                             "-L" + libdir, "-lpython" + ver], capture_output=True, text=True)
        if cc.returncode != 0:
            return None, "floor.c did not build: %s" % cc.stderr.strip()[:200]
        out = subprocess.run([exe, str(duration), str(conc)], capture_output=True, text=True,
                             timeout=4 * duration + 60)
        rates, why = {}, None
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("fork", "namespaces"):
                rates[parts[0]] = float(parts[1])
            elif parts:
                why = line
        if "fork" not in rates:
            return None, why or "floor gave nothing (exit %d)" % out.returncode
        if "namespaces" not in rates:
            rates["namespaces_why"] = why or "not measured"
        return rates, None
    finally:
        shutil.rmtree(d, ignore_errors=True)


def tmpfs_work_root(server):
    """Harness before_start hook: a tmpfs (1 GiB) on the directory that
    holds the server's work_root (needs root)."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0777,size=1g", "pyexec-bench",
                    server.outer], check=True, capture_output=True)


def work_root_fs(path):
    """The file system type and options of path's mount, from
    /proc/self/mountinfo (the longest mount point above it)."""
    best, what = "", "?"
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            point = left.split()[4]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                best, fs = point, right.split()
                what = "%s (%s)" % (fs[0], fs[2])
    return what


def warm_start(n, duration, layer, tmpfs=False):
    """The warm start (README "Warm start") against a cold server and a bare
    start, in one run: hello world p50, sample by sample in turn (bare,
    cold, warm, and warm with a zygote replaced every 5 runs, each finding
    its worker idle); `import numpy` p50 (bare, cold, warm with numpy
    preloaded); starts per second at concurrency 8 (bare python started by
    8 threads at a time, then each server); CPU ms per request at 8; the
    zygotes' memory. Every server runs on layer (namespaces, or rlimits,
    whose zygote forks runs without namespaces). None when layer is not
    available here."""
    have_numpy = subprocess.run([PYTHON, "-c", "import numpy"],
                                capture_output=True).returncode == 0
    kinds = {"cold": ["warm=no"], "warm": ["warm=yes"],
             "refresh": ["warm=yes", "warm_runs=5"]}
    if have_numpy:
        kinds["preload"] = ["warm=yes", "warm_preload=numpy"]
    hook = tmpfs_work_root if tmpfs else None
    servers = {k: harness.Server(name="bench-" + k, sandbox=layer, options=o,
                                 before_start=hook)
               for k, o in kinds.items()}
    # 8 workers: 8 runs at a time, as the bare baseline has 8 pythons
    servers["warm8"] = harness.Server(name="bench-warm8", sandbox=layer,
                                      options=["warm=yes"], workers=8, before_start=hook)
    d = tempfile.mkdtemp(prefix="pyexec-bench-warm-")
    try:
        for srv in servers.values():
            srv.start()
        fs = work_root_fs(servers["warm"].work_root)
        health = servers["warm"].request("GET", "/healthz").json()
        if health.get("sandbox") != layer or health.get("warm") != "on":
            print("warm start: not measured (%s)\n" % health.get("warm_why", "no " + layer))
            return None
        clients = {k: Client(srv.port) for k, srv in servers.items()}
        r = {}
        plans = [("hello", HELLO, ("cold", "warm", "refresh"))]
        if have_numpy:
            plans.append(("numpy", NUMPY, ("cold", "preload")))
        for script_name, src, kinds_run in plans:
            body, ctype = main_in(d, src)
            for i in range(n + 3):
                bare = bare_start(d)
                samples = {}
                for k in kinds_run:
                    status, resp, data, dt = clients[k].post(body, ctype)
                    start = resp.getheader("X-Execution-Start")
                    want = "cold" if k == "cold" else "warm"
                    if status != 200 or b"hello world" not in data or start != want:
                        raise SystemExit("%s/%s failed: HTTP %d, start %s, %r"
                                         % (k, script_name, status, start, data[:300]))
                    samples[k] = dt
                    time.sleep(0.005)    # the next spare, made ahead, is ready
                if i < 3:
                    continue
                r.setdefault((script_name, "bare"), []).append(bare)
                for k, dt in samples.items():
                    r.setdefault((script_name, k), []).append(dt)
        for c in clients.values():
            c.close()
        body, ctype = harness.build_multipart([("files", "main.py", HELLO, None)])
        settle()
        rate = {"bare": bare_parallel(8, duration, HELLO)}
        cpu = {}
        # the cold server last: its namespaces' teardown outlives it
        for k in ("warm", "warm8", "cold"):
            settle()
            rate[k], _, cpu[k] = throughput(servers[k].port, 8, duration, body, ctype,
                                            servers[k])
        settle()
        floor, floor_why = floor_rates(duration, 8)
        # what one run's program holds of its own, seen from inside it
        probe = (b"t = open('/proc/self/smaps_rollup').read()\n"
                 b"f = dict((l.split()[0][:-1], int(l.split()[1])) for l in t.splitlines()[1:])\n"
                 b"print('hello world', f['Rss'], f['Pss'], "
                 b"f['Private_Clean'] + f['Private_Dirty'])\n")
        pbody, pctype = harness.build_multipart([("files", "main.py", probe, None)])
        child = {}
        for k in ("cold", "warm"):
            c, got = Client(servers[k].port), []
            for _ in range(10):
                status, resp, data, _ = c.post(pbody, pctype)
                got.append([int(x) for x in data.split(b"hello world", 1)[1].split()[:3]])
            c.close()
            got.sort(key=lambda v: v[2])
            child[k] = got[len(got) // 2]
        mem = {}
        for k in ("warm", "preload"):
            if k in servers:
                zyg = harness.zygote_pids(harness.proc_table(), servers[k].worker_pids())
                m = [memory_kib(z) for z in zyg]
                mem[k] = (len(zyg), sum(x[0] for x in m), sum(x[1] for x in m))
        return {"latency": r, "rate8": rate, "cpu8": cpu, "memory": mem, "child": child,
                "floor": floor, "floor_why": floor_why, "work_root_fs": fs}
    finally:
        for srv in servers.values():
            srv.stop()
            if tmpfs and getattr(srv, "outer", None):
                subprocess.run(["umount", srv.outer], capture_output=True)
            srv.cleanup_dir()
        shutil.rmtree(d, ignore_errors=True)


SET_IMPORT = (b"import time\n"
              b"t = time.perf_counter()\n"
              b"import bench_heavy_0\n"
              b"print('hello world', time.perf_counter() - t)\n")


def warm_sets(n, duration, layer):
    """Zygotes of dependency sets (README "Warm start"), in one run: a set
    of 300 modules (t/pyindex.py heavy_wheel) from a private index, cached,
    served cold (warm_deps_after = 0) and warm, sample by sample in turn: p50
    of each, and its import's own time in a cold run against a bare start;
    then requests per second at concurrency 8 of each, with the default
    workers and with 8 (8 runs at a time, cold and warm alike); then the
    zygotes' memory with 4 such sets warm in one worker."""
    ix = pyindex.PackageIndex().start()
    servers = {}
    try:
        for i in range(4):
            # heavier than the tests' own: its import costs more than 5
            # bare starts on the machines pyexec is measured on
            ix.add(pyindex.heavy_wheel(ix.dir, "bench-heavy-%d" % i, "1.0",
                                       functions=120, methods=60))
        opts = ["pip_index_url=" + ix.simple_url, "pip_only_binary=yes"]
        kinds = {"cold": ["warm_deps_after=0"], "warm": [], "memory": [],
                 "cold8": ["warm_deps_after=0"], "warm8": []}
        for k, o in kinds.items():
            kw = {"workers": 1} if k == "memory" else {"workers": 8} if k.endswith("8") else {}
            servers[k] = harness.Server(name="bench-sets-" + k, sandbox=layer,
                                        options=opts + o, **kw)
            servers[k].start()
        if servers["warm"].request("GET", "/healthz").json().get("sandbox") != layer:
            print("dependency sets' zygotes: not measured (no %s layer here)\n" % layer)
            return None
        body, ctype = harness.build_multipart([("files", "main.py", SET_IMPORT, None)])
        path = "/execute?dependencies=bench-heavy-0"
        clients = {k: Client(servers[k].port) for k in ("cold", "warm")}
        d = tempfile.mkdtemp(prefix="pyexec-bench-sets-")
        lat = {"bare": [], "cold": [], "warm": [], "import_cold": []}
        for k in ("cold", "warm", "cold8", "warm8"):
            # the set installed, and its zygote earned in each of the
            # workers: 8 requests at a time keep every worker busy
            throughput(servers[k].port, 8, 3.0, body, ctype, None, path)
        try:
            main_in(d, b"print('hello world')\n")
            for i in range(n + 1):          # the first: connections made
                samples = {}
                for k, c in clients.items():
                    status, resp, data, dt = c.post(body, ctype, path)
                    if status != 200 or b"hello world" not in data:
                        raise SystemExit("sets/%s failed: HTTP %d %r" % (k, status, data[:300]))
                    samples[k] = (dt, resp.getheader("X-Execution-Start"), data)
                    time.sleep(0.005)
                bare = bare_start(d)
                if i < 1:
                    continue
                if samples["warm"][1] != "warm" or samples["cold"][1] != "cold":
                    raise SystemExit("sets: expected cold and warm, got %s and %s"
                                     % (samples["cold"][1], samples["warm"][1]))
                lat["bare"].append(bare)
                lat["cold"].append(samples["cold"][0])
                lat["warm"].append(samples["warm"][0])
                out = samples["cold"][2]
                lat["import_cold"].append(float(out.split(b"hello world", 1)[1].split()[0]))
        finally:
            shutil.rmtree(d, ignore_errors=True)
        for c in clients.values():
            c.close()
        rate, cpu = {}, {}
        for k in ("warm", "cold", "warm8", "cold8"):
            settle()
            rate[k], _, cpu[k] = throughput(servers[k].port, 8, duration, body, ctype,
                                            servers[k], path)
        # 4 sets, each with its zygote, in one worker
        c = Client(servers["memory"].port)
        for i in range(4):
            for _ in range(3):
                c.post(body.replace(b"bench_heavy_0", b"bench_heavy_%d" % i), ctype,
                       "/execute?dependencies=bench-heavy-%d" % i)
        c.close()
        zyg = harness.zygote_pids(harness.proc_table(), servers["memory"].worker_pids())
        mem = [memory_kib(z) for z in zyg]
        return {"latency": lat, "rate8": rate, "cpu8": cpu,
                "memory": (len(zyg), sum(m[0] for m in mem), sum(m[1] for m in mem))}
    finally:
        for srv in servers.values():
            srv.stop()
            srv.cleanup_dir()
        ix.stop()


def print_sets(w, figures):
    """The dependency sets' table and ratios (targets: warm p50 <= 0.15 x
    cold from the cache; rate at 8 >= 3 x cold's)."""
    lat = {k: percentile(v, 50) * 1e3 for k, v in w["latency"].items()}
    rate = w["rate8"]
    figures["sets"] = {"p50_ms": lat, "rate8": rate, "memory": w["memory"]}
    print("%-40s %9s %9s %9s" % ("a cached set of 300 modules (%d each), p50"
                                 % len(w["latency"]["cold"]), "bare", "cold", "warm"))
    print("%-40s %6.1f ms %6.1f ms %6.1f ms" % ("request through nginx", lat["bare"],
                                                lat["cold"], lat["warm"]))
    print("%-40s %16.1f ms" % ("  of which its import, in a cold run", lat["import_cold"]))
    print("%-40s %19.1f/s %7.1f/s" % ("requests at concurrency 8", rate["cold"], rate["warm"]))
    print("%-40s %19.1f/s %7.1f/s" % ("  with 8 workers (8 runs at a time)", rate["cold8"],
                                      rate["warm8"]))
    for k in ("cold", "warm", "cold8", "warm8"):
        per = w["cpu8"][k]
        if per:
            print("%-40s %s" % ("  CPU ms per request at 8, %s" % k,
                                "  ".join("%s %.2f" % (n, per[n]) for n in
                                          ("runs", "pyexec", "nginx", "client", "other", "idle"))))
    count, rss, pss = w["memory"]
    print("%-40s %d, RSS %d KiB, PSS %d KiB" % ("zygotes, 4 sets warm in 1 worker", count, rss,
                                                 pss))
    print()
    out = [("set's import / bare start", lat["import_cold"] / lat["bare"], ">= 5.00 (the setup)",
            lat["import_cold"] / lat["bare"] >= 5),
           ("warm set p50 / cold from cache p50", lat["warm"] / lat["cold"], "<= 0.15",
            lat["warm"] / lat["cold"] <= 0.15),
           ("warm set rate@8 / cold rate@8", rate["warm"] / rate["cold"], ">= 3.00",
            rate["warm"] / rate["cold"] >= 3),
           ("  with 8 workers, both", rate["warm8"] / rate["cold8"], ">= 3.00",
            rate["warm8"] / rate["cold8"] >= 3)]
    figures["sets"]["ratios"] = {label: v for label, v, _, _ in out}
    return out


def print_warm(w, figures):
    """The warm start's table and ratios (targets: hello p50 <= 0.5 x bare,
    rate at 8 >= 2 x bare's, import numpy preloaded <= 0.25 x bare)."""
    lat = {"%s_%s" % k: percentile(v, 50) * 1e3 for k, v in w["latency"].items()}
    p90 = {"%s_%s" % k: percentile(v, 90) * 1e3 for k, v in w["latency"].items()}
    rate = w["rate8"]
    figures["warm"] = {"p50_ms": lat, "p90_ms": p90, "rate8": rate, "memory": w["memory"],
                       "work_root_fs": w["work_root_fs"]}
    print("warm start: work_root on %s" % w["work_root_fs"])
    print("%-40s %9s %9s %9s %9s" % ("warm start (%d each), p50 / p90"
                                     % len(w["latency"][("hello", "bare")]),
                                     "bare", "cold", "warm", "refresh"))
    print("%-40s %6.1f ms %6.1f ms %6.1f ms %6.1f ms" % (
        "hello world, through nginx", lat["hello_bare"], lat["hello_cold"],
        lat["hello_warm"], lat["hello_refresh"]))
    print("%-40s %6.1f ms %6.1f ms %6.1f ms %6.1f ms" % (
        "  p90", p90["hello_bare"], p90["hello_cold"], p90["hello_warm"],
        p90["hello_refresh"]))
    if "numpy_bare" in lat:
        print("%-40s %6.1f ms %6.1f ms %6.1f ms  (numpy preloaded)" % (
            "import numpy, through nginx", lat["numpy_bare"], lat["numpy_cold"],
            lat["numpy_preload"]))
    print("%-40s %7.1f/s %7.1f/s %7.1f/s" % ("starts or requests at concurrency 8",
                                              rate["bare"], rate["cold"], rate["warm"]))
    print("%-40s %27.1f/s" % ("  warm with 8 workers (8 runs at a time)", rate["warm8"]))
    for k in ("cold", "warm", "warm8"):
        per = w["cpu8"][k]
        if per:
            print("%-40s %s" % ("  CPU ms per request at 8, %s" % k,
                                "  ".join("%s %.2f" % (n, per[n]) for n in
                                          ("runs", "pyexec", "nginx", "client", "other", "idle"))))
    floor = w["floor"]
    figures["warm"]["floor"] = floor
    if floor:
        print("%-40s %7.1f/s" % ("ceiling: initialised Python forked, 8", floor["fork"]))
        if "namespaces" in floor:
            print("%-40s %7.1f/s" % ("  each in 5 new namespaces", floor["namespaces"]))
        else:
            print("  each in 5 new namespaces: %s" % floor["namespaces_why"])
    else:
        print("ceiling: not measured (%s)" % w["floor_why"])
    for k, (count, rss, pss) in w["memory"].items():
        print("%-40s %d, RSS %d KiB, PSS %d KiB" % ("zygotes (%s)" % k, count, rss, pss))
    for k, (rss, pss, private) in w["child"].items():
        print("%-40s RSS %d KiB, PSS %d KiB, private %d KiB" % (
            "a run's program (%s), median of 10" % k, rss, pss, private))
    figures["warm"]["child"] = w["child"]
    print()
    out = [("warm p50 / bare p50 (hello)", lat["hello_warm"] / lat["hello_bare"], "<= 0.50",
            lat["hello_warm"] / lat["hello_bare"] <= 0.5),
           ("warm rate@8 / bare rate@8", rate["warm"] / rate["bare"], ">= 2.00",
            rate["warm"] / rate["bare"] >= 2.0),
           ("  with 8 workers", rate["warm8"] / rate["bare"], ">= 2.00",
            rate["warm8"] / rate["bare"] >= 2.0)]
    if floor:
        # no target: what a fork of Python alone reaches here, for scale
        for k, label in (("fork", "ceiling (fork) / bare rate@8"),
                         ("namespaces", "ceiling (fork, namespaces) / bare")):
            if k in floor:
                out.append((label, floor[k] / rate["bare"], "", None))
    if "numpy_bare" in lat:
        v = lat["numpy_preload"] / lat["numpy_bare"]
        out.append(("preloaded import numpy p50 / bare", v, "<= 0.25", v <= 0.25))
    figures["warm"]["ratios"] = {label: v for label, v, _, _ in out}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200, help="latency samples (200)")
    ap.add_argument("--duration", type=float, default=5.0,
                    help="seconds per throughput level (5)")
    ap.add_argument("--size-mib", type=int, default=20, help="size of the big upload/file (20)")
    ap.add_argument("--workers", type=int, default=None,
                    help="pyexec workers (default: pyexec's own, the number of CPUs)")
    ap.add_argument("--sandbox", default=None, choices=("auto", "namespaces", "rlimits"),
                    help="the sandbox layer of the main server (default: pyexec's own, "
                         "auto), and of part f's (rlimits; else namespaces)")
    ap.add_argument("--cold", type=int, default=5,
                    help="cold dependency installs to time (5; 0 skips the dependency part)")
    ap.add_argument("--layer-requests", type=int, default=100,
                    help="samples per layer for bare/rlimits/namespaces (100; 0 skips)")
    ap.add_argument("--warm-requests", type=int, default=100,
                    help="samples of bare/cold/warm for the warm start (100; 0 skips)")
    ap.add_argument("--set-requests", type=int, default=60,
                    help="samples of cold/warm for dependency sets' zygotes (60; 0 skips)")
    ap.add_argument("--tmpfs-work-root", action="store_true",
                    help="part f's servers keep work_root on a tmpfs of their own (needs root)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    a = ap.parse_args()
    if a.tmpfs_work_root and os.geteuid() != 0:
        ap.error("--tmpfs-work-root needs root (it mounts a tmpfs)")
    cores = os.cpu_count() or 1
    size = a.size_mib << 20

    room = "%dM" % (a.size_mib * 2 + 8)
    ix = deps_index(a.cold) if a.cold > 0 else None
    options = ["max_file_size=" + room, "max_generated_bytes=" + room]
    if ix:
        options += ["pip_index_url=" + ix.simple_url, "pip_only_binary=yes"]
    server = harness.Server(name="bench", workers=a.workers, max_upload=room, options=options,
                            sandbox=a.sandbox)
    deps = None
    try:
        server.start()
        workers = server.request("GET", "/healthz").json().get("workers", a.workers)
        body, ctype = harness.build_multipart([("files", "main.py", HELLO, None)])
        bare, lat, inner = hello_latency(server.port, a.requests, body, ctype)
        if ix:
            deps = deps_latency(server, a.requests, a.cold)
        thr = {c: throughput(server.port, c, a.duration, body, ctype, server) for c in (1, 2, 8)}
        big = big_transfers(server, size)
        problems = server.check_clean()
    finally:
        server.stop()
        server.cleanup_dir()
        if ix:
            ix.stop()
    lay = layers(a.layer_requests) if a.layer_requests > 0 else None
    warm = (warm_start(a.warm_requests, a.duration,
                       "rlimits" if a.sandbox == "rlimits" else "namespaces", a.tmpfs_work_root)
            if a.warm_requests > 0 else None)
    sets = (warm_sets(a.set_requests, a.duration,
                      "rlimits" if a.sandbox == "rlimits" else "namespaces")
            if a.set_requests > 0 else None)

    bare50, bare90 = percentile(bare, 50), percentile(bare, 90)
    p50, p90 = percentile(lat, 50), percentile(lat, 90)
    ideal = cores / bare50
    figures = {
        "cores": cores, "workers": workers, "requests": a.requests,
        "bare_p50_ms": bare50 * 1e3, "bare_p90_ms": bare90 * 1e3,
        "pyexec_p50_ms": p50 * 1e3, "pyexec_p90_ms": p90 * 1e3,
        "run_p50_ms": percentile(inner, 50) * 1e3,
        "throughput": {str(c): round(v[0], 2) for c, v in thr.items()},
        "throughput_errors": {str(c): v[1] for c, v in thr.items()},
        "cpu_ms_per_request_at_8": thr[8][2],
        "ideal_rps": ideal,
        "upload_s": big["upload"][0], "upload_rss_growth_kib": big["upload"][1],
        "generate_s": big["generate"][0], "generate_rss_growth_kib": big["generate"][1],
        "worker_peak_rss_kib": max(big["upload"][2], big["generate"][2]),
        "size_mib": a.size_mib,
    }
    ratio_deps = float("nan")
    if deps:
        d50, d90 = percentile(deps["none"], 50), percentile(deps["none"], 90)
        c50, c90 = percentile(deps["cached"], 50), percentile(deps["cached"], 90)
        ratio_deps = c50 / d50
        figures["deps"] = {
            "none_p50_ms": d50 * 1e3, "none_p90_ms": d90 * 1e3,
            "cached_p50_ms": c50 * 1e3, "cached_p90_ms": c90 * 1e3,
            "none_run_p50_ms": percentile(deps["none_run"], 50) * 1e3,
            "cached_run_p50_ms": percentile(deps["cached_run"], 50) * 1e3,
            "cold_installs": a.cold,
            "cold_p50_ms": percentile(deps["cold"], 50) * 1e3,
            "cold_min_ms": min(deps["cold"]) * 1e3, "cold_max_ms": max(deps["cold"]) * 1e3,
            "cold_deps_ms_p50": percentile(deps["cold_deps_ms"], 50),
            "first_request": deps["first"],
        }
    ratio_lat = p50 / bare50
    ratio_thr = thr[8][0] / ideal
    nan = float("nan")
    ratio_up = big["upload"][1] * 1024 / size if big["upload"][1] is not None else nan
    ratio_gen = big["generate"][1] * 1024 / size if big["generate"][1] is not None else nan

    print("pyexec benchmark: %d cores, %d workers, nginx %s, %s" %
          (cores, workers, "site " + os.path.relpath(server.site_source, harness.TOP_SRCDIR)
           if server.site_source != "built-in" else "built-in site", PYTHON))
    print()
    print("%-40s %12s %12s" % ("hello world (%d requests)" % a.requests, "p50", "p90"))
    print("%-40s %10.1f ms %9.1f ms" % ("bare python3 -s main.py", bare50 * 1e3, bare90 * 1e3))
    print("%-40s %10.1f ms %9.1f ms" % ("POST /execute via nginx", p50 * 1e3, p90 * 1e3))
    print("%-40s %10.1f ms" % ("  of which the run (X-Execution-Time)", figures["run_p50_ms"]))
    print()
    print("%-40s %12s %8s" % ("throughput (%.0f s each)" % a.duration, "req/s", "errors"))
    for c, (rps, err, _) in thr.items():
        print("%-40s %12.1f %8d" % ("concurrency %d" % c, rps, err))
    print("%-40s %12.1f" % ("ideal: cores / bare p50", ideal))
    per = thr[8][2]
    if per:
        print("%-40s %s" % ("CPU ms per request at concurrency 8",
                            "  ".join("%s %.2f" % (k, per[k]) for k in
                                      ("runs", "pyexec", "nginx", "client", "other", "idle"))))
    print()
    print("%-40s %12s %14s %12s" % ("%d MiB" % a.size_mib, "time", "peak RSS +", "peak RSS"))
    for label, key in (("upload (multipart, to disk)", "upload"),
                       ("generated file (reply)", "generate")):
        t, g, peak = big[key]
        print("%-40s %10.2f s %10s KiB %8d KiB" % (label, t, "n/a" if g is None else g, peak))
    print()
    if deps:
        f = figures["deps"]
        print("%-40s %12s %12s" % ("dependencies (%d requests each)" % a.requests, "p50", "p90"))
        print("%-40s %10.1f ms %9.1f ms" % ("POST /execute, no dependencies",
                                             f["none_p50_ms"], f["none_p90_ms"]))
        print("%-40s %10.1f ms %9.1f ms" % ("  ?dependencies=bench-dep (cached)",
                                             f["cached_p50_ms"], f["cached_p90_ms"]))
        print("%-40s %10.1f ms %12s" % ("  of which the run, no dependencies",
                                         f["none_run_p50_ms"], ""))
        print("%-40s %10.1f ms %12s" % ("  of which the run, cached set",
                                         f["cached_run_p50_ms"], ""))
        print("%-40s %10.1f ms %9s    min %.0f, max %.0f ms; deps_ms p50 %.0f"
              % ("cold install (%d new sets, 1 wheel)" % a.cold, f["cold_p50_ms"], "",
                 f["cold_min_ms"], f["cold_max_ms"], f["cold_deps_ms_p50"]))
        print()
    ns_extra = {}
    if lay:
        figures["layers"] = {}
        print("%-40s %9s %9s %9s %9s" % ("sandbox layers (%d each), p50" % a.layer_requests,
                                         "bare", "rlimits", "namespc", "ns - bare"))
        for name, r in lay.items():
            b = percentile(r["bare"], 50) * 1e3
            rl, ns = percentile(r["rlimits"], 50) * 1e3, percentile(r["namespaces"], 50) * 1e3
            rlr, nsr = percentile(r["rlimits_run"], 50) * 1e3, percentile(r["namespaces_run"], 50) * 1e3
            figures["layers"][name] = {"bare_ms": b, "rlimits_ms": rl, "namespaces_ms": ns,
                                       "rlimits_run_ms": rlr, "namespaces_run_ms": nsr}
            print("%-40s %6.1f ms %6.1f ms %6.1f ms %+6.1f ms" % (
                "%s: request through nginx" % name, b, rl, ns, ns - b))
            print("%-40s %9s %6.1f ms %6.1f ms %+6.1f ms" % (
                "%s: the run (X-Execution-Time)" % name, "", rlr, nsr, nsr - b))
            # X-Execution-Time starts once the sandbox is set up: the cost of
            # the layer shows in the whole request, against the rlimits one.
            figures["layers"][name]["namespaces_extra_ms"] = ns - rl
            print("%-40s %+6.1f ms (what a run pays for the namespace layer)" % (
                "%s: namespaces - rlimits request" % name, ns - rl))
            ns_extra[name] = ns - rl
        print()
    elif a.layer_requests > 0:
        print("sandbox layers: the namespace layer is not available on this machine\n")
    warm_ratios = print_warm(warm, figures) if warm else []
    warm_ratios += print_sets(sets, figures) if sets else []
    print("ratios                                      value   target")
    print("%-40s %9.2f   <= 1.30 %s" % ("p50 / bare p50", ratio_lat, "ok" if ratio_lat <= 1.3 else "MISSED"))
    print("%-40s %9.2f   >= 0.80 %s" % ("throughput@8 / (cores / bare p50)", ratio_thr,
                                        "ok" if ratio_thr >= 0.8 else "MISSED"))
    print("%-40s %9.3f   ~ 0     %s" % ("worker RSS growth / upload size", ratio_up,
                                        "ok" if ratio_up < 0.05 else "MISSED" if ratio_up == ratio_up else "n/a (no worker seen)"))
    print("%-40s %9.3f   ~ 0     %s" % ("worker RSS growth / file size", ratio_gen,
                                        "ok" if ratio_gen < 0.05 else "MISSED" if ratio_gen == ratio_gen else "n/a (no worker seen)"))
    if deps:
        f = figures["deps"]
        diff = f["cached_p50_ms"] - f["none_p50_ms"]
        ok = ratio_deps <= 1.05 or diff <= 1.0
        print("%-40s %9.2f   <= 1.05 or +1 ms %s (%+.2f ms)"
              % ("cached deps p50 / no deps p50", ratio_deps, "ok" if ok else "MISSED", diff))
    for name, extra in ns_extra.items():
        print("%-40s %+8.2f ms <= +3 ms %s" % ("namespace layer's cost per run (%s)" % name,
                                             extra, "ok" if extra <= 3 else "MISSED"))
    for label, value, target, ok in warm_ratios:
        print("%-40s %9.2f   %s %s" % (label, value, target,
                                      "" if ok is None else "ok" if ok else "MISSED"))
    if problems:
        print("\nafter the run: " + "; ".join(problems))
    if a.json:
        figures["ratios"] = {"latency": ratio_lat, "throughput": ratio_thr,
                             "rss_upload": ratio_up, "rss_generate": ratio_gen,
                             "deps_cached": ratio_deps}
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
