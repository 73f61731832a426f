"""End-to-end: zygotes of dependency sets (README "Warm start"), behind
nginx, with a package index on loopback (t/pyindex.py): a set asked for
warm_deps_after times gets a zygote of its own, whose runs answer as cold
ones do; a module of the set that breaks a preload rule is simply not
preloaded; warm_zygotes_max bounds them, the least recently used going
first; requests without dependencies keep the worker's own zygote. On the
namespace layer (Sets) and on the rlimits layer (PlainSets)."""

import os
import re
import signal
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import pyindex  # noqa: E402
from harness import script  # noqa: E402


def _fill_index(ix):
    """The wheels of this run's package index."""
    ix.add_module("set-plain", "1.0", body="TABLE = {'a': 1}\n")
    # an import that prints: it must not be preloaded
    ix.add_module("set-printer", "1.0", body="print('printer imported')\n")
    # a .pth file (run by site, as in a cold run), and a module that
    # shadows a standard one (the set's site dir comes first)
    ix.add(pyindex.build_wheel(ix.dir, "set-pth", "1.0", {
        "set_pth/__init__.py": "VERSION = '1.0'\n",
        "set_pth.pth": "import os; os.environ['SET_PTH'] = 'ran'\n",
        "colorsys.py": "WHERE = 'the set'\n",
    }))
    ix.add(pyindex.heavy_wheel(ix.dir, "set-heavy", "1.0", modules=40))
    # 400 KiB each: two fit in a cache of 1M, three do not
    for n in range(1, 4):
        ix.add(pyindex.build_wheel(ix.dir, "set-big-%d" % n, "1.0", {
            "set_big_%d/__init__.py" % n: "VERSION = '1.0'\n",
            "set_big_%d/data.bin" % n: os.urandom(400 << 10),
        }))


index = pyindex.on_first_use(_fill_index)


# What a run sees of itself and of the set, printed before and after it
# imports the set's modules: compared byte for byte between warm and cold
# (sys.path[0] is the run's directory, its own on the rlimits layer).
PROBE = script('''
    import os, sys
    print(sorted(sys.modules))
    print(sys.path[1:])
    print(os.environ.get("PYTHONPATH"), os.environ.get("SET_PTH"))
    import importlib
    for name in sys.argv[1:] or MODULES:
        m = importlib.import_module(name)
        print(name, m.__file__, m.__spec__.origin, sorted(k for k in vars(m) if not k.startswith("__")))
    print(sorted(sys.modules))
''')


def probe(*modules):
    return PROBE.replace(b"MODULES", repr(list(modules)).encode())


def prefetch(s, value):
    """pyexec-fcgi --prefetch value with s's configuration: (status, out)."""
    return s.command("--prefetch", value)


def by_set(s, name):
    """A gauge of /metrics by set: {set: value}."""
    out = {}
    for line in s.request("GET", "/metrics").body.decode().splitlines():
        m = re.match(r'^%s\{set="([0-9a-f]{16}|other)"\} (\S+)$' % name, line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def zygotes(s):
    """How many zygotes of dependency sets the server's workers have."""
    return sum(by_set(s, "pyexec_set_zygotes").values())


def set_zygote_pids(s):
    """The pids of s's zygotes of dependency sets: those with a cache entry
    (deps_cache/<key>) on PYTHONPATH."""
    return [p for p in harness.zygote_pids(harness.proc_table(), s.worker_pids())
            if re.search(r"(^|\0)PYTHONPATH=[^\0]*/deps/[0-9a-f]{64}(:|\0)",
                         harness._read("/proc/%d/environ" % p, "r") or "")]


def metric(s, name):
    """The value of one line of /metrics (labels included in name)."""
    for line in s.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


class Sets(harness.E2ETestCase):
    """Zygotes of dependency sets, namespace layer."""

    LAYER = "namespaces"

    @classmethod
    def setUpClass(cls):
        cls.ix = index()

    def server(self, options=(), workers=1, name="sets"):
        kw = {} if self.LAYER == "namespaces" else {"sandbox": "rlimits"}
        s = self.private_server(name=name, workers=workers, options=[
            "warm=yes", "pip_index_url=" + self.ix.simple_url, "pip_only_binary=yes"]
            + list(options), **kw)
        health = s.request("GET", "/healthz").json()
        if health.get("sandbox") != self.LAYER:
            self.skipTest("these tests are of the %s layer; this server runs %s"
                          % (self.LAYER, health.get("sandbox")))
        self.assertEqual(health.get("warm"), "on", health)
        return s

    def run_set(self, s, deps, src, start=None):
        r = s.post_execute({"main.py": src}, query="dependencies=" + deps)
        self.assertRan(r)
        if start is not None:
            self.assertEqual(r.headers.get("X-Execution-Start"), start, r.describe())
        return r

    def test_third_request_runs_warm_and_as_a_cold_one(self):
        s = self.server()
        src = probe("set_plain", "set_heavy")
        # the first two are counted (cold: installed, then cached), the set
        # then gets its zygote
        want = self.run_set(s, "set-plain,set-heavy", src, "cold")
        for start in ("cold", "warm", "warm"):
            r = self.run_set(s, "set-plain,set-heavy", src, start)
            self.assertEqual((r.stdout, r.stderr), (want.stdout, want.stderr))
        self.assertEqual(metric(s, 'pyexec_set_runs_started_total{start="warm"}'), 2)
        self.assertEqual(metric(s, 'pyexec_set_runs_started_total{start="cold"}'), 2)
        self.assertEqual(metric(s, 'pyexec_set_zygotes_total{event="started"}'), 1)
        self.assertEqual(zygotes(s), 1)
        rss = by_set(s, "pyexec_set_zygotes_resident_bytes")
        self.assertEqual(list(rss), list(by_set(s, "pyexec_set_zygotes")))
        self.assertGreater(sum(rss.values()), 1 << 20)
        self.assertEqual(s.request("GET", "/healthz").json().get("set_zygotes"), 1)
        self.assertRegex(s.log_since_mark(), r"zygote \d+ for dependency set [0-9a-f]{16} "
                         r"ready \(preloaded: set_heavy,set_plain\)")
        # the set's modules were preloaded: a warm import takes no time
        timed = script('''
            import time
            t = time.perf_counter()
            import set_heavy
            print(time.perf_counter() - t < 0.01, len(set_heavy.m039.TABLE))
        ''')
        self.assertEqual(self.run_set(s, "set-plain,set-heavy", timed, "warm").stdout,
                         b"True 40\n")

    def test_pth_files_and_a_shadowed_standard_module(self):
        s = self.server()
        src = probe("set_pth", "colorsys")
        want = self.run_set(s, "set-pth", src, "cold")
        self.assertIn(b" ran\n", want.stdout)
        self.assertIn(b"colorsys.py", want.stdout)
        for start in ("cold", "warm", "warm"):
            r = self.run_set(s, "set-pth", src, start)
            self.assertEqual((r.stdout, r.stderr), (want.stdout, want.stderr))
        shadow = script('import colorsys\nprint(colorsys.WHERE)\n')
        self.assertEqual(self.run_set(s, "set-pth", shadow, "warm").stdout, b"the set\n")

    def test_module_that_prints_is_not_preloaded(self):
        s = self.server()
        src = script('import set_printer\nprint("after", set_printer.VERSION)\n')
        for start in ("cold", "cold", "warm", "warm"):
            r = self.run_set(s, "set-printer,set-plain", src, start)
            self.assertEqual(r.stdout, b"printer imported\nafter 1.0\n")
        log = s.log_since_mark()
        self.assertIn("not preloaded: set_printer printed when imported", log)
        self.assertRegex(log, r"ready \(preloaded: set_plain\)")

    def test_warm_zygotes_max_retires_the_least_recently_used(self):
        s = self.server(options=["warm_zygotes_max=1"])
        hello = script('print("hi")\n')
        for start in ("cold", "cold", "warm"):
            self.run_set(s, "set-plain", hello, start)
        for start in ("cold", "cold", "warm"):
            self.run_set(s, "set-heavy", hello, start)
        self.assertEqual(metric(s, 'pyexec_set_zygotes_total{event="retired"}'), 1)
        self.assertEqual(zygotes(s), 1)
        self.assertIn("retired (warm_zygotes_max", s.log_since_mark())
        # the retired set earns its zygote again, as a new one does
        for start in ("cold", "cold", "warm"):
            self.run_set(s, "set-plain", hello, start)

    def test_warm_zygotes_memory_retires_the_least_recently_used(self):
        # a share smaller than any zygote: the newest is kept, the others go
        s = self.server(options=["warm_zygotes_memory=1M"])
        hello = script('print("hi")\n')
        for start in ("cold", "cold", "warm"):
            self.run_set(s, "set-plain", hello, start)
        for start in ("cold", "cold", "warm"):
            self.run_set(s, "set-heavy", hello, start)
        self.assertEqual(zygotes(s), 1)
        self.assertEqual(metric(s, 'pyexec_set_zygotes_total{event="retired"}'), 1)
        self.assertRegex(s.log_since_mark(), r"set [0-9a-f]{16} retired \(warm_zygotes_memory: "
                         r"\d+ bytes, this worker's share 1048576\)")
        self.run_set(s, "set-heavy", hello, "warm")
        self.run_set(s, "set-plain", hello, "cold")

    def test_runs_without_dependencies_stay_warm_between(self):
        s = self.server()
        hello = script('import sys\nprint("set_plain" in sys.modules)\n')
        for i in range(3):
            self.run_set(s, "set-plain", hello)
        for i in range(3):
            r = s.post_execute({"main.py": hello})
            self.assertRan(r)
            self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())
            self.assertEqual(r.stdout, b"False\n")
            r = self.run_set(s, "set-plain", hello, "warm")
            self.assertEqual(r.stdout, b"False\n")

    def test_zygote_of_a_set_refreshed_after_warm_runs(self):
        s = self.server(options=["warm_runs=2"])
        hello = script('import set_plain\nprint("hi", set_plain.TABLE)\n')
        for start in ("cold", "cold", "warm"):
            self.run_set(s, "set-plain", hello, start)
        pids = set()
        # each run is warm: one while its zygote is replaced waits for the new one
        for _ in range(6):
            r = self.run_set(s, "set-plain", hello, "warm")
            self.assertEqual(r.stdout, b"hi {'a': 1}\n")
            pids |= set(set_zygote_pids(s))
        self.assertGreaterEqual(metric(s, 'pyexec_set_zygotes_total{event="refreshed"}'), 2)
        self.assertGreaterEqual(len(pids), 3, "the set's zygotes seen: %r" % sorted(pids))
        # the last one was replaced as it made the next run ahead
        self.assertTrue(harness.wait_for(lambda: zygotes(s) == 1, 5), s.log_since_mark())
        self.assertEqual(metric(s, 'pyexec_set_zygotes_total{event="lost"}'), 0)

    def test_zygote_of_a_set_killed(self):
        s = self.server()
        hello = script('print("hi")\n')
        for start in ("cold", "cold", "warm"):
            self.run_set(s, "set-plain", hello, start)
        set_zygotes = set_zygote_pids(s)
        self.assertEqual(len(set_zygotes), 1, "the set's zygote among the worker's")
        os.kill(set_zygotes[0], 9)
        # served all the same (cold until replaced), then warm again
        r = self.run_set(s, "set-plain", hello)
        self.assertEqual(r.stdout, b"hi\n")
        self.assertTrue(harness.wait_for(
            lambda: self.run_set(s, "set-plain", hello).headers.get("X-Execution-Start")
            == "warm", 10), "the set's zygote was not replaced")
        self.assertRegex(s.log_since_mark(), re.compile(
            r"the zygote of dependency set [0-9a-f]{16} is gone|zygote: pid \d+ is gone"))


    def test_entry_the_cache_wants_retires_its_zygote(self):
        s = self.server(options=["deps_cache_max=1M"])
        hello = script('print("hi")\n')
        for start in ("cold", "cold", "warm"):
            self.run_set(s, "set-big-1", hello, start)
        self.assertEqual(zygotes(s), 1)
        # two more entries: the cache is over its size, and its least
        # recently used entry is the one the zygote holds
        self.run_set(s, "set-big-2", hello, "cold")
        self.run_set(s, "set-big-3", hello, "cold")
        self.assertTrue(harness.wait_for(lambda: zygotes(s) == 0, 5),
                        "the zygote still holds the entry:\n" + s.log_since_mark())
        self.assertRegex(s.log_since_mark(), r"zygote of dependency set [0-9a-f]{16} "
                         r"retired: the cache wants its entry")
        self.assertEqual(metric(s, 'pyexec_set_zygotes_total{event="retired"}'), 1)
        # the set is served all the same, cold, and earns its zygote again
        for start in ("cold", "cold", "warm"):
            self.run_set(s, "set-big-1", hello, start)


    def test_prefetched_set_has_its_zygote_from_the_start(self):
        s = self.server(workers=2)
        rc, out = prefetch(s, "set-plain")
        self.assertEqual(rc, 0, out)
        # a reload: the new workers start with the set's zygote
        old = set(s.worker_pids())
        os.kill(s.proc.pid, signal.SIGHUP)
        self.assertTrue(harness.wait_for(
            lambda: len(s.worker_pids()) == 2 and not set(s.worker_pids()) & old, 10),
            "the workers were not replaced")
        self.assertTrue(harness.wait_for(lambda: zygotes(s) == 2, 10),
                        "no zygote for the prefetched set:\n" + s.log_since_mark())
        self.run_set(s, "set-plain", script('print("hi")\n'), "warm")


    def test_zygote_of_a_set_gone_during_its_run(self):
        s = self.server()
        hello = script('print("hi")\n')
        for start in ("cold", "cold", "warm"):
            self.run_set(s, "set-plain", hello, start)
        zygote = set_zygote_pids(s)
        self.assertEqual(len(zygote), 1)
        slow = script('''
            import time, set_plain
            print("started", flush=True)
            time.sleep(1.5)
            print("done", set_plain.TABLE)
            ''')
        killer = threading.Timer(0.5, lambda: os.kill(zygote[0], signal.SIGKILL))
        killer.start()
        try:
            r = self.run_set(s, "set-plain", slow, "warm")
        finally:
            killer.cancel()
        self.assertEqual(r.stdout, b"started\ndone {'a': 1}\n")
        # and the next ones are served, warm again once it is replaced
        self.assertEqual(self.run_set(s, "set-plain", hello).stdout, b"hi\n")
        self.assertTrue(harness.wait_for(
            lambda: self.run_set(s, "set-plain", hello).headers.get("X-Execution-Start")
            == "warm", 10), "the set's zygote was not replaced")


class PlainSets(Sets):
    """The same on the rlimits layer."""

    LAYER = "rlimits"


if __name__ == "__main__":
    harness.main()
