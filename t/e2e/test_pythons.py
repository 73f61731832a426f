"""End-to-end: several interpreters in one server (README, "Interpreters"),
through a real nginx, on both sandbox layers.

The servers have `pythons = python3=<the system's>, pypy3=/usr/bin/pypy3`:
python3 is the default, and `?python=pypy3` runs Debian's PyPy. A run
says which interpreter ran it (sys.implementation); /healthz lists both
with their versions; an unknown name is a 400 that lists the known ones;
each interpreter installs its own dependency sets, from a package index on
loopback (t/pyindex.py); and the hostile suite's core cases (a fork bomb,
a memory bomb, the network, writing outside the work directory) hold
under PyPy as they do under CPython.

Without /usr/bin/pypy3 (Debian's pypy3), every test here skips and says
so: quickstart test installs it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import pyindex  # noqa: E402
import test_sandbox  # noqa: E402  (its cases, run again under PyPy)
from harness import script  # noqa: E402

PYTHON = os.environ.get("TEST_PYTHON", "/usr/bin/python3")
PYPY = "/usr/bin/pypy3"
HAVE_PYPY = os.access(PYPY, os.X_OK)
NO_PYPY = "no %s (Debian's pypy3 package)" % PYPY
PYTHONS = "pythons=python3=%s,pypy3=%s" % (PYTHON, PYPY)


def sys_version(python):
    """An interpreter's sys.version on one line, as pyexec learns it (PyPy's
    has a newline before its "[PyPy ...]")."""
    return subprocess.run([python, "-s", "-c", "import sys; print(sys.version.replace('\\n', ' '))"],
                          capture_output=True, text=True, timeout=60).stdout.rstrip("\n")


def _fill_index(ix):
    """The wheels of this run's package index."""
    ix.add_module("probe-py", "1.0", body="import sys\nIMPL = sys.implementation.name\n")


index = pyindex.on_first_use(_fill_index)


@unittest.skipUnless(HAVE_PYPY, NO_PYPY)
class Pythons(harness.E2ETestCase):
    """Two interpreters on the namespace layer."""

    LAYER = "namespaces"

    def setUp(self):
        super().setUp()
        self.s = self.server("pythons-" + self.LAYER, workers=2, **self.layer())
        health = self.s.request("GET", "/healthz").json()
        if health.get("sandbox") != self.LAYER:
            self.skipTest("these tests are of the %s layer; this server runs %s"
                          % (self.LAYER, health.get("sandbox")))

    def layer(self):
        options = [PYTHONS, "pip_index_url=" + index().simple_url]
        if self.LAYER == "namespaces":
            return {"sandbox": "namespaces", "options": options}
        # RLIMIT_NPROC counts every process of pyexec's uid here (other
        # suites' servers run as nobody too): room for them
        return {"sandbox": "rlimits", "options": options + ["max_processes=4096"]}

    def deps_dir(self):
        return os.path.join(self.s.tmp, "deps")

    def entries(self):
        return sorted(n for n in os.listdir(self.deps_dir()) if re.match(r"^[0-9a-f]{64}$", n))

    def test_healthz_lists_each_interpreter_with_its_version(self):
        h = self.s.request("GET", "/healthz").json()
        self.assertEqual(h["pythons"], [
            {"name": "python3", "version": sys_version(PYTHON), "default": True,
             "dependencies": True},
            {"name": "pypy3", "version": sys_version(PYPY), "default": False,
             "dependencies": True}])
        self.assertIn("PyPy", h["pythons"][1]["version"])

    def test_hello_and_a_generated_file_under_each(self):
        src = script('''
            import sys
            print("hello from", sys.implementation.name, sys.version_info[:2] >= (3, 9))
            open("out.txt", "w").write(sys.implementation.name)
            ''')
        for name, impl in (("pypy3", "pypy"), ("python3", "cpython"), (None, "cpython")):
            with self.subTest(python=name):
                query = "python=" + name if name else None
                r = self.s.post_execute({"main.py": src}, query=query, timeout=120)
                self.assertRan(r)
                self.assertEqual(r.stdout, ("hello from %s True\n" % impl).encode())
                self.assertEqual(r.stderr, b"")
                self.assertEqual(list(r.files), ["out.txt"])
                self.assertEqual(r.files["out.txt"].data, impl.encode())
                self.assertTrue(r.files["out.txt"].content_type.startswith("text/plain"),
                                r.files["out.txt"].content_type)
                if name == "pypy3":
                    # zygotes embed the default interpreter: a PyPy run is cold
                    self.assertEqual(r.headers.get("X-Execution-Start"), "cold", r.describe())
                # the log line names the interpreter that ran (written once
                # the reply is out: waited for)
                rid = r.headers.get("X-Request-Id")

                def logged():
                    with open(self.s.pyexec_log, errors="replace") as f:
                        return [l for l in f if "request id=%s " % rid in l]
                harness.wait_for(logged, 5)
                lines = logged()
                self.assertEqual(len(lines), 1, lines)
                self.assertIn(" exec=ok python=%s " % (name or "python3"), lines[0])

    def test_json_and_stream_forms_say_the_same(self):
        src = script('import sys; print(sys.implementation.name)\n')
        r = self.s.post_execute({"main.py": src}, query="python=pypy3&format=json",
                                timeout=120)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["stdout"], "pypy\n")
        r = self.s.post_execute({"main.py": src}, query="python=pypy3&stream=1", timeout=120)
        self.assertStatus(r, 200)
        events = [(m.group(1), json.loads(m.group(2)))
                  for m in re.finditer(rb"event: (\w+)\ndata: (.*)\n\n", r.body)]
        self.assertEqual("".join(d["data"] for e, d in events if e == b"stdout"), "pypy\n",
                         events)
        self.assertEqual(events[-1][0], b"result")
        self.assertEqual(events[-1][1]["stdout"], "pypy\n")

    def test_unknown_interpreter_is_a_400_listing_the_known(self):
        for value, shown in (("pypy2", "pypy2"), ("Python3", "Python3"),
                             ("%2Fusr%2Fbin%2Fpython3", "/usr/bin/python3")):
            with self.subTest(value=value):
                r = self.s.post_execute({"main.py": script("print(1)\n")},
                                        query="python=" + value)
                self.assertError(r, 400)
                self.assertEqual(r.json(), {
                    "error": "bad_parameter",
                    "detail": "python: '%s' is not an interpreter of this server; it has "
                              "python3 (the default), pypy3" % shown})
        r = self.s.post_execute({"main.py": script("print(1)\n")}, query="python=")
        self.assertError(r, 400)
        self.assertIn("python: must name an interpreter", r.json()["detail"])

    def test_each_interpreter_installs_its_own_dependency_set(self):
        src = script('''
            import sys, probe_py
            print(probe_py.IMPL, sys.implementation.name, probe_py.__file__.startswith("/"))
            ''')
        before = self.entries()
        seen = {}
        for name, impl in (("pypy3", "pypy"), ("python3", "cpython")):
            for how in ("installed", "cached"):
                r = self.s.post_execute({"main.py": src}, timeout=300,
                                        query="dependencies=probe-py&python=" + name)
                self.assertRan(r)
                self.assertEqual(r.headers.get("X-Dependencies"), how, r.describe())
                self.assertEqual(r.stdout, ("%s %s True\n" % (impl, impl)).encode())
            seen[name] = [e for e in self.entries() if e not in before]
            before = self.entries()
        # one entry each, and not the same one
        self.assertEqual(len(seen["pypy3"]), 1, seen)
        self.assertEqual(len(seen["python3"]), 1, seen)
        self.assertNotEqual(seen["pypy3"], seen["python3"])
        # pip ran with PyPy for its set: the byte code in it is PyPy's
        entry = os.path.join(self.deps_dir(), seen["pypy3"][0])
        tags = set()
        for root, _dirs, files in os.walk(entry):
            tags.update(f.split(".")[1] for f in files if f.endswith(".pyc"))
        self.assertTrue(tags and all(t.startswith("pypy") for t in tags), tags)

    def prefetch(self, *args):
        """pyexec-fcgi with the server's configuration and args: (status, output)."""
        return self.s.command(*args, timeout=300)

    def test_prefetch_for_an_interpreter(self):
        rc, out = self.prefetch("--prefetch", "probe-py==1.0", "--python", "pypy3")
        self.assertEqual(rc, 0, out)
        key = re.search(r"^(installed|cached) ([0-9a-f]{64})$", out, re.M)
        self.assertIsNotNone(key, out)
        # the request of that interpreter finds it; the default's does not
        r = self.s.post_execute({"main.py": script("import probe_py; print(probe_py.IMPL)\n")},
                                query="dependencies=probe-py==1.0&python=pypy3", timeout=300)
        self.assertRan(r)
        self.assertEqual((r.headers.get("X-Dependencies"), r.stdout), ("cached", b"pypy\n"))
        # only the default's sets are marked for a zygote (they embed it)
        self.assertFalse(os.path.exists(os.path.join(self.deps_dir(), ".prefetched",
                                                     key.group(2))))
        rc, out = self.prefetch("--prefetch", "probe-py==1.0", "--python", "pypy2")
        self.assertEqual(rc, 2, out)
        self.assertIn("--python: pypy2 is not an interpreter of pythons", out)
        rc, out = self.prefetch("--python", "pypy3")
        self.assertEqual(rc, 2, out)
        self.assertIn("usage:", out)


@unittest.skipUnless(HAVE_PYPY, NO_PYPY)
class PlainPythons(Pythons):
    """The same on the rlimits layer."""

    LAYER = "rlimits"


@unittest.skipUnless(HAVE_PYPY, NO_PYPY)
class Start(harness.E2ETestCase):
    """What start-up says of the interpreters."""

    def test_an_interpreter_that_is_no_python_stops_the_server(self):
        for layer in ("namespaces", "rlimits"):
            with self.subTest(layer=layer):
                out, _ = self.start_fails(["-o", "sandbox=" + layer, "-o",
                                           "pythons=python3=%s, broken=/bin/false" % PYTHON])
                self.assertIn("pythons: broken: /bin/false did not say its version", out)

    def test_a_missing_interpreter_stops_the_server(self):
        out, _ = self.start_fails(["-o", "pythons=python3=%s, gone=/nonexistent/pypy3" % PYTHON])
        self.assertIn("pythons: gone: /nonexistent/pypy3 is not executable", out)

    def test_an_interpreter_in_a_prefix_outside_usr_is_bound_in(self):
        """A PyPy reached through a directory of its own (a venv-like
        prefix under /opt or /srv) works in the sandbox: its prefix is
        bound read-only as the default interpreter's is."""
        top = tempfile.mkdtemp(prefix="pyexec-e2e-pypy-")
        self.addCleanup(shutil.rmtree, top, True)
        os.chmod(top, 0o755)    # reachable once pyexec has dropped to nobody
        d = os.path.join(top, "opt-pypy")
        os.makedirs(os.path.join(d, "bin"))
        os.symlink(PYPY, os.path.join(d, "bin", "pypy3"))
        s = self.private_server(name="pythons-prefix", workers=1, sandbox="namespaces",
                                options=["pythons=python3=%s,pp=%s/bin/pypy3" % (PYTHON, d)])
        r = s.post_execute({"main.py": script('''
            import os, sys
            print(sys.implementation.name, os.path.realpath(sys.executable))
            ''')}, query="python=pp", timeout=120)
        self.assertRan(r)
        self.assertEqual(r.stdout.decode().split()[0], "pypy", r.describe())


class PyPyHostile(test_sandbox.SandboxCase):
    """The hostile suite's core cases, under PyPy: the sandbox holds
    whatever interpreter runs the program."""

    SERVER = ("hostile-pypy", dict(test_sandbox.HOSTILE, options=test_sandbox.HOSTILE["options"]
                                   + [PYTHONS]))
    # PyPy's library (libpypy, some 40 MiB of it read at start) is in its
    # resident set, as pages the page cache shares among processes
    RSS_SHARED_KIB = max((os.path.getsize(os.path.join(d, f)) // 1024
                          for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu")
                          if os.path.isdir(d) for f in os.listdir(d)
                          if f.startswith("libpypy")), default=64 << 10)

    def setUp(self):
        if not HAVE_PYPY:
            self.skipTest(NO_PYPY)
        super().setUp()

    def run_script(self, body, files=None, prelude=True, preamble="", query=None, **kw):
        """As the hostile suite's, with ?python=pypy3; the script checks
        that PyPy runs it."""
        check = "import sys\nassert sys.implementation.name == 'pypy', sys.implementation\n"
        query = "python=pypy3" + ("&" + query if query else "")
        return super().run_script(body, files=files, prelude=prelude,
                                  preamble=check + preamble, query=query, **kw)

    test_fork_bomb = test_sandbox.Limits.test_fork_bomb_stops_at_process_limit_and_ends_at_timeout
    test_memory_bomb = test_sandbox.Limits.test_memory_bomb_is_memory_status
    test_sleep_forever = test_sandbox.Limits.test_sleep_forever_hits_wall_limit
    test_network = test_sandbox.Network.test_no_network
    test_write_outside = test_sandbox.Writing.test_system_paths_read_only
    test_read_host = test_sandbox.Reading.test_etc_shadow_and_etc


if __name__ == "__main__":
    harness.main()
