"""End-to-end: a bounded mixed load through a real nginx, every reply checked.

Eight kinds of request, shuffled with a fixed seed, sent 16 at a time:
hello world, a non-zero exit, a generated PNG, a request without main.py,
a run cut by timeout=0.5, a cached dependency, a 5 MiB upload and a 5 MiB
stdout. Each reply is compared with what that kind must return (status,
headers, exact bytes), not only counted; a wrong answer or a 5xx fails the
test. Afterwards no process and nothing in work_root is left, and no
worker's resident memory grew.

Size: PYEXEC_LOAD_REQUESTS (default 400, what `make check` runs); the long
form is PYEXEC_LOAD_REQUESTS=2000. A summary is printed as a TAP comment.
"""

import collections
import concurrent.futures
import hashlib
import os
import random
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import pyindex  # noqa: E402
from harness import script  # noqa: E402

REQUESTS = int(os.environ.get("PYEXEC_LOAD_REQUESTS", "400"))
CONCURRENCY = 16
SEED = 20240611
MIB = 1 << 20
MISSING_MAIN = "main.py not found. Please upload a valid main.py file."
DEP = "probe-load==1.0"
REQUEST_TIMEOUT = 120     # seconds for one request, queueing included

# Worker memory: the late VmRSS may exceed the early one by 10% plus this
# much. A worker's RSS moves by a few pages between two idle moments for
# reasons that are not leaks: libfcgi's and stdio's buffers, the pages of
# glibc's heap that the last request touched and free() did not return, the
# shared metrics page and the pages of libmagic's database touched by types
# seen for the first time. 512 KiB is 128 pages: far above that noise,
# far below what a leak of even a few hundred bytes per request shows after
# 2000 requests (a leak of the 5 MiB upload or output, or of a buffer per
# request, is megabytes).
RSS_SLACK_KIB = 512
RSS_GROWTH = 0.10

# The PNG the script writes (harness.PNG_SRC, run there) and the bytes
# expected of it (the same source, run here).
PNG_SRC = harness.PNG_SRC
PNG = harness.png_bytes(16, 8)
UPLOAD = random.Random(SEED).randbytes(5 * MIB)
UPLOAD_OUT = ("%d %s\n" % (len(UPLOAD), hashlib.sha256(UPLOAD).hexdigest())).encode()
# 5 MiB of stdout: a pattern the script makes the same way (256-byte blocks
# numbered so that a lost, doubled or swapped block shows)
BIG_OUT = b"".join(b"%06d" % i + bytes(range(250)) for i in range(5 * MIB // 256))
assert len(BIG_OUT) == 5 * MIB


class Kind:
    """One kind of request: how to send it and how to check its reply."""

    def __init__(self, name, files, query=None, check=None):
        self.name = name
        self.body, self.ctype = harness.build_multipart(
            [("files", n, d, None) for n, d in files.items()])
        self.path = "/execute" + ("?" + query if query else "")
        self.check = check


def _ran(r, status="ok", exit_code=0):
    """Problems of a run reply (a list of strings, empty when right)."""
    p = []
    if r.status != 200:
        return ["HTTP %d" % r.status]
    if not r.content_type.startswith("multipart/form-data; boundary="):
        p.append("content type %r" % r.content_type)
    if r.headers.get("X-Execution-Status") != status:
        p.append("X-Execution-Status %r" % r.headers.get("X-Execution-Status"))
    if exit_code is not None and r.headers.get("X-Exit-Code") != str(exit_code):
        p.append("X-Exit-Code %r" % r.headers.get("X-Exit-Code"))
    if not r.headers.get("X-Request-Id"):
        p.append("no X-Request-Id")
    return p


def _output(r, stdout, stderr=b"", files=None, truncated=None):
    p = []
    try:
        if r.stdout != stdout:
            p.append("stdout %d bytes %r..." % (len(r.stdout), r.stdout[:60]))
        if stderr is not None and r.stderr != stderr:
            p.append("stderr %r" % r.stderr[:300])
        got = {k: (v.content_type, v.data) for k, v in r.files.items()}
        if got != (files or {}):
            p.append("files %r" % {k: (c, len(d)) for k, (c, d) in got.items()})
    except AssertionError as e:
        p.append("unparsable reply: %s" % e)
    if r.headers.get("X-Truncated") != truncated:
        p.append("X-Truncated %r" % r.headers.get("X-Truncated"))
    return p


def check_hello(r):
    return _ran(r) or _output(r, b"hello\n")


def check_exit2(r):
    return _ran(r, "error", 2) or _output(r, b"")


def check_png(r):
    return _ran(r) or _output(r, b"", files={"plot.png": ("image/png", PNG)})


def check_missing_main(r):
    if r.status != 400:
        return ["HTTP %d" % r.status]
    if not r.content_type.startswith("application/json"):
        return ["content type %r" % r.content_type]
    try:
        doc = r.json()
    except ValueError as e:
        return ["not JSON: %s" % e]
    p = []
    if doc.get("detail") != MISSING_MAIN:
        p.append("detail %r" % doc.get("detail"))
    if doc.get("error") != "missing_main":
        p.append("error %r" % doc.get("error"))
    return p


def check_timeout(r):
    p = _ran(r, "timeout", None)
    if p:
        return p
    p = _output(r, b"started\n", stderr=None)
    # The client's own wait includes the queue in front of the workers
    # (16 clients, a few workers), so the run's time is read from the reply.
    try:
        wall = float(r.headers.get("X-Execution-Time"))
    except (TypeError, ValueError):
        return p + ["X-Execution-Time %r" % r.headers.get("X-Execution-Time")]
    if not 0.45 <= wall < 1.5:
        p.append("a 0.5 s timeout ended the run after %.3f s" % wall)
    return p


def check_dep(r):
    p = _ran(r) or _output(r, b"probe-load 1.0\n")
    if not p and r.headers.get("X-Dependencies") != "cached":
        p.append("X-Dependencies %r" % r.headers.get("X-Dependencies"))
    return p


def check_upload(r):
    return _ran(r) or _output(r, UPLOAD_OUT)


def check_big_output(r):
    return _ran(r) or _output(r, BIG_OUT)


def kinds():
    return [
        Kind("hello", {"main.py": script('print("hello")\n')}, check=check_hello),
        Kind("exit2", {"main.py": script("import sys; sys.exit(2)\n")}, check=check_exit2),
        Kind("png", {"main.py": script(PNG_SRC + '''
import os
with open(os.path.join(os.environ["OUTPUT_DIR"], "plot.png"), "wb") as f:
    f.write(make_png(16, 8))
''')}, check=check_png),
        Kind("missing_main", {"helper.py": script("x = 1\n")}, check=check_missing_main),
        Kind("timeout", {"main.py": script('''
            import time
            print("started", flush=True)
            time.sleep(30)
            ''')}, query="timeout=0.5", check=check_timeout),
        Kind("dependency", {"main.py": script('''
            import probe_load
            print("probe-load", probe_load.VERSION)
            ''')}, query="dependencies=" + urllib.parse.quote(DEP), check=check_dep),
        Kind("upload_5m", {"main.py": script('''
            import hashlib
            data = open("data.bin", "rb").read()
            print(len(data), hashlib.sha256(data).hexdigest())
            '''), "data.bin": UPLOAD}, check=check_upload),
        Kind("output_5m", {"main.py": script('''
            import sys
            out = sys.stdout.buffer
            for i in range(%d):
                out.write(b"%%06d" %% i + bytes(range(250)))
            ''' % (5 * MIB // 256))}, check=check_big_output),
    ]


class Load(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        self.ix = pyindex.PackageIndex().start()
        self.addCleanup(self.ix.stop)
        self.ix.add_module("probe-load", "1.0")
        # max_output raised so that the 5 MiB stdout comes back whole
        self.s = self.private_server(name="load", workers=None, options=[
            "max_output=8M", "pip_index_url=" + self.ix.simple_url, "pip_only_binary=yes"])

    def send(self, kind):
        """(kind name, Reply or exception, problems)."""
        try:
            r = self.s.request("POST", kind.path, body=kind.body,
                               headers={"Content-Type": kind.ctype}, timeout=REQUEST_TIMEOUT)
        except Exception as e:  # noqa: BLE001 - a failed request is a wrong answer
            return kind.name, e, ["%s: %s" % (type(e).__name__, e)]
        return kind.name, r, kind.check(r)

    def rss(self, workers):
        """VmRSS of each worker once all are at rest: a reply is sent before
        its run's clean-up, so the last replies may arrive while workers
        still remove directories."""
        harness.wait_for(lambda: not self.s.leftovers() and not self.s.work_root_entries(), 5)
        time.sleep(0.2)
        return {w: harness.proc_status_kib(w, "VmRSS") for w in workers}

    def test_mixed_load(self):
        s = self.s
        ks = kinds()
        by_name = {k.name: k for k in ks}
        # the dependency set installed once, before the load
        r = s.request("POST", by_name["dependency"].path, body=by_name["dependency"].body,
                      headers={"Content-Type": by_name["dependency"].ctype}, timeout=120)
        self.assertEqual(r.headers.get("X-Dependencies"), "installed", r.describe())
        self.assertEqual(_ran(r) + _output(r, b"probe-load 1.0\n"), [], r.describe())

        n = max(REQUESTS, len(ks))
        plan = [ks[i % len(ks)] for i in range(n)]
        random.Random(SEED).shuffle(plan)
        workers = harness.wait_for(lambda: len(s.worker_pids()) >= 1 and s.worker_pids(), 3)
        self.assertTrue(workers, "no worker")

        counts = collections.Counter()
        wrong = collections.Counter()
        errors_5xx = 0
        examples = []
        lock = threading.Lock()

        def record(result):
            nonlocal errors_5xx
            name, r, problems = result
            with lock:
                counts[name] += 1
                if isinstance(r, harness.Reply) and r.status >= 500:
                    errors_5xx += 1
                if problems:
                    wrong[name] += 1
                    if len(examples) < 5:
                        examples.append("%s: %s\n%s" % (name, "; ".join(problems),
                                        r.describe(600) if isinstance(r, harness.Reply)
                                        else repr(r)))

        def phase(items):
            with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
                for result in pool.map(self.send, items):
                    record(result)

        # The first 10%, then (all idle) the early memory figure, then the
        # rest and the late figure: both taken with no request in hand, so
        # they compare a worker with itself at rest.
        early_n = max(n // 10, len(ks))
        t0 = time.monotonic()
        phase(plan[:early_n])
        rss_early = self.rss(workers)
        phase(plan[early_n:])
        wall = time.monotonic() - t0
        rss_late = self.rss(workers)
        workers_late = s.worker_pids()

        problems_after = s.check_clean()

        lines = ["load: %d requests, concurrency %d, %d workers, %.1f s, %.1f req/s"
                 % (n, CONCURRENCY, len(workers), wall, n / wall),
                 "by kind: " + ", ".join("%s %d" % (k.name, counts[k.name]) for k in ks),
                 "wrong answers: %d %s, 5xx: %d" % (sum(wrong.values()), dict(wrong) or "",
                                                    errors_5xx),
                 "worker VmRSS KiB early -> late: " + ", ".join(
                     "%d: %s -> %s" % (w, rss_early[w], rss_late[w]) for w in workers)]
        for line in lines:
            print("# " + line, flush=True)

        self.assertEqual(sum(counts.values()), n)
        self.assertEqual((sum(wrong.values()), errors_5xx), (0, 0),
                         "wrong answers or 5xx:\n" + "\n\n".join(examples))
        self.assertEqual(problems_after, [])
        self.assertEqual(s.work_root_entries(), [])
        self.assertEqual(workers_late, workers, "workers were replaced during the load:\n"
                         + s.log_tail())
        if harness.sanitized_build():
            self.skipTest("AddressSanitizer build: RSS holds ASan's quarantine, and "
                          "LeakSanitizer checks for leaks instead (every reply checked)")
        for w in workers:
            early, late = rss_early[w], rss_late[w]
            self.assertIsNotNone(late, "worker %d gone" % w)
            self.assertLessEqual(late, early * (1 + RSS_GROWTH) + RSS_SLACK_KIB,
                                 "worker %d VmRSS grew from %d to %d KiB" % (w, early, late))


if __name__ == "__main__":
    harness.main()
