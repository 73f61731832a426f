"""End-to-end: the warm start's zygote (README "Warm start"), behind nginx:
that warm runs say so and answer as cold ones do, that the zygote is out
of a run's reach, and what happens when it dies, between runs or during
one; on the namespace layer (Zygote) and on the rlimits layer
(PlainZygote). The differential suite (test_warm.py) compares warm and
cold runs probe by probe."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import script  # noqa: E402

HELLO = script('print("hello")\n')


def zygote_pids(server):
    """The zygotes of server's workers."""
    return harness.zygote_pids(harness.proc_table(), server.worker_pids())


class Zygote(harness.E2ETestCase):
    """The namespace layer's zygote: where the machine has it."""

    LAYER = "namespaces"

    def layer_options(self):
        """What a server of this class's layer is started with."""
        return {}

    def warm_server(self, **kwargs):
        kwargs.setdefault("workers", 1)
        kwargs.update(self.layer_options())
        s = self.private_server(name="zygote",
                                options=["warm=yes"] + kwargs.pop("options", []), **kwargs)
        health = s.request("GET", "/healthz").json()
        if health.get("sandbox") != self.LAYER:
            self.skipTest("these tests are of the %s layer's zygote; this server runs %s"
                          % (self.LAYER, health.get("sandbox")))
        self.assertEqual(health.get("warm"), "on", health)
        return s

    def the_zygote(self, s):
        self.assertTrue(harness.wait_for(lambda: len(zygote_pids(s)) == 1, 10),
                        "one zygote for one worker: %r" % (zygote_pids(s),))
        return zygote_pids(s)[0]


    def test_warm_runs_say_so_in_both_forms(self):
        s = self.warm_server()
        r = s.post_execute({"main.py": HELLO})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")
        self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())
        r = s.post_execute({"main.py": HELLO}, query="format=json")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["start"], "warm", r.describe())
        self.assertEqual(r.json()["stdout"], "hello\n")

    def test_cold_when_warm_is_off(self):
        s = self.private_server(name="cold", workers=1, options=["warm=no"])
        health = s.request("GET", "/healthz").json()
        self.assertEqual((health.get("warm"), health.get("warm_why")), ("off", "warm = no"))
        r = s.post_execute({"main.py": HELLO})
        self.assertRan(r)
        self.assertEqual(r.headers.get("X-Execution-Start"), "cold", r.describe())
        self.assertEqual(zygote_pids(s), [])

    def test_the_zygote_is_out_of_a_runs_reach(self):
        s = self.warm_server()
        z = self.the_zygote(s)
        probe = script('''
            import os, signal
            try:
                os.kill(%d, 0)
                print("reached")
            except ProcessLookupError:
                print("ESRCH")
            print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()) == [1, os.getpid()])
            print(os.getpid() != %d)
            ''' % (z, z))
        r = s.post_execute({"main.py": probe})
        self.assertRan(r)
        self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())
        self.assertEqual(r.stdout, b"ESRCH\nTrue\nTrue\n")

    def test_zygote_killed_between_runs(self):
        s = self.warm_server()
        z = self.the_zygote(s)
        s.mark_log()
        os.kill(z, signal.SIGKILL)
        # The sandbox made ahead may come from the dead zygote: it serves
        # all the same. Then a new zygote takes over, and runs are warm.
        for _ in range(3):
            r = s.post_execute({"main.py": HELLO})
            self.assertRan(r)
            self.assertEqual(r.stdout, b"hello\n")
        self.assertTrue(harness.wait_for(
            lambda: zygote_pids(s) not in ([], [z])
            and s.request("GET", "/healthz").json().get("warm") == "on", 10),
            "no new zygote: %r; %s" % (zygote_pids(s), s.log_since_mark()))
        self.assertIn("zygote: pid %d is gone" % z, s.log_since_mark())
        r = s.post_execute({"main.py": HELLO})
        self.assertRan(r)
        self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())

    def test_zygote_killed_during_a_run(self):
        s = self.warm_server()
        z = self.the_zygote(s)
        slow = script('''
            import sys, time
            print("started", flush=True)
            time.sleep(1.5)
            print("done")
            ''')
        import threading
        killer = threading.Timer(0.5, lambda: os.kill(z, signal.SIGKILL))
        killer.start()
        try:
            r = s.post_execute({"main.py": slow})
        finally:
            killer.cancel()
        self.assertRan(r)
        self.assertEqual(r.stdout, b"started\ndone\n")
        self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())

    def metric(self, s, name):
        for line in s.request("GET", "/metrics").body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        self.fail("no %s in /metrics" % name)

    def test_replaced_after_warm_runs_without_a_request_waiting(self):
        s = self.warm_server(options=["warm_runs=3"])
        first = self.the_zygote(s)
        main = script('print(hash("pyexec"))\n')
        seen, secrets = set(), set()
        for _ in range(12):
            r = s.post_execute({"main.py": main})
            self.assertRan(r)
            # every run is warm: the new zygote is made while the old one forks
            self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())
            secrets.add(r.stdout)
            pids = zygote_pids(s)
            self.assertLessEqual(len(pids), 2, pids)
            seen.update(pids)
        self.assertGreaterEqual(len(seen), 2, "zygotes seen: %r" % (seen,))
        self.assertFalse(os.path.exists("/proc/%d" % first) and
                         first in zygote_pids(s), "the first zygote still forks")
        self.assertGreaterEqual(len(secrets), 2, "one hash secret for 12 runs: %r" % secrets)
        self.assertGreaterEqual(
            self.metric(s, 'pyexec_zygotes_total{event="refreshed"}'), 1)

    def test_replaced_after_warm_seconds(self):
        s = self.warm_server(options=["warm_seconds=1"])
        first = self.the_zygote(s)
        r = s.post_execute({"main.py": HELLO})
        self.assertRan(r)
        self.assertTrue(harness.wait_for(lambda: (
            s.post_execute({"main.py": HELLO}).status == 200 and
            zygote_pids(s) not in ([], [first])), 10, 0.3),
            "still the first zygote: %r" % zygote_pids(s))

    def test_metrics_count_warm_and_cold_runs(self):
        s = self.warm_server()
        warm0 = self.metric(s, 'pyexec_runs_started_total{start="warm"}')
        started = self.metric(s, 'pyexec_zygotes_total{event="started"}')
        self.assertGreaterEqual(started, 1)
        for _ in range(3):
            self.assertRan(s.post_execute({"main.py": HELLO}))
        self.assertEqual(self.metric(s, 'pyexec_runs_started_total{start="warm"}'), warm0 + 3)
        c = self.private_server(name="coldm", workers=1, options=["warm=no"],
                                **self.layer_options())
        self.assertRan(c.post_execute({"main.py": HELLO}))
        self.assertEqual(self.metric(c, 'pyexec_runs_started_total{start="cold"}'), 1)
        self.assertEqual(self.metric(c, 'pyexec_zygotes_total{event="started"}'), 0)

    def test_preloads_that_break_a_rule_are_refused_at_start(self):
        """warm_preload's modules are vetted at start: one that prints,
        registers an atexit function or cannot be imported stops pyexec
        with a sentence that says which rule it broke."""
        self.warm_server()
        layer = ["-o", "sandbox=" + self.LAYER]
        for module, says in (("this", "warm_preload: this printed when imported"),
                             ("logging", "warm_preload: logging registered an atexit "
                                         "function when imported"),
                             ("no_such_module_here", "warm_preload: no_such_module_here "
                                                     "cannot be imported")):
            with self.subTest(module=module):
                out, _ = self.start_fails(layer + ["-o", "warm_preload=" + module])
                self.assertIn(says, out)

    def test_the_zygote_has_one_thread(self):
        s = self.warm_server()
        z = self.the_zygote(s)
        self.assertEqual(harness.proc_status(z, "Threads"), "1")

    def test_replaced_under_load_with_no_request_failing(self):
        s = self.warm_server(options=["warm_runs=3"], workers=2)
        import threading
        replies, seen = [], set()

        def client():
            for _ in range(12):
                replies.append(s.post_execute({"main.py": HELLO}))
                seen.update(zygote_pids(s))
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(replies), 48)
        for r in replies:
            self.assertRan(r)
            self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())
        self.assertGreaterEqual(len(seen), 3, seen)

    def test_zygote_goes_with_the_server(self):
        s = self.warm_server()
        z = self.the_zygote(s)
        s.stop()
        self.assertTrue(harness.wait_pid_gone(z, 10), "zygote %d outlived the server" % z)


class PlainZygote(Zygote):
    """The rlimits layer's zygote (README "Warm start"): the same tests, a
    run's own directories, and what keeps it from a run of the same
    user."""

    LAYER = "rlimits"

    def layer_options(self):
        return {"sandbox": "rlimits"}

    def test_the_zygote_is_out_of_a_runs_reach(self):
        """A run has the zygote's user, not its memory: no ptrace, no
        /proc/<pid>/mem or environ (it is not dumpable)."""
        s = self.warm_server()
        z = self.the_zygote(s)
        probe = script('''
            import ctypes, os
            for f in ("mem", "environ"):
                try:
                    open("/proc/%d/" + f, "rb").read(1)
                    print(f, "read")
                except PermissionError:
                    print(f, "EACCES")
            libc = ctypes.CDLL(None, use_errno=True)
            PTRACE_ATTACH = 16
            r = libc.ptrace(PTRACE_ATTACH, %d, None, None)
            print("ptrace", r, os.strerror(ctypes.get_errno()))
            print(os.getpid() != %d)
            ''' % (z, z, z))
        r = s.post_execute({"main.py": probe})
        self.assertRan(r)
        self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())
        self.assertEqual(r.stdout, b"mem EACCES\nenviron EACCES\n"
                                   b"ptrace -1 Operation not permitted\nTrue\n")

    def test_the_next_run_waits_forked_and_a_lost_one_is_made_again(self):
        """Between requests the zygote's next run waits, forked ahead (a
        spare, in the run's cgroup); one killed is made again when a
        request comes, which still runs warm."""
        s = self.warm_server()
        self.assertRan(s.post_execute({"main.py": HELLO}))

        def spares():
            return harness.spare_pids(harness.proc_table(), s.worker_pids())
        self.assertTrue(harness.wait_for(lambda: len(spares()) == 1, 10),
                        "no run made ahead: %r" % (spares(),))
        spare = spares()[0]
        os.kill(spare, signal.SIGKILL)
        self.assertTrue(harness.wait_pid_gone(spare, 10))
        r = s.post_execute({"main.py": HELLO})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")
        self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())
        self.assertTrue(harness.wait_for(lambda: spares() not in ([], [spare]), 10),
                        "no new run made ahead: %r" % (spares(),))

    def test_a_run_has_its_own_directories(self):
        """Each run's cwd, __file__, sys.path[0], HOME, TMPDIR and
        OUTPUT_DIR are its request's directories, as in a cold run, and
        never the zygote's."""
        s = self.warm_server()
        main = script('''
            import os, sys
            cwd = os.getcwd()
            print(__file__ == os.path.join(cwd, "main.py"), sys.path[0] == cwd)
            print(os.environ["OUTPUT_DIR"] == cwd, os.environ["HOME"] == os.environ["TMPDIR"])
            import re
            zygote_dir = re.compile(r"/[0-9]+-zygote[.]")
            print(os.path.isdir(os.environ["TMPDIR"]),
                  bool(zygote_dir.search(cwd + " " + os.environ["TMPDIR"])))
            import ctypes
            libc = ctypes.CDLL(None)
            libc.getenv.restype = ctypes.c_char_p
            print(libc.getenv(b"HOME") == os.environ["HOME"].encode())
            print(cwd)
            ''')
        seen = set()
        for _ in range(3):
            r = s.post_execute({"main.py": main})
            self.assertRan(r)
            self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())
            lines = r.stdout.decode().splitlines()
            self.assertEqual(lines[:4], ["True True", "True True", "True False", "True"])
            seen.add(lines[4])
        self.assertEqual(len(seen), 3, seen)


# Modules a test may ask a zygote to preload: in a venv of the system's
# python (the interpreter pyexec-zygote embeds), which pyexec is then
# configured to use.
VETTED = {
    "quiet_ok": "VALUE = 42\n",
    "starts_a_thread": "import threading, time\n"
                       "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n",
    # in its cwd: /work in a namespace, the zygote's own directory on rlimits
    "writes_a_file": "open('left-behind', 'w').write('x')\n",
    "keeps_an_fd": "kept = open('/dev/null')\n",
    "sets_a_handler": "import signal\nsignal.signal(signal.SIGUSR1, lambda *a: None)\n",
    "changes_sys_path": "import sys\nsys.path.append('/nowhere')\n",
    "changes_environ": "import os\nos.environ['PYEXEC_TEST'] = '1'\n",
    # on the rlimits layer HOME is each run's own
    "reads_home": "import os\nCONFIG = os.path.expanduser('~/.config')\n",
}


class PreloadVetting(harness.E2ETestCase):
    """warm_preload's rules, module by module (README "Warm start")."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pyexec-e2e-venv-")
        os.chmod(cls.dir, 0o755)    # reachable once pyexec has dropped to nobody
        venv = os.path.join(cls.dir, "venv")
        python = os.environ.get("TEST_PYTHON", "/usr/bin/python3")
        made = subprocess.run([python, "-m", "venv", "--without-pip", venv],
                              capture_output=True, text=True)
        cls.why = None if made.returncode == 0 else "no venv: " + made.stderr.strip()[-200:]
        if cls.why is None:
            cls.python = os.path.join(venv, "bin", "python3")
            site = subprocess.run([cls.python, "-c", "import site; print(site.getsitepackages()[0])"],
                                  capture_output=True, text=True).stdout.strip()
            for name, src in VETTED.items():
                with open(os.path.join(site, name + ".py"), "w") as f:
                    f.write(src)
            for root, dirs, files in os.walk(cls.dir):
                for n in dirs:
                    os.chmod(os.path.join(root, n), 0o755)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        if self.why:
            self.skipTest(self.why)

    def test_each_rule_refuses_its_module_at_start(self):
        for layer in ("namespaces", "rlimits"):
            with self.subTest(layer=layer):
                self.each_rule_refuses(layer)

    def each_rule_refuses(self, layer):
        for module, says in (("starts_a_thread", "started a thread"),
                             ("writes_a_file", "wrote a file"),
                             ("keeps_an_fd", "left a file descriptor open"),
                             ("sets_a_handler", "changed a signal handler"),
                             ("changes_sys_path", "changed sys.path"),
                             ("changes_environ", "changed os.environ"),
                             ("reads_home", "read HOME, which is each run's own,")):
            if module == "reads_home" and layer != "rlimits":
                continue
            with self.subTest(module=module):
                out, _ = self.start_fails(["-o", "python=" + self.python,
                                           "-o", "sandbox=" + layer,
                                           "-o", "warm_preload=quiet_ok," + module])
                if "warm_preload" not in out and "zygote" not in out:
                    self.skipTest("no zygote here (%s): %s" % (layer, out.strip()[-300:]))
                self.assertIn("warm_preload: %s %s when imported" % (module, says), out)

    def test_reading_home_is_refused_on_the_rlimits_layer_only(self):
        """In a namespace HOME is /tmp in every run: a module may read it."""
        s = self.private_server(name="home", workers=1,
                                options=["python=" + self.python, "warm_preload=reads_home"])
        health = s.request("GET", "/healthz").json()
        if health.get("sandbox") != "namespaces" or health.get("warm") != "on":
            self.skipTest("no zygote of the namespace layer here: %s"
                          % health.get("warm_why", health.get("sandbox")))
        r = s.post_execute({"main.py": script('''
            import reads_home
            print(reads_home.CONFIG)
            ''')})
        self.assertRan(r)
        self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())
        self.assertEqual(r.stdout, b"/tmp/.config\n")

    def test_a_module_that_passes_is_there_at_once(self):
        s = self.private_server(name="vetted", workers=1,
                                options=["python=" + self.python,
                                         "warm_preload=quiet_ok"])
        health = s.request("GET", "/healthz").json()
        if health.get("warm") != "on":
            self.skipTest("no zygote here: %s" % health.get("warm_why", health.get("sandbox")))
        r = s.post_execute({"main.py": script('''
            import sys
            print("quiet_ok" in sys.modules)
            import quiet_ok
            print(quiet_ok.VALUE, quiet_ok.__file__.endswith("site-packages/quiet_ok.py"))
            ''')})
        self.assertRan(r)
        self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())
        self.assertEqual(r.stdout, b"False\n42 True\n")


if __name__ == "__main__":
    harness.main()
