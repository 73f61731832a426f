"""End-to-end: runs held in cgroups of their own, through a real nginx, on
each cgroup version the machine has.

cgroup v2 (CgroupV2): the test makes what systemd's Delegate=yes makes: a
cgroup of its own under the cgroup v2 mount, handed to nobody (the
directory, cgroup.procs, cgroup.subtree_control, cgroup.threads), starts the
pyexec master in it and names it (cgroup = <dir>). pyexec must move itself
into <cgroup>/supervisor, give each worker a run-<pid> cgroup, clone every
run straight into it, empty it after each run, and remove it when the
worker is gone. On a hybrid hierarchy the memory controller is bound to
cgroup v1 and cannot be offered to a v2 cgroup: the tests that need it say
so when they skip.

cgroup v1 (CgroupV1): pyexec started as root with cgroup = auto, on a
machine whose memory controller is bound to cgroup v1, makes
<its memory cgroup>/pyexec/<master pid> (and the same in the pids and
cpuacct hierarchies) for its run user before it drops privileges; each
worker rests there and has a run-<pid> cgroup below it. CgroupV1Given
gives pyexec a v1 directory its user owns, as an operator does when
pyexec does not start as root.

The same tests run on both: what the runs see, what is left between runs,
the memory limit of the whole run (memory bomb, memfd bomb), fork bombs and
many threads, and the CPU time of the run as a whole.
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


def cgroup_mount(ctrl=None):
    """The mount point of the cgroup v2 hierarchy (ctrl None) or of the
    cgroup v1 hierarchy of controller ctrl, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, rest = right.partition(" ")
            opts = rest.split()[-1].split(",") if rest.split() else []
            if (fstype == "cgroup2" and ctrl is None) or \
                    (fstype == "cgroup" and ctrl is not None and ctrl in opts):
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


def cgroup_of(pid, ctrl=None):
    """pid's cgroup in the v2 hierarchy (ctrl None) or in the v1 one of ctrl."""
    for line in (read("/proc/%d/cgroup" % pid) or "").splitlines():
        _, ctrls, path = line.split(":", 2)
        if (ctrl is None and line.startswith("0::")) or \
                (ctrl is not None and ctrl in ctrls.split(",")):
            return path
    return None


def show_cgroup(ctrl):
    """A program printing its own cgroup line (v2, or v1 of ctrl)."""
    if ctrl is None:
        return (b"print([l for l in open('/proc/self/cgroup').read().splitlines()"
                b" if l.startswith('0::')][0])\n")
    return ("print([l.split(':', 2)[2] for l in open('/proc/self/cgroup').read()"
            ".splitlines() if %r in l.split(':')[1].split(',')][0])\n" % ctrl).encode()


class CgroupRuns:
    """The tests every cgroup version passes. A subclass sets up self.mount
    (the hierarchy the runs' memory is held in), self.ctrl (None on v2) and
    server()."""

    ctrl = None

    def rel(self, path):
        return path[len(self.mount):] or "/"

    def runs(self):
        return sorted(e for e in os.listdir(self.dir) if e.startswith("run-"))

    def test_runs_are_held_in_their_cgroup(self):
        s = self.server(workers=2)
        h = s.request("GET", "/healthz").json()
        self.assertEqual(h["cgroup"], self.dir, h)
        self.assertEqual(h["enforced"]["memory"], self.memory_enforced, h)
        self.assertEqual(h["enforced"]["processes"],
                         "cgroup pids.max, RLIMIT_NPROC" if self.has_pids else "RLIMIT_NPROC", h)
        self.assertEqual(h["enforced"]["cpu_time"], self.cpu_enforced, h)
        rest = self.rel(self.rest_dir)
        workers = harness.wait_for(lambda: len(s.worker_pids()) == 2 and s.worker_pids(), 5)
        self.assertTrue(workers, s.log_tail())
        for w in workers:
            self.assertTrue(harness.wait_for(lambda: cgroup_of(w, self.ctrl) == rest, 5),
                            "worker %d in %s" % (w, cgroup_of(w, self.ctrl)))
        self.assertTrue(harness.wait_for(
            lambda: self.runs() == sorted("run-%d" % w for w in workers), 5),
            "%r for workers %r" % (self.runs(), workers))
        # The run's cgroup namespace is rooted at its run cgroup.
        r = s.post_execute({"main.py": show_cgroup(self.ctrl)})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"0::/\n" if self.ctrl is None else b"/\n")
        self.assertIn("cgroup: runs in %s/run-<worker>" % self.dir, s.log_tail())

    def test_rlimits_layer_runs_in_the_run_cgroup_too(self):
        s = self.server(workers=1, sandbox="rlimits")
        r = s.post_execute({"main.py": show_cgroup(self.ctrl)})
        self.assertRan(r)
        w = s.worker_pids()[0]
        line = "%s/run-%d\n" % (self.rel(self.dir), w)
        self.assertEqual(r.stdout.decode(), ("0::" if self.ctrl is None else "") + line)

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
        # A sandbox the zygote forks is moved into the run cgroup once it
        # says hello: shortly after it shows as a spare.
        want = "%s/run-%d" % (self.rel(self.dir), w)
        self.assertTrue(harness.wait_for(lambda: cgroup_of(spares[0], self.ctrl) == want, 5),
                        "%s is in %s" % (spares[0], cgroup_of(spares[0], self.ctrl)))
        # (with its payload, in a sandbox the zygote forked: made ahead too,
        # maybe after the spare showed, so the processes are read first)
        for run in self.runs():
            procs = cgroup_procs(os.path.join(self.dir, run))
            self.assertIsNotNone(procs, run)
            table = harness.proc_table()
            kept = harness.kept_pids(table, [w])
            left = [(p, table.get(p, {}).get("cmdline")) for p in procs if p not in kept]
            self.assertEqual(left, [], run)

    def test_a_dead_worker_run_cgroup_is_removed(self):
        s = self.server(workers=1)
        self.assertRan(s.post_execute({"main.py": b"print(1)\n"}))
        old = s.worker_pids()[0]
        self.assertEqual(self.runs(), ["run-%d" % old])
        os.kill(old, signal.SIGKILL)
        new = harness.wait_for(lambda: [w for w in s.worker_pids() if w != old], 10)
        self.assertTrue(new, s.log_tail())
        # (asked again each time: a sandbox the dead worker had just forked
        # carries the title of a worker until the master has killed it)
        self.assertTrue(harness.wait_for(lambda: self.runs() == [
            "run-%d" % w for w in s.worker_pids() if w != old], 5),
                        "%r after worker %d died (workers now %r)"
                        % (self.runs(), old, s.worker_pids()))
        self.assertRan(s.post_execute({"main.py": b"print(2)\n"}))

    def test_run_cgroups_go_with_the_server(self):
        s = self.server(workers=2)
        self.assertRan(s.post_execute({"main.py": b"print(1)\n"}))
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(10)
        self.assertEqual(self.runs() if os.path.isdir(self.dir) else [], [])
        self.gone_with_the_server()

    def gone_with_the_server(self):
        pass

    def need_memory(self):
        if not self.has_memory:
            self.skipTest(self.no_memory_why)

    def test_a_memory_bomb_ends_with_memory_status(self):
        self.need_memory()
        s = self.server(workers=1)
        r = s.post_execute({"main.py": script('''
            print("allocating", flush=True)
            hog = []
            while True:
                hog.append(b"\\xa5" * (8 << 20))
            ''')}, query="memory=64", timeout=30)
        self.assertRan(r, "memory", None)
        self.assertEqual(r.stdout, b"allocating\n")
        self.assertIn(b"pyexec: memory limit of 64 MiB reached", r.stderr)
        self.assertRan(s.post_execute({"main.py": b"print(1)\n"}))

    def test_a_memfd_bomb_ends_with_memory_status(self):
        # Pages written into memfds belong to no process's address space:
        # only the cgroup sees them.
        self.need_memory()
        s = self.server(workers=1)
        r = s.post_execute({"main.py": script('''
            import os
            print("filling", flush=True)
            chunk, fds = b"\\xa5" * (1 << 20), []
            while True:
                fd = os.memfd_create("bomb")
                for _ in range(4):
                    os.write(fd, chunk)
                fds.append(fd)
            ''')}, query="memory=32", timeout=30)
        self.assertRan(r, "memory", None)
        self.assertEqual(r.stdout, b"filling\n")
        self.assertIn(b"pyexec: memory limit of 32 MiB reached", r.stderr)
        self.assertRan(s.post_execute({"main.py": b"print(1)\n"}))

    def test_many_threads_fit_under_the_memory_limit(self):
        # An address-space limit would refuse them (each reserves a stack);
        # the cgroup counts only what they use.
        self.need_memory()
        s = self.server(workers=1, options=["max_processes=256"])
        r = s.post_execute({"main.py": script('''
            import threading
            stop = threading.Event()
            threads = [threading.Thread(target=stop.wait) for _ in range(64)]
            for t in threads:
                t.start()
            stop.set()
            for t in threads:
                t.join()
            print(len(threads))
            ''')}, query="memory=64")
        self.assertRan(r)
        self.assertEqual(r.stdout, b"64\n")

    def test_pids_max_holds_the_whole_run(self):
        if not self.has_pids:
            self.skipTest(self.no_pids_why)
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

    def test_a_fork_bomb_is_emptied_out(self):
        if not self.has_pids:
            self.skipTest(self.no_pids_why)
        s = self.server(workers=1, options=["max_processes=32"])
        r = s.post_execute({"main.py": script('''
            import os
            print("bomb", flush=True)
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
            ''')}, query="timeout=2", timeout=30)
        self.assertRan(r, "timeout", None)
        self.assertEqual(r.stdout, b"bomb\n")
        [w] = s.worker_pids()
        spares = harness.wait_for(lambda: harness.spare_pids(harness.proc_table(), [w]), 5)
        procs = cgroup_procs(os.path.join(self.dir, "run-%d" % w))
        kept = harness.kept_pids(harness.proc_table(), [w]) if spares else []
        self.assertEqual([p for p in procs if p not in kept], [])
        self.assertRan(s.post_execute({"main.py": b"print(1)\n"}))

    def test_cpu_time_holds_for_the_run_as_a_whole(self):
        # Each process of the chain stays under RLIMIT_CPU (1 s); together
        # they would use 4.2 s.
        if not self.has_cpu:
            self.skipTest("this cgroup gives no CPU usage of the run")
        s = self.server(workers=1, options=["cpu_time=1"])
        t0 = time.monotonic()
        r = s.post_execute({"main.py": script('''
            import os, time
            for i in range(6):
                while time.process_time() < 0.7:
                    pass
                print(i, flush=True)
                if os.fork() != 0:
                    os.wait()
                    os._exit(0)
            ''')}, query="timeout=20", timeout=30)
        self.assertRan(r, "timeout", None)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(r.stdout, b"0\n")
        self.assertIn(b"pyexec: CPU time limit of 1 s reached", r.stderr)
        cpu = float(r.headers["X-CPU-Time"])
        self.assertGreaterEqual(cpu, 1.0, r.describe())
        self.assertLess(cpu, 1.5, r.describe())

    def test_cpu_time_counts_every_process(self):
        if not self.has_cpu:
            self.skipTest("this cgroup gives no CPU usage of the run")
        s = self.server(workers=1)
        r = s.post_execute({"main.py": script('''
            import os, time
            r, w = os.pipe()
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    while time.process_time() < 0.4:
                        pass
                    print("daemon burnt", flush=True)
                    os.write(w, b"x")
                    while True:     # until the run's end kills it
                        pass
                os._exit(0)
            os.wait()
            os.close(w)
            os.read(r, 1)           # however busy the machine is
            ''')})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"daemon burnt\n")
        self.assertGreaterEqual(float(r.headers["X-CPU-Time"]), 0.4, r.describe())


class CgroupV2(CgroupRuns, harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("making a delegated cgroup needs root")
        mount = cgroup_mount()
        if mount is None:
            self.skipTest("this system has no cgroup v2 mount")
        self.mount = mount
        self.dir = os.path.join(mount, "pyexec-e2e-%d-%s" % (os.getpid(), os.urandom(4).hex()))
        os.mkdir(self.dir)
        self.addCleanup(self.remove_dir)
        nobody = pwd.getpwnam("nobody")
        for name in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(os.path.join(self.dir, name), nobody.pw_uid, nobody.pw_gid)
        self.rest_dir = os.path.join(self.dir, "supervisor")
        controllers = (read(os.path.join(self.dir, "cgroup.controllers")) or "").split()
        self.has_memory = "memory" in controllers
        self.has_pids = "pids" in controllers
        self.has_cpu = os.path.exists(os.path.join(self.dir, "cpu.stat"))
        self.memory_enforced = "cgroup memory.max" if self.has_memory else "RLIMIT_AS"
        self.cpu_enforced = "cgroup cpu.stat, RLIMIT_CPU" if self.has_cpu else "RLIMIT_CPU"
        v1 = " (it is bound to cgroup v1: CgroupV1 tests it there)" \
            if cgroup_mount("memory") else ""
        self.no_memory_why = ("the cgroup v2 hierarchy here offers no memory "
                              "controller%s" % v1)
        self.no_pids_why = "the cgroup v2 hierarchy here offers no pids controller" + (
            " (it is bound to cgroup v1: CgroupV1 tests it there)"
            if cgroup_mount("pids") else "")

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
        kw["options"] = kw.get("options", []) + ["cgroup=" + d]
        return self.private_server(preexec=enter, **kw)


class CgroupV1(CgroupRuns, harness.E2ETestCase):
    """pyexec started as root with cgroup = auto makes its own v1 cgroups."""

    ctrl = "memory"

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("pyexec makes its cgroup v1 directories when started as root")
        self.mount = cgroup_mount("memory")
        if self.mount is None:
            self.skipTest("this system has no cgroup v1 memory hierarchy")
        v2 = cgroup_mount()
        if v2 and "memory" in (read(os.path.join(v2, "cgroup.controllers")) or "").split():
            self.skipTest("the memory controller is on cgroup v2 here: auto uses that")
        self.own = self.mount + cgroup_of(os.getpid(), "memory").rstrip("/")
        self.has_memory = True
        self.has_pids = cgroup_mount("pids") is not None
        self.has_cpu = cgroup_mount("cpuacct") is not None
        self.memory_enforced = "cgroup memory.limit_in_bytes"
        self.cpu_enforced = ("cgroup cpuacct.usage, RLIMIT_CPU" if self.has_cpu
                             else "RLIMIT_CPU")
        self.no_pids_why = "this system has no cgroup v1 pids hierarchy"

    def server(self, **kw):
        s = self.private_server(**kw)
        self.dir = os.path.join(self.own, "pyexec", str(s.proc.pid))
        self.rest_dir = self.dir
        return s

    def gone_with_the_server(self):
        for ctrl in ("memory", "pids", "cpuacct"):
            mount = cgroup_mount(ctrl)
            if mount is None:
                continue
            base = mount + cgroup_of(os.getpid(), ctrl).rstrip("/") + "/pyexec"
            self.assertFalse(os.path.exists(self.dir.replace(self.own + "/pyexec", base)),
                             "%s left in %s" % (os.listdir(base), base))

    def test_an_instance_that_is_gone_is_removed_at_start(self):
        base = os.path.join(self.own, "pyexec")
        os.makedirs(base, exist_ok=True)
        # a pid no process has: the highest possible
        with open("/proc/sys/kernel/pid_max") as f:
            stale = os.path.join(base, str(int(f.read()) - 1))
        os.makedirs(os.path.join(stale, "run-1"), exist_ok=True)
        self.server(workers=1)
        self.assertFalse(os.path.exists(stale))

    def test_the_run_user_owns_its_cgroups(self):
        s = self.server(workers=1)
        self.assertRan(s.post_execute({"main.py": b"print(1)\n"}))
        nobody = pwd.getpwnam("nobody").pw_uid
        self.assertEqual(os.stat(self.dir).st_uid, nobody)
        self.assertEqual(os.stat(os.path.join(self.dir, "cgroup.procs")).st_uid, nobody)
        [w] = s.worker_pids()
        self.assertEqual(os.stat(os.path.join(self.dir, "run-%d" % w)).st_uid, nobody)


class CgroupV1Given(harness.E2ETestCase):
    """cgroup = <a v1 memory directory pyexec's user owns>."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("making a cgroup v1 directory for pyexec's user needs root")
        mount = cgroup_mount("memory")
        if mount is None:
            self.skipTest("this system has no cgroup v1 memory hierarchy")
        own = mount + cgroup_of(os.getpid(), "memory").rstrip("/")
        self.dir = os.path.join(own, "pyexec-e2e-%d-%s" % (os.getpid(), os.urandom(4).hex()))
        os.mkdir(self.dir)
        self.addCleanup(self.remove_dir)

    def remove_dir(self):
        for entry in os.listdir(self.dir):
            p = os.path.join(self.dir, entry)
            if os.path.isdir(p):
                harness.wait_for(lambda: not cgroup_procs(p), 5)
                os.rmdir(p)
        os.rmdir(self.dir)

    def test_a_given_v1_cgroup_holds_the_runs(self):
        nobody = pwd.getpwnam("nobody")
        for name in ("", "cgroup.procs"):
            os.chown(os.path.join(self.dir, name), nobody.pw_uid, nobody.pw_gid)
        s = self.private_server(workers=1, options=["cgroup=" + self.dir])
        h = s.request("GET", "/healthz").json()
        self.assertEqual(h["cgroup"], self.dir, h)
        self.assertEqual(h["enforced"]["memory"], "cgroup memory.limit_in_bytes", h)
        [w] = s.worker_pids()
        self.assertEqual(os.listdir(self.dir).count("run-%d" % w), 1)
        r = s.post_execute({"main.py": script('''
            hog = []
            while True:
                hog.append(b"\\xa5" * (8 << 20))
            ''')}, query="memory=48", timeout=30)
        self.assertRan(r, "memory", None)
        self.assertIn(b"pyexec: memory limit of 48 MiB reached", r.stderr)

    def test_a_v1_cgroup_not_owned_is_refused(self):
        out, _ = self.start_fails(["-o", "cgroup=" + self.dir])
        self.assertIn("cgroup: %s is not pyexec's" % self.dir, out)
        self.assertIn("chown", out)


class CgroupStart(harness.E2ETestCase):

    def test_a_cgroup_that_does_not_hold_pyexec_is_refused(self):
        mount = cgroup_mount()
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
