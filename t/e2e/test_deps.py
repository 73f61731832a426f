"""End-to-end: `?dependencies=` (README, "Dependencies") through a real nginx.

Packages come from a private index on loopback (t/pyindex.py): wheels built
here (probe-a 1.0 and 2.0, probe-b which requires probe-a, probe-pth which
ships a .pth file, ...) and the real wheels of /usr/share/python-wheels.
Nothing here reaches the internet: every server is pointed at that index,
and its environment carries pip settings that point at a trap on the same
index, so a pip that read the server's environment would show up as a hit.

Each class has its own server and so its own deps_cache. Cache layout the
tests look at: <deps_cache>/<64 hex>/ entries, .staging/ installs under way,
.sizes/<key> an entry's size in bytes.
"""

import fcntl
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import pyindex  # noqa: E402
from harness import script  # noqa: E402

KEY_RE = re.compile(r"^[0-9a-f]{64}$")
BIG = 400 << 10          # bytes of random data in each probe-big-N wheel
CAP = "1M"               # deps_cache_max of the eviction servers
CAP_BYTES = 1 << 20
PIP_TIMEOUT = 2          # seconds, for the stalling index


def _fill_index(ix):
    """The wheels of this run's package index."""
    ix.add_module("probe-a", "1.0")
    ix.add_module("probe-a", "2.0")
    ix.add_module("probe-b", "1.0", body="import probe_a\nA_VERSION = probe_a.VERSION\n",
                  requires=["probe-a>=1.0"])
    ix.add(pyindex.build_wheel(ix.dir, "probe-pth", "1.0", {
        "probe_pth/__init__.py": "VERSION = '1.0'\n",
        # both kinds of .pth line: an import line that runs, and a
        # directory (relative to the site dir) that joins sys.path
        "probe_pth.pth": "import os; os.environ['PROBE_PTH'] = 'ran'\nprobe_pth_extra\n",
        "probe_pth_extra/pth_extra_mod.py": "WHERE = 'pth path entry'\n",
    }))
    ix.add(pyindex.heavy_wheel(ix.dir, "probe-heavy", "1.0"))
    ix.add_module("probe-ro", "1.0")
    ix.add_module("probe-conc", "1.0")
    ix.add_module("probe-spell", "1.0")
    for n in range(1, 5):
        ix.add(pyindex.build_wheel(ix.dir, "probe-big-%d" % n, "1.0", {
            "probe_big_%d/__init__.py" % n: "VERSION = '1.0'\n",
            "probe_big_%d/data.bin" % n: os.urandom(BIG),
        }))
    ix.add_module("probe-links", "1.0", where="links")
    ix.add_module("probe-extra", "1.0", where="extra")
    ix.add_debian_wheels()


index = pyindex.on_first_use(_fill_index, stall_seconds=30)


def trap_env(ix):
    """pip settings in the server's own environment: a pip run that
    inherited them would ask the index under /trap/."""
    return {"PIP_INDEX_URL": ix.url + "/trap/simple/",
            "PIP_EXTRA_INDEX_URL": ix.url + "/trap/extra/",
            "PIP_FIND_LINKS": ix.url + "/trap/links/",
            "PIP_NO_INDEX": ""}


def server_kwargs(ix, options=(), workers=4, index_url=None):
    return dict(workers=workers, env=trap_env(ix), options=[
        "pip_index_url=" + (index_url or ix.simple_url),
        "pip_only_binary=yes"] + list(options))


def deps_query(value, extra=""):
    """The query string for a dependencies value: every byte but the comma
    percent-encoded (the comma separates items, as in the seed)."""
    q = "dependencies=" + urllib.parse.quote(value, safe=",")
    return q + ("&" + extra if extra else "")


def cache_dir(s):
    return os.path.join(s.tmp, "deps")


def entries(s):
    try:
        return sorted(e for e in os.listdir(cache_dir(s)) if KEY_RE.match(e))
    except FileNotFoundError:
        return []


def staging(s):
    try:
        return sorted(os.listdir(os.path.join(cache_dir(s), ".staging")))
    except FileNotFoundError:
        return []


def tree_size(path):
    """Bytes of the regular files under path (apparent size)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for f in filenames:
            st = os.lstat(os.path.join(dirpath, f))
            total += st.st_size
    return total


def tree_snapshot(path):
    """{relative path: (mode, size, mtime_ns)} of everything under path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for f in dirnames + filenames:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def sizes_file(s, key):
    try:
        with open(os.path.join(cache_dir(s), ".sizes", key)) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        return None


def run_started(s):
    """Whether a run of s is under way: main.py running in its work
    directory (rlimits layer) or below the master (namespace sandbox,
    where its cwd is /work of its own mount namespace)."""
    table = harness.proc_table()
    below = set(harness.descendants(table, s.proc.pid))
    return [p for p, i in table.items()
            if harness.MARKER in i["cmdline"] or
            (i["cwd"] or "").startswith(s.work_root + "/") or
            (p in below and "main.py" in i["cmdline"])]


def pip_processes(s):
    """pip processes that work for this server (its cache in the command
    line or the working directory)."""
    d = cache_dir(s)
    out = []
    for pid, info in harness.proc_table().items():
        argv = info["cmdline"].split()
        is_pip = any(a == "pip" or a.endswith("/pip") or a.startswith("pip.")
                     or re.match(r"^pip[0-9.]*$", os.path.basename(a)) for a in argv[:4])
        if is_pip and (d in info["cmdline"] or (info["cwd"] or "").startswith(d)):
            out.append((pid, info["cmdline"]))
    return out


def in_entry(s, key, relpath):
    """Whether relpath (a package's file) is somewhere in the entry (the
    entry may keep its packages in a subdirectory)."""
    top = os.path.join(cache_dir(s), key)
    for dirpath, dirnames, filenames in os.walk(top):
        if os.path.exists(os.path.join(dirpath, relpath)):
            return True
    return False


def request_line(s, reply):
    """The server's log line for the reply's request."""
    rid = reply.headers.get("X-Request-Id")
    for line in s.log_since_mark().splitlines():
        if "request id=%s " % rid in line:
            return line
    return None


class DepsCase(harness.E2ETestCase):
    """A test against servers with a deps cache: after it, no install may be
    left half done (.staging empty) and no pip process alive."""

    def setUp(self):
        super().setUp()
        self.ix = index()

    def tearDown(self):
        problems = []
        for s in self._servers:
            if s.tmp is None:
                continue
            if not harness.wait_for(lambda: not staging(s), 3):
                problems.append("[%s] .staging not empty: %r" % (s.name, staging(s)))
            if not harness.wait_for(lambda: not pip_processes(s), 3):
                problems.append("[%s] pip still running: %r" % (s.name, pip_processes(s)))
        super().tearDown()
        if problems:
            self.fail("after the test:\n" + "\n".join(problems))

    def post(self, s, deps, src, extra="", **kw):
        """POST main.py (src, made a script) with dependencies=deps (None:
        no parameter)."""
        q = deps_query(deps, extra) if deps is not None else (extra or None)
        return s.post_execute({"main.py": script(src)}, query=q, **kw)

    def assertDeps(self, reply, how):
        self.assertEqual(reply.headers.get("X-Dependencies"), how, reply.describe())
        if how in ("installed", "cached"):
            # the dependency entry is on PYTHONPATH: not the zygote's
            # environment, so the run starts python (README "Warm start")
            self.assertEqual(reply.headers.get("X-Execution-Start"), "cold", reply.describe())

    def install(self, s, deps, src="print('ok')\n", how="installed"):
        """A request that must run with the set installed (how="installed")
        or found (how="cached"); returns (reply, entries that appeared)."""
        before = set(entries(s))
        r = self.post(s, deps, src)
        self.assertRan(r)
        self.assertDeps(r, how)
        return r, sorted(set(entries(s)) - before)

    def assertNoPip(self, s, hits_before, entries_before):
        """Nothing of an install happened since the marks."""
        self.assertEqual(self.ix.hits()[hits_before:], [],
                         "pip reached the index")
        log = s.log_since_mark()
        self.assertNotRegex(log.lower(), r"\bpip\b", "the log mentions pip:\n" + log)
        self.assertEqual(entries(s), entries_before)
        self.assertEqual(staging(s), [])


class StaleStaging(DepsCase):
    """At start, installs left under way by a stopped pyexec are removed,
    but not one another pyexec sharing the cache has under way (it holds
    its key's lock: mod_fcgid runs several pyexec on one cache)."""

    def test_stale_installs_go_and_live_ones_stay(self):
        held = {}

        def plant(s):
            root = cache_dir(s)
            for sub in (".staging", ".locks"):
                os.makedirs(os.path.join(root, sub), exist_ok=True)
            for name in ("a" * 64 + ".dead1234", "b" * 64 + ".live5678"):
                os.makedirs(os.path.join(root, ".staging", name, "pkg"))
            fd = os.open(os.path.join(root, ".locks", "b" * 64), os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            held["fd"] = fd
            for dirpath, dirs, files in os.walk(root):
                for d in dirs + files:
                    os.chown(os.path.join(dirpath, d), 65534, 65534)
        if not harness.IS_ROOT:
            self.skipTest("the cache is handed to nobody, which needs root")
        s = self.private_server(name="stale", workers=1, before_start=plant)
        self.addCleanup(lambda: os.close(held["fd"]))
        self.assertEqual(staging(s), ["b" * 64 + ".live5678"])
        # the other pyexec's install, done: not this server's to leave
        harness.shutil.rmtree(os.path.join(cache_dir(s), ".staging", "b" * 64 + ".live5678"))


class Deps(DepsCase):
    """One server, its index, its cache; each test uses sets of its own."""

    def setUp(self):
        super().setUp()
        self.s = self.server("deps", **server_kwargs(self.ix, ["max_dependencies=4"],
                                                     workers=8))

    # ------------------------------------------------------------ none

    def test_no_dependencies_is_none(self):
        for q in (None, "dependencies=", "dependencies=,%20,,"):
            r = self.s.post_execute({"main.py": script("print('plain')\n")}, query=q)
            self.assertRan(r)
            self.assertDeps(r, "none")
            self.assertEqual(r.stdout, b"plain\n")
        r = self.s.post_execute({"main.py": script("print('plain')\n")}, query="format=json")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["dependencies"], "none")

    # ------------------------------------------------------------ install, hit

    def test_install_then_hit(self):
        src = "import probe_a\nprint(probe_a.VERSION)\n"
        mark = len(self.ix.hits())
        r, new = self.install(self.s, "probe-a==2.0", src, "installed")
        self.assertEqual(r.stdout, b"2.0\n", r.describe())
        self.assertEqual(len(new), 1, "expected one new cache entry, got %r" % new)
        key = new[0]
        self.assertTrue(self.ix.file_hits("probe-a"), "pip never fetched probe-a")
        self.assertEqual(self.ix.hits(lambda p: p.startswith("/trap")), [],
                         "pip read the server's environment (PIP_* variables)")
        self.assertTrue(in_entry(self.s, key, "probe_a/__init__.py"))
        size = sizes_file(self.s, key)
        self.assertIsNotNone(size, ".sizes/%s missing" % key)
        self.assertGreater(size, 0)

        # the hit: no pip, no index, same entry
        mark = len(self.ix.hits())
        for _ in range(2):
            r, new = self.install(self.s, "probe-a==2.0", src, "cached")
            self.assertEqual(r.stdout, b"2.0\n")
            self.assertEqual(new, [])
        self.assertEqual(self.ix.hits()[mark:], [], "a cache hit reached the index")
        self.assertEqual(staging(self.s), [])

        # the JSON form says the same
        r = self.post(self.s, "probe-a==2.0", src, extra="format=json")
        self.assertStatus(r, 200)
        doc = r.json()
        self.assertEqual(doc["dependencies"], "cached", r.describe())
        self.assertEqual(doc["stdout"], "2.0\n")

    def test_log_line_has_install_time(self):
        r, _ = self.install(self.s, "probe-a==1.0,<3", "print(1)\n", "installed")
        line = request_line(self.s, r)
        self.assertIsNotNone(line, "no log line for the request:\n" + self.s.log_since_mark())
        m = re.search(r"\bdeps_ms=([0-9.]+)", line)
        self.assertIsNotNone(m, line)
        installed_ms = float(m.group(1))
        self.assertGreater(installed_ms, 0.0, line)
        self.s.mark_log()
        r, _ = self.install(self.s, "probe-a==1.0,<3", "print(1)\n", "cached")
        line = request_line(self.s, r)
        m = re.search(r"\bdeps_ms=(-?[0-9.]+)", line or "")
        self.assertIsNotNone(m, line)
        self.assertLess(float(m.group(1)), installed_ms, line)

    def test_pinned_and_latest_are_separate_entries(self):
        src = "import probe_a\nprint(probe_a.VERSION)\n"
        r1, new1 = self.install(self.s, "probe-a==1.0", src)
        self.assertEqual(r1.stdout, b"1.0\n")
        r2, new2 = self.install(self.s, "probe-a", src)
        self.assertEqual(r2.stdout, b"2.0\n")
        self.assertEqual(len(new1), 1)
        self.assertEqual(len(new2), 1)
        self.assertNotEqual(new1, new2)
        # and each is still itself
        r1, _ = self.install(self.s, "probe-a==1.0", src, "cached")
        self.assertEqual(r1.stdout, b"1.0\n")
        r2, _ = self.install(self.s, "probe-a", src, "cached")
        self.assertEqual(r2.stdout, b"2.0\n")

    def test_version_clauses_extras_wildcards(self):
        src = "import probe_a\nprint(probe_a.VERSION)\n"
        # the seed splits on every comma: "<2" continues the item before it
        r, _ = self.install(self.s, "probe-a>=1.0,<2", src)
        self.assertEqual(r.stdout, b"1.0\n")
        r, _ = self.install(self.s, " probe-a [fast] == 2.* ", src)
        self.assertEqual(r.stdout, b"2.0\n")

    def test_transitive_dependency_installed(self):
        src = ("import probe_b, probe_a\n"
               "print(probe_b.A_VERSION, probe_a.VERSION)\n")
        r, new = self.install(self.s, "probe-b", src)
        self.assertEqual(r.stdout, b"2.0 2.0\n")
        self.assertEqual(len(new), 1)
        self.assertTrue(in_entry(self.s, new[0], "probe_a/__init__.py"))
        self.assertTrue(in_entry(self.s, new[0], "probe_b/__init__.py"))

    def test_pth_file_takes_effect(self):
        src = ("import os, sys\n"
               "print(os.environ.get('PROBE_PTH'))\n"
               "import pth_extra_mod\n"
               "print(pth_extra_mod.WHERE)\n")
        for how in ("installed", "cached"):
            r, _ = self.install(self.s, "probe-pth", src, how)
            self.assertEqual(r.stdout, b"ran\npth path entry\n", r.describe())

    def test_set_of_300_modules_imports(self):
        # the heavy synthetic set the warm start's benchmark uses
        src = ("import sys, probe_heavy\n"
               "mods = [m for m in sys.modules if m.startswith('probe_heavy.')]\n"
               "print(len(mods), probe_heavy.m299.f3(2), probe_heavy.m299._other.__name__)\n"
               "print(probe_heavy.m150.C150().m7(1), len(probe_heavy.m000.TABLE))\n")
        for how in ("installed", "cached"):
            r, _ = self.install(self.s, "probe-heavy", src, how)
            self.assertEqual(r.stdout, b"300 25 probe_heavy.m149\n8 40\n", r.describe())

    def test_debian_setuptools_wheel_imports(self):
        wheels = [w for w in pyindex.debian_wheels()
                  if pyindex.wheel_project(w) == "setuptools"]
        if not wheels:
            self.skipTest("no setuptools wheel in %s" % pyindex.DEBIAN_WHEELS)
        version = os.path.basename(wheels[-1]).split("-")[1]
        src = ("import setuptools, pkg_resources\n"
               "print(setuptools.__version__)\n"
               "print(setuptools.__file__)\n")
        r, new = self.install(self.s, "setuptools==" + version, src)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(lines[0], version, r.describe())
        # from the cache entry, not the system's python3-setuptools
        self.assertFalse(lines[1].startswith("/usr/lib/python3"), r.describe())
        self.assertEqual(len(new), 1)
        self.assertTrue(in_entry(self.s, new[0], "setuptools/__init__.py"))

    def test_spellings_hit_the_same_entry(self):
        src = "import probe_a, probe_spell\nprint(probe_a.VERSION, probe_spell.VERSION)\n"
        r, new = self.install(self.s, "probe-spell, probe-a", src, "installed")
        self.assertEqual(r.stdout, b"2.0 1.0\n")
        self.assertEqual(len(new), 1)
        mark = len(self.ix.hits())
        # case, '_', '.', runs of separators, blanks, empty items, order, and
        # duplicates (five items over max_dependencies=4, two after merging)
        for spelling in ("Probe_Spell,probe.a", " probe-a ,  PROBE-SPELL ",
                         "probe__a,,probe-spell,", "probe.spell,Probe-A,probe_a,PROBE.SPELL,probe-a"):
            with self.subTest(spelling=spelling):
                r, new = self.install(self.s, spelling, src, "cached")
                self.assertEqual(r.stdout, b"2.0 1.0\n")
                self.assertEqual(new, [])
        self.assertEqual(self.ix.hits()[mark:], [])

    # ------------------------------------------------------------ refused

    def test_hostile_specifiers_are_400_and_reach_no_pip(self):
        trap = self.ix.url + "/trap/"
        cases = [
            ("-r/etc/passwd", "-r/etc/passwd"),
            ("-r /etc/passwd", "-r /etc/passwd"),
            ("--index-url=" + trap + "simple/", "--index-url"),
            ("-i " + trap + "simple/", "-i "),
            ("--extra-index-url " + trap, "--extra-index-url"),
            ("-e .", "-e ."),
            ("probe-a @ " + trap + "probe_a-1.0-py3-none-any.whl", "probe-a @"),
            ("probe-a@" + trap + "x.whl", "probe-a@"),
            (trap + "probe_a-1.0-py3-none-any.whl", "/trap/"),
            ("git+" + trap + "probe-a.git", "git+"),
            ("./dir", "./dir"),
            ("../probe-a", "../probe-a"),
            ("/abs", "/abs"),
            ("/etc/passwd", "/etc/passwd"),
            ("probe-a; python_version>\"3\"", "python_version"),
            ("probe-a;python_version>'3'", "python_version"),
            ("probe-a --pre", "--pre"),
            ("probe-a==1.0 --hash=sha256:00", "--hash"),
            ("probe-a\nprobe-b", "probe-a"),
            ("probe-a\n-r/etc/passwd", "probe-a"),
            ("probe-a\t--pre", "--pre"),
            ("a" * 300, "a" * 20),
            ("probe-a==" + "1" * 600, "probe-a=="),
            ("probe-a[../x]", "probe-a["),
            ("probe-a[extra", "probe-a[extra"),
            ("probe-a==$(id)", "$(id)"),
            ("probe-a==`id`", "==`id`"),
            ("probe a", "probe a"),
            ("-probe-a", "-probe-a"),
            ("probe-a-", "probe-a-"),
            ("probe-a=1.0", "probe-a=1.0"),
            ("probe-a>=1.*", "probe-a>=1.*"),
            ("probe-a===", "probe-a==="),
            ("==1.0", "==1.0"),
            ("probe-a==1.0 probe-b", "probe-b"),
            ("probe-ä", "probe-"),
        ]
        main = {"main.py": script("open('ran.txt', 'w').write('ran')\nprint('RAN')\n")}
        # each alone, and after a good item (except "==1.0", which there
        # continues it: "probe-b==1.0")
        variants = [(v, q) for v, q in cases] + [("probe-b," + v, q) for v, q in cases
                                                 if not v.startswith("==")]
        for value, quoted in variants:
            with self.subTest(value=value):
                self.s.mark_log()
                hits, before = len(self.ix.hits()), entries(self.s)
                r = self.s.post_execute(main, query=deps_query(value))
                doc = self.assertError(r, 400)
                self.assertEqual(doc["error"], "bad_dependency", r.describe())
                self.assertIn(quoted.lower(), doc["detail"].lower(), r.describe())
                self.assertNotIn(b"RAN", r.body)
                self.assertNoPip(self.s, hits, before)

    def test_nul_byte_is_400(self):
        hits, before = len(self.ix.hits()), entries(self.s)
        r = self.s.post_execute({"main.py": script("print('RAN')\n")},
                                query="dependencies=probe-a%00--pre")
        self.assertError(r, 400)
        self.assertNoPip(self.s, hits, before)

    def test_more_than_max_dependencies_is_400(self):
        hits, before = len(self.ix.hits()), entries(self.s)
        r = self.post(self.s, "probe-a,probe-b,probe-pth,probe-ro,probe-conc", "print('RAN')\n")
        doc = self.assertError(r, 400)
        self.assertEqual(doc["error"], "bad_dependency", r.describe())
        self.assertIn("4", doc["detail"], r.describe())
        self.assertNoPip(self.s, hits, before)

    # ------------------------------------------------------------ failure

    def test_missing_package_is_424_and_leaves_nothing(self):
        before = entries(self.s)
        src = "open('ran.txt', 'w').write('ran')\nprint('RAN')\n"
        r = self.post(self.s, "probe-a,probe-nonexistent", src)
        self.assertStatus(r, 424)
        self.assertTrue(r.content_type.startswith("multipart/form-data; boundary="),
                        r.describe())
        self.assertEqual(r.headers.get("X-Execution-Status"), "dependency_error", r.describe())
        self.assertIn(r.headers.get("X-Dependencies", "none"), ("none",), r.describe())
        self.assertEqual(r.stdout, b"")
        err = r.stderr.decode("utf-8", "replace")
        self.assertIn("probe-nonexistent", err)
        self.assertRegex(err, r"No matching distribution|Could not find a version")
        self.assertEqual(r.files, {})
        self.assertEqual(entries(self.s), before)
        self.assertEqual(staging(self.s), [])
        # the JSON form: the same, as JSON
        r = self.post(self.s, "probe-a,probe-nonexistent", src, extra="format=json")
        self.assertStatus(r, 424)
        doc = r.json()
        self.assertEqual(doc["status"], "dependency_error", r.describe())
        self.assertEqual(doc["stdout"], "")
        self.assertIn("probe-nonexistent", doc["stderr"])
        self.assertIn(doc.get("dependencies", "none"), ("none", None), r.describe())
        self.assertEqual(doc.get("files", []), [])
        self.assertEqual(entries(self.s), before)

    # ------------------------------------------------------------ concurrency

    def test_six_concurrent_requests_install_once(self):
        before = entries(self.s)
        src = "import probe_conc\nprint(probe_conc.VERSION)\n"
        barrier = threading.Barrier(6)
        replies = [None] * 6

        def go(i):
            try:
                barrier.wait(10)
                replies[i] = self.post(self.s, "probe-conc", src, timeout=60)
            except Exception as e:  # noqa: BLE001
                replies[i] = e

        threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        for r in replies:
            self.assertIsInstance(r, harness.Reply, repr(r))
            self.assertRan(r)
            self.assertEqual(r.stdout, b"1.0\n")
        hows = sorted(r.headers.get("X-Dependencies") for r in replies)
        self.assertEqual(hows, ["cached"] * 5 + ["installed"])
        self.assertEqual(len(self.ix.file_hits("probe-conc")), 1,
                         "the wheel was downloaded %d times" % len(self.ix.file_hits("probe-conc")))
        self.assertEqual(len(set(entries(self.s)) - set(before)), 1)

    # ------------------------------------------------------------ read-only

    def test_entry_is_read_only_to_the_sandbox(self):
        if self.s.request("GET", "/healthz").json().get("sandbox") != "namespaces":
            # only a run forced to the weaker layer may skip: a silent
            # fallback of sandbox = auto is a failure here
            if os.environ.get("PYEXEC_TEST_SANDBOX") == "rlimits":
                self.skipTest("rlimits layer: the script runs as the cache's owner, who may "
                              "chmod an entry back to writable; the namespace sandbox "
                              "mounts entries read-only")
            self.fail("sandbox = auto fell back to the rlimits layer:\n" + self.s.log_tail())
        r, new = self.install(self.s, "probe-ro", "import probe_ro\n")
        entry = os.path.join(cache_dir(self.s), new[0])
        snap = tree_snapshot(entry)
        top_mode = os.lstat(entry).st_mode
        root_names = sorted(os.listdir(cache_dir(self.s)))
        # Everything a script could try against the entry it was given (and
        # the cache around it): writes, removal, and chmod first (the owner
        # of a read-only file may make it writable again).
        src = r'''
            import os, sys, probe_ro
            pkg = os.path.dirname(probe_ro.__file__)
            dirs = []
            d = pkg
            while True:           # up to the entry's top, through its parents
                dirs.append(d)
                parent = os.path.dirname(d)
                if parent == d or os.path.basename(parent) == "deps" or len(dirs) > 4:
                    break
                d = parent
            EVIL = "import builtins; builtins.POISONED = 1\n"
            def attempt(what, fn):
                try:
                    fn()
                    print(what, "DONE")
                except OSError as e:
                    print(what, "refused", e.errno)
            def chmod_then(d, fn):
                def go():
                    os.chmod(d, 0o777)
                    fn()
                return go
            attempt("append", lambda: open(os.path.join(pkg, "__init__.py"), "a").write("POISON = 1\n"))
            attempt("unlink", lambda: os.unlink(os.path.join(pkg, "__init__.py")))
            attempt("rename", lambda: os.rename(pkg, pkg + ".x"))
            for i, d in enumerate(dirs):
                evil = os.path.join(d, "evil%d.pth" % i)
                attempt("create %d" % i, lambda: open(evil, "w").write(EVIL))
                attempt("chmod+create %d" % i,
                        chmod_then(d, lambda: open(evil, "w").write(EVIL)))
            root = os.path.dirname(dirs[-1])
            attempt("cache root", lambda: os.mkdir(os.path.join(root, "f" * 64)))
            '''
        r = self.post(self.s, "probe-ro", src)
        self.assertRan(r)
        self.assertDeps(r, "cached")
        attempts = r.stdout.decode()
        # what a later request with the same set gets
        later = self.post(self.s, "probe-ro", "import builtins, probe_ro\n"
                          "print(hasattr(probe_ro, 'POISON'), hasattr(builtins, 'POISONED'))\n")
        self.assertRan(later)
        problems = []
        # The cache root a script sees may be a private skeleton of
        # directories leading to its entry (the namespace sandbox binds the
        # entry at its own path, in /tmp here): a mkdir there is harmless,
        # and the host's cache root is checked below.
        if "DONE" in attempts.replace("cache root DONE", ""):
            problems.append("the sandbox got through:\n" + attempts)
        if os.lstat(entry).st_mode != top_mode:
            problems.append("the entry's mode changed: %o" % os.lstat(entry).st_mode)
        if tree_snapshot(entry) != snap:
            problems.append("the entry changed: %r" % sorted(
                set(tree_snapshot(entry).items()) ^ set(snap.items())))
        if sorted(os.listdir(cache_dir(self.s))) != root_names:
            problems.append("the cache directory changed: %r" % sorted(
                set(os.listdir(cache_dir(self.s))) ^ set(root_names)))
        if later.stdout != b"False False\n":
            problems.append("a later request with the set was poisoned: %r" % later.stdout)
        self.assertEqual(problems, [], "\n".join(problems))


class Sources(DepsCase):
    """pip_find_links and pip_extra_index_url reach pip; a primary index that
    has nothing does not stop them."""

    def test_find_links_and_extra_index(self):
        s = self.private_server(name="deps-sources", **server_kwargs(
            self.ix, ["pip_extra_index_url=" + self.ix.extra_url,
                      "pip_find_links=" + self.ix.links_url],
            workers=2, index_url=self.ix.empty_url))
        src = "import probe_links, probe_extra\nprint(probe_links.VERSION, probe_extra.VERSION)\n"
        r, new = self.install(s, "probe-links,probe-extra", src)
        self.assertEqual(r.stdout, b"1.0 1.0\n")
        self.assertEqual(len(new), 1)
        self.assertTrue(self.ix.hits(lambda p: p.startswith("/links")))
        self.assertTrue(self.ix.hits(lambda p: p.startswith("/extra/simple/")))
        self.assertEqual(self.ix.hits(lambda p: p.startswith("/trap")), [])


class PipTimeout(DepsCase):
    """An install that outlives pip_timeout is killed and answered 424."""

    def test_stalled_index_is_424_and_pip_killed(self):
        s = self.private_server(name="deps-stall", **server_kwargs(
            self.ix, ["pip_timeout=%d" % PIP_TIMEOUT], workers=2, index_url=self.ix.stall_url))
        for attempt in range(2):   # the second: no lock or staging dir left by the first
            mark = len(self.ix.hits())
            t0 = time.monotonic()
            r = self.post(s, "probe-a", "print('RAN')\n", timeout=60)
            elapsed = time.monotonic() - t0
            self.assertStatus(r, 424)
            self.assertEqual(r.headers.get("X-Execution-Status"), "dependency_error",
                             r.describe())
            self.assertIn(r.headers.get("X-Dependencies", "none"), ("none",))
            self.assertEqual(r.stdout, b"")
            self.assertRegex(r.stderr.decode("utf-8", "replace").lower(), r"time|second",
                             "the reply does not say the install ran out of time:\n"
                             + r.describe())
            self.assertTrue([p for p in self.ix.hits()[mark:] if p.startswith("/stall/")],
                            "pip never reached the stalling index")
            self.assertLess(elapsed, PIP_TIMEOUT + 8,
                            "answered after %.1f s with pip_timeout=%d" % (elapsed, PIP_TIMEOUT))
            self.assertTrue(harness.wait_for(lambda: not pip_processes(s), 3),
                            "pip outlived its timeout: %r" % pip_processes(s))
            self.assertEqual(entries(s), [])
            self.assertEqual(staging(s), [])


class Eviction(DepsCase):
    """deps_cache_max=1M, wheels of 400 KiB of random bytes: two entries fit,
    three do not. No set gets a zygote here (warm_deps_after=0): an entry a
    set's zygote holds is in use, as one a running request holds."""

    def big(self, s, n, how="installed"):
        src = ("import os, probe_big_%d as m\n"
               "print(os.path.getsize(os.path.join(os.path.dirname(m.__file__), 'data.bin')))\n" % n)
        r, new = self.install(s, "probe-big-%d" % n, src, how)
        self.assertEqual(r.stdout, b"%d\n" % BIG)
        self.assertEqual(len(new), 1 if how == "installed" else 0)
        return new[0] if new else None

    def assertUnderCap(self, s):
        def total():
            return sum(tree_size(os.path.join(cache_dir(s), e)) for e in entries(s))
        ok = harness.wait_for(lambda: total() <= CAP_BYTES, 3)
        self.assertTrue(ok, "cache entries hold %d bytes > %s: %r" % (total(), CAP, entries(s)))
        recorded = [sizes_file(s, e) for e in entries(s)]
        self.assertNotIn(None, recorded, "an entry without .sizes")
        self.assertLessEqual(sum(recorded), CAP_BYTES)

    def assertEvicted(self, s, key):
        self.assertTrue(harness.wait_for(lambda: key not in entries(s), 3),
                        "%s not evicted: %r" % (key, entries(s)))
        self.assertIsNone(sizes_file(s, key), ".sizes/%s outlived its entry" % key)

    def test_lru_entry_evicted_under_cap(self):
        s = self.private_server(name="deps-lru", **server_kwargs(
            self.ix, ["deps_cache_max=" + CAP, "warm_deps_after=0"], workers=2))
        e1 = self.big(s, 1)
        e2 = self.big(s, 2)
        self.assertEqual(entries(s), sorted([e1, e2]))
        self.big(s, 1, "cached")              # 2 is now the least recently used
        e3 = self.big(s, 3)
        self.assertEvicted(s, e2)
        self.assertEqual(entries(s), sorted([e1, e3]))
        self.assertUnderCap(s)
        e2b = self.big(s, 2)                  # back, and 1 goes
        self.assertEqual(e2b, e2)
        self.assertEvicted(s, e1)
        self.assertEqual(entries(s), sorted([e2, e3]))
        self.assertUnderCap(s)

    def test_entry_in_use_is_not_evicted(self):
        s = self.private_server(name="deps-inuse", **server_kwargs(
            self.ix, ["deps_cache_max=" + CAP, "warm_deps_after=0"], workers=4))
        e1 = self.big(s, 1)
        e2 = self.big(s, 2)
        sleeper = {}
        sleep_s = 4.0

        def run_sleeper():
            # imports its package only after the eviction happened
            src = ("import os, time\n"
                   "print('start', flush=True)\n"
                   "time.sleep(%s)\n"
                   "import probe_big_1 as m\n"
                   "with open(os.path.join(os.path.dirname(m.__file__), 'data.bin'), 'rb') as f:\n"
                   "    print(len(f.read()))\n" % sleep_s)
            try:
                sleeper["r"] = self.post(s, "probe-big-1", src, timeout=60)
            except Exception as e:  # noqa: BLE001
                sleeper["r"] = e
            sleeper["t"] = time.monotonic()

        t = threading.Thread(target=run_sleeper)
        t.start()
        try:
            started = harness.wait_for(lambda: run_started(s), 10)
            self.assertTrue(started, "the sleeping script never started")
            self.big(s, 2, "cached")          # 1, in use, is now the least recently used
            e3 = self.big(s, 3)               # over the cap: something must go
            done_at = time.monotonic()
            self.assertIn(e1, entries(s), "an entry in use was evicted")
            self.assertTrue(in_entry(s, e1, "probe_big_1/data.bin"))
            self.assertEvicted(s, e2)
            self.assertIn(e3, entries(s))
            self.assertUnderCap(s)
        finally:
            t.join(60)
        r = sleeper.get("r")
        self.assertIsInstance(r, harness.Reply, repr(r))
        self.assertGreater(sleeper["t"], done_at,
                           "inconclusive: the install finished after the sleeping run")
        self.assertRan(r)
        self.assertDeps(r, "cached")
        self.assertEqual(r.stdout, b"start\n%d\n" % BIG)


class Prefetch(DepsCase):
    """pyexec-fcgi --prefetch SET fills the cache ahead of the first request."""

    def prefetch(self, s, value, timeout=60):
        argv, skip = [], False
        full = s.pyexec_argv()
        for i, a in enumerate(full):
            if skip:
                skip = False
                continue
            if a in ("-l", "-w"):
                skip = True
                continue
            argv.append(a)
        argv += ["--prefetch", value]
        p = harness.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd="/",
                          env=dict(os.environ, **trap_env(self.ix)))
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            self.fail("--prefetch %r still running after %d s" % (value, timeout))
        return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def test_prefetch_then_request_is_cached(self):
        s = self.private_server(name="deps-prefetch", **server_kwargs(self.ix, workers=2))
        rc, out, err = self.prefetch(s, "probe-a,probe-b")
        self.assertEqual(rc, 0, out + err)
        m = re.match(r"^installed ([0-9a-f]{64})\n$", out)
        self.assertIsNotNone(m, "stdout %r, stderr %r" % (out, err))
        key = m.group(1)
        self.assertEqual(entries(s), [key])
        self.assertEqual(staging(s), [])
        # again, spelled otherwise: found, same key
        rc, out, err = self.prefetch(s, " Probe_B , probe.a ")
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(out, "cached %s\n" % key)
        # the server finds it: no pip, no index
        mark = len(self.ix.hits())
        r, new = self.install(s, "probe-b,probe-a",
                              "import probe_a, probe_b\nprint(probe_a.VERSION)\n", "cached")
        self.assertEqual(r.stdout, b"2.0\n")
        self.assertEqual(new, [])
        self.assertEqual(self.ix.hits()[mark:], [])
        self.assertEqual(self.ix.hits(lambda p: p.startswith("/trap")), [])

    def test_prefetch_failures_exit_1(self):
        s = self.private_server(name="deps-prefetch-bad", **server_kwargs(self.ix, workers=2))
        rc, out, err = self.prefetch(s, "probe-a,probe-nonexistent")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("probe-nonexistent", err)
        self.assertRegex(err, r"No matching distribution|Could not find a version")
        self.assertEqual(entries(s), [])
        self.assertEqual(staging(s), [])
        mark = len(self.ix.hits())
        rc, out, err = self.prefetch(s, "-r/etc/passwd")
        self.assertNotEqual(rc, 0, out + err)
        self.assertIn("-r/etc/passwd", err)
        self.assertEqual(self.ix.hits()[mark:], [])
        self.assertEqual(entries(s), [])


class Config(harness.E2ETestCase):
    """Bad values of the dependency keys stop start-up, naming the key."""


    def test_bad_dependency_keys(self):
        for key, value in (("pip_timeout", "soon"), ("deps_cache_max", "lots"),
                           ("max_dependencies", "many"), ("pip_only_binary", "perhaps")):
            with self.subTest(key=key):
                out, _ = self.start_fails(["-o", "%s=%s" % (key, value)])
                self.assertIn(key, out)


if __name__ == "__main__":
    harness.main()
