"""End-to-end: GET /metrics moves as requests are made, through a real
nginx, and Prometheus's own checker (promtool, Debian's prometheus package)
accepts the page where it is installed.

One private server with a package index on loopback (t/pyindex.py): the
counters of every family are read before and after a set of requests, and
each must have moved by exactly what those requests did.
"""

import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import pyindex  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse(text):
    """{(name, labels): value} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


class Metrics(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        cls.ix = pyindex.PackageIndex().start()
        cls.ix.add_module("probe-metrics", "1.0")

    @classmethod
    def tearDownClass(cls):
        cls.ix.stop()

    def page(self, s):
        r = s.request("GET", "/metrics")
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("Content-Type"), "text/plain; version=0.0.4", r.describe())
        return r.body.decode()

    def test_counters_move_with_requests(self):
        s = self.private_server(workers=2, options=["pip_index_url=" + self.ix.simple_url])
        before = parse(self.page(s))
        hello = {"main.py": b"print('hello')\n"}
        self.assertRan(s.post_execute(hello))
        self.assertRan(s.post_execute({"main.py": b"import sys\nsys.exit(2)\n"}), "error", 2)
        self.assertRan(s.post_execute({"main.py": b"import time\ntime.sleep(5)\n"},
                                      query="timeout=0.3"), "timeout", None)
        self.assertStatus(s.post_execute({"helper.py": b"x = 1\n"}), 400)
        dep = "dependencies=probe-metrics"
        r = s.post_execute({"main.py": b"import probe_metrics\nprint('dep')\n"}, query=dep)
        self.assertRan(r)
        self.assertEqual(r.headers.get("X-Dependencies"), "installed")
        r = s.post_execute({"main.py": b"import probe_metrics\nprint('dep')\n"}, query=dep)
        self.assertEqual(r.headers.get("X-Dependencies"), "cached")
        text = self.page(s)
        after = parse(text)

        def moved(name, labels=""):
            return after.get((name, labels), 0) - before.get((name, labels), 0)

        self.assertEqual(moved("pyexec_requests_total", '{route="execute",code="200"}'), 5)
        self.assertEqual(moved("pyexec_requests_total", '{route="execute",code="400"}'), 1)
        # a page counts its own request (as Prometheus expects): the second one
        self.assertEqual(moved("pyexec_requests_total", '{route="metrics",code="200"}'), 1)
        self.assertEqual(moved("pyexec_executions_total", '{status="ok"}'), 3)
        self.assertEqual(moved("pyexec_executions_total", '{status="error"}'), 1)
        self.assertEqual(moved("pyexec_executions_total", '{status="timeout"}'), 1)
        self.assertEqual(moved("pyexec_phase_seconds_count", '{phase="run"}'), 5)
        self.assertEqual(moved("pyexec_phase_seconds_count", '{phase="reply"}'), 5)
        self.assertEqual(moved("pyexec_phase_seconds_count", '{phase="dependencies"}'), 2)
        self.assertGreaterEqual(moved("pyexec_phase_seconds_count", '{phase="upload"}'), 5)
        self.assertGreaterEqual(moved("pyexec_phase_seconds_sum", '{phase="run"}'), 0.3)
        self.assertEqual(moved("pyexec_dependency_cache_total", '{event="miss"}'), 1)
        self.assertEqual(moved("pyexec_dependency_cache_total", '{event="install"}'), 1)
        self.assertEqual(moved("pyexec_dependency_cache_total", '{event="hit"}'), 1)
        self.assertEqual(after[("pyexec_dependency_cache_entries", "")], 1)
        self.assertGreater(after[("pyexec_dependency_cache_bytes", "")], 0)
        self.assertEqual(after[("pyexec_workers", "")], 2)
        # this scrape is the one busy worker
        self.assertEqual(after[("pyexec_workers_busy", "")], 1)
        self.assertEqual(after[("pyexec_workers_idle", "")], 1)
        layer = s.request("GET", "/healthz").json()["sandbox"]
        self.assertEqual(after[("pyexec_sandbox_info", '{layer="%s"}' % layer)], 1)
        # Every run found its worker's sandbox set up ahead, the one that
        # installed too: it took its sandbox before pip's run, which kept it.
        ahead = moved("pyexec_sandbox_setups_total", '{when="ahead"}')
        on_request = moved("pyexec_sandbox_setups_total", '{when="request"}')
        if layer == "namespaces":
            self.assertEqual((ahead, on_request), (5, 0))
        else:
            self.assertEqual((ahead, on_request), (0, 0))
        # a histogram's buckets are cumulative and end at its count
        buckets = [v for (n, l), v in sorted(after.items())
                   if n == "pyexec_phase_seconds_bucket" and 'phase="run"' in l]
        self.assertEqual(max(buckets), after[("pyexec_phase_seconds_count", '{phase="run"}')])

    def test_promtool_accepts_the_page(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool is not installed (Debian's prometheus package)")
        s = self.private_server(workers=1)
        self.assertRan(s.post_execute({"main.py": b"print(1)\n"}))
        p = subprocess.run([promtool, "check", "metrics"], input=self.page(s).encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout.decode("utf-8", "replace"))
        self.assertEqual(p.stdout.decode("utf-8", "replace").strip(), "")


if __name__ == "__main__":
    harness.main()
