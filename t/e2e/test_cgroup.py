"""End-to-end: runs held in a cgroup v2 directory delegated to pyexec's
user, through a real nginx.

The test makes what systemd's Delegate=yes makes: a cgroup of its own under
the cgroup v2 mount, handed to nobody (the directory, cgroup.procs,
cgroup.subtree_control, cgroup.threads), and starts the pyexec master in it.
pyexec (auto) must find it, move itself into <cgroup>/supervisor, give each
worker a run-<pid> cgroup, clone every run straight into it, empty it after
each run, and remove it when the worker is gone.

The memory and pids controllers are enabled for the runs when the cgroup
offers them. On a hybrid hierarchy (the memory controller bound to cgroup
v1) it does not: then memory.max cannot be tested here, and the tests that
need it say so when they skip.
"""

import json
import os
import pwd
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import script  # noqa: E402


def cgroup2_mount():
    """The first cgroup2 mount point, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ")[0] == "cgroup2":
                return left.split(" ")[4].replace("\\040", " ")
    return None


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def populated(path):
    for line in (read(os.path.join(path, "cgroup.events")) or "").splitlines():
        k, _, v = line.partition(" ")
        if k == "populated":
            return v == "1"
    return None


def cgroup_procs(path):
    """The pids in a cgroup (cgroup.procs), or None when it is gone."""
    text = read(os.path.join(path, "cgroup.procs"))
    return None if text is None else sorted(int(x) for x in text.split())


def cgroup_of(pid):
    for line in (read("/proc/%d/cgroup" % pid) or "").splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


# The program's cgroup v2 line (a hybrid system lists v1 hierarchies too).
SHOW_CGROUP = (b"print([l for l in open('/proc/self/cgroup').read().splitlines()"
               b" if l.startswith('0::')][0])\n")


class Cgroup(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("making a delegated cgroup needs root")
        mount = cgroup2_mount()
        if mount is None:
            self.skipTest("this system has no cgroup v2 mount")
        self.mount = mount
        self.dir = os.path.join(mount, "pyexec-e2e-%d-%s" % (os.getpid(), os.urandom(4).hex()))
        os.mkdir(self.dir)
        self.addCleanup(self.remove_dir)
        nobody = pwd.getpwnam("nobody")
        for name in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(os.path.join(self.dir, name), nobody.pw_uid, nobody.pw_gid)
        self.controllers = (read(os.path.join(self.dir, "cgroup.controllers")) or "").split()

    def remove_dir(self):
        """Once the server is gone: its supervisor leaf and the cgroup."""
        for entry in sorted(os.listdir(self.dir)):
            p = os.path.join(self.dir, entry)
            if os.path.isdir(p):
                harness.wait_for(lambda: populated(p) is False, 5)
                try:
                    os.rmdir(p)
                except OSError:
                    pass
        harness.wait_for(lambda: populated(self.dir) is False, 5)
        os.rmdir(self.dir)

    def server(self, **kw):
        d = self.dir

        def enter():
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("0")
        return self.private_server(preexec=enter, **kw)

    def runs(self):
        return sorted(e for e in os.listdir(self.dir) if e.startswith("run-"))

    def test_runs_are_held_in_the_delegated_cgroup(self):
        s = self.server(workers=2)
        h = s.request("GET", "/healthz").json()
        self.assertEqual(h["cgroup"], self.dir, h)
        self.assertEqual(h["enforced"]["memory"],
                         "cgroup memory.max" if "memory" in self.controllers else "RLIMIT_AS", h)
        self.assertEqual(h["enforced"]["processes"],
                         "cgroup pids.max, RLIMIT_NPROC" if "pids" in self.controllers
                         else "RLIMIT_NPROC", h)
        sup = self.dir[len(self.mount):] + "/supervisor"
        self.assertEqual(cgroup_of(s.proc.pid), sup)
        workers = harness.wait_for(lambda: len(s.worker_pids()) == 2 and s.worker_pids(), 5)
        self.assertTrue(workers, s.log_tail())
        for w in workers:
            self.assertEqual(cgroup_of(w), sup)
        self.assertTrue(harness.wait_for(
            lambda: self.runs() == sorted("run-%d" % w for w in workers), 5),
            "%r for workers %r" % (self.runs(), workers))
        # The run's cgroup namespace is rooted at its run cgroup.
        r = s.post_execute({"main.py": SHOW_CGROUP})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"0::/\n")
        self.assertIn("cgroup: runs in %s/run-<worker>" % self.dir, s.log_tail())

    def test_rlimits_layer_runs_in_the_run_cgroup_too(self):
        s = self.server(workers=1, sandbox="rlimits")
        r = s.post_execute({"main.py": SHOW_CGROUP})
        self.assertRan(r)
        w = s.worker_pids()[0]
        self.assertEqual(r.stdout.decode(),
                         "0::%s/run-%d\n" % (self.dir[len(self.mount):], w))

    def test_a_daemon_does_not_outlive_its_run(self):
        s = self.server(workers=1)
        r = s.post_execute({"main.py": script('''
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(60)
                os._exit(0)
            print("parent done", flush=True)
            ''')})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"parent done\n")
        # Between runs a run cgroup holds only the sandbox its worker made
        # for the next request; the daemon is gone.
        [w] = s.worker_pids()
        spares = harness.wait_for(
            lambda: harness.spare_pids(harness.proc_table(), [w]), 5)
        self.assertEqual(len(spares or []), 1, "the worker's next sandbox: %r" % spares)
        self.assertEqual(cgroup_of(spares[0]), "%s/run-%d" % (self.dir[len(self.mount):], w))
        table = harness.proc_table()
        for run in self.runs():
            procs = cgroup_procs(os.path.join(self.dir, run))
            self.assertIsNotNone(procs, run)
            left = [(p, table.get(p, {}).get("cmdline")) for p in procs if p not in spares]
            self.assertEqual(left, [], run)

    def test_a_dead_worker_run_cgroup_is_removed(self):
        s = self.server(workers=1)
        self.assertRan(s.post_execute({"main.py": b"print(1)\n"}))
        old = s.worker_pids()[0]
        self.assertEqual(self.runs(), ["run-%d" % old])
        os.kill(old, signal.SIGKILL)
        new = harness.wait_for(lambda: [w for w in s.worker_pids() if w != old], 10)
        self.assertTrue(new, s.log_tail())
        self.assertTrue(harness.wait_for(lambda: self.runs() == ["run-%d" % new[0]], 5),
                        "%r after worker %d died (new %r)" % (self.runs(), old, new))
        self.assertRan(s.post_execute({"main.py": b"print(2)\n"}))

    def test_run_cgroups_go_with_the_server(self):
        s = self.server(workers=2)
        self.assertRan(s.post_execute({"main.py": b"print(1)\n"}))
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(10)
        self.assertEqual(self.runs(), [])

    def test_memory_max_ends_a_run_with_memory_status(self):
        if "memory" not in self.controllers:
            self.skipTest("the cgroup v2 hierarchy here offers no memory controller "
                          "(it is bound to cgroup v1), so memory.max cannot be tested")
        s = self.server(workers=1)
        r = s.post_execute({"main.py": script('''
            import threading
            print("allocating", flush=True)
            hog = []
            while True:
                hog.append(b"\\xa5" * (8 << 20))
            ''')}, query={"memory": "64"}, timeout=30)
        self.assertRan(r, "memory", None)
        self.assertEqual(r.stdout, b"allocating\n")
        self.assertIn(b"pyexec: memory limit of 64 MiB reached", r.stderr)
        self.assertRan(s.post_execute({"main.py": b"print(1)\n"}))

    def test_pids_max_holds_the_whole_run(self):
        if "pids" not in self.controllers:
            self.skipTest("the cgroup v2 hierarchy here offers no pids controller "
                          "(it is bound to cgroup v1), so pids.max cannot be tested")
        s = self.server(workers=1, options=["max_processes=16"])
        r = s.post_execute({"main.py": script('''
            import os, json
            n, err = 0, None
            try:
                for _ in range(64):
                    if os.fork() == 0:
                        import time; time.sleep(30); os._exit(0)
                    n += 1
            except OSError as e:
                err = e.errno
            print(json.dumps([n, err]))
            ''')})
        self.assertRan(r)
        n, err = json.loads(r.stdout)
        self.assertLess(n, 16)
        self.assertEqual(err, 11)   # EAGAIN


class CgroupStart(harness.E2ETestCase):

    def test_a_cgroup_that_does_not_hold_pyexec_is_refused(self):
        mount = cgroup2_mount()
        if mount is None:
            self.skipTest("this system has no cgroup v2 mount")
        want = os.path.join(mount, "pyexec-elsewhere")
        out, _ = self.start_fails(["-o", "cgroup=" + want])
        self.assertIn("which is not inside %s" % want, out)
        self.assertIn("Delegate=yes", out)

    def test_a_bad_cgroup_value_is_refused(self):
        out, conf = self.start_fails([], conf="cgroup = maybe\n")
        self.assertIn("%s:1: cgroup: 'maybe' must be auto, no or an absolute path" % conf, out)


if __name__ == "__main__":
    harness.main()
