"""End-to-end: the process model (pyexec-fcgi(8), Processes) — start-up, listening modes,
privileges, graceful stop, a crashed worker, a long run of requests."""

import os
import pwd
import signal
import stat
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import script  # noqa: E402

HELLO = script('print("hello")\n')


def python_left(server):
    return server.run_processes()


class Process(harness.E2ETestCase):

    def hello(self, s):
        r = s.post_execute({"main.py": HELLO})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")
        return r

    def test_default_workers_is_one_more_than_the_cpus(self):
        s = self.private_server(workers=None)
        self.hello(s)
        want = os.sysconf("SC_NPROCESSORS_ONLN") + 1
        self.assertEqual(s.request("GET", "/healthz").json()["workers"], want)
        self.assertTrue(harness.wait_for(lambda: len(s.worker_pids()) == want, 3),
                        "expected %d workers, found %r" % (want, s.worker_pids()))

    def test_sigterm_stops_master_and_workers(self):
        s = self.private_server(workers=2)
        self.hello(s)
        workers = harness.wait_for(lambda: len(s.worker_pids()) == 2 and s.worker_pids(), 3)
        self.assertTrue(workers, "expected 2 workers, found %r" % s.worker_pids())
        s.proc.send_signal(signal.SIGTERM)
        try:
            rc = s.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.fail("master still running 5 s after SIGTERM:\n" + s.log_tail())
        self.assertEqual(rc, 0, s.log_tail())
        for w in workers:
            self.assertTrue(harness.wait_pid_gone(w, 3), "worker %d outlived the master" % w)
        self.assertEqual(python_left(s), [])
        self.assertEqual(s.work_root_entries(), [])

    def test_sigterm_finishes_the_request_in_hand(self):
        s = self.private_server(workers=2)
        result = {}

        def slow():
            try:
                result["r"] = s.post_execute({"main.py": script('''
                    import time
                    print("start", flush=True)
                    time.sleep(1.5)
                    print("done")
                    ''')}, timeout=30)
            except Exception as e:  # noqa: BLE001
                result["r"] = e

        t = threading.Thread(target=slow)
        t.start()
        # wait until the script runs
        started = harness.wait_for(lambda: [p for p in python_left(s) if "main.py" in p[1]], 5)
        self.assertTrue(started, "the script never started")
        s.proc.send_signal(signal.SIGTERM)
        t.join(30)
        r = result.get("r")
        self.assertIsInstance(r, harness.Reply, repr(r))
        self.assertRan(r)
        self.assertEqual(r.stdout, b"start\ndone\n")
        try:
            rc = s.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.fail("master still running after the request in hand ended:\n" + s.log_tail())
        self.assertEqual(rc, 0)
        self.assertEqual(python_left(s), [])
        self.assertEqual(s.work_root_entries(), [])

    def test_killed_worker_is_replaced_and_cleaned_up(self):
        s = self.private_server(workers=2)
        self.hello(s)
        result = {}

        def slow():
            try:
                result["r"] = s.post_execute({"main.py": script('''
                    import subprocess, sys, time
                    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "%s"])
                    open("partial.txt", "w").write("x")
                    time.sleep(30)
                    ''' % harness.MARKER)}, timeout=60)
            except Exception as e:  # noqa: BLE001
                result["r"] = e

        t = threading.Thread(target=slow)
        t.start()
        running = harness.wait_for(lambda: [p for p in python_left(s) if harness.MARKER in p[1]], 5)
        self.assertTrue(running, "the script never started")
        workers = set(s.worker_pids())
        table = harness.proc_table()
        # the worker serving the request is the one the run descends from
        victim = None
        for w in workers:
            if running[0][0] in harness.descendants(table, w):
                victim = w
        self.assertIsNotNone(victim, "no worker is an ancestor of the run")
        os.kill(victim, signal.SIGKILL)
        t.join(20)
        r = result.get("r")
        self.assertIsInstance(r, harness.Reply, repr(r))
        self.assertEqual(r.status, 502, r.describe())
        # the master replaces the worker, and the run's processes and
        # directory go
        self.assertTrue(harness.wait_for(lambda: len(s.worker_pids()) == 2
                                         and victim not in s.worker_pids(), 5),
                        "worker not replaced: %r\n%s" % (s.worker_pids(), s.log_tail()))
        self.assertTrue(harness.wait_for(lambda: not python_left(s), 5),
                        "processes of the killed worker's run: %r" % python_left(s))
        self.assertTrue(harness.wait_for(lambda: not s.work_root_entries(), 5),
                        "work_root after a crashed worker: %r" % s.work_root_entries())
        self.hello(s)

    def spares(self, s, want):
        """The sandboxes s's workers made for their next request, once
        there are want of them (one per worker at most)."""
        def found():
            got = harness.spare_pids(harness.proc_table(), s.worker_pids())
            return got if len(got) == want else None
        got = harness.wait_for(found, 5)
        self.assertTrue(got, "expected %d waiting sandboxes, found %r"
                        % (want, harness.spare_pids(harness.proc_table(), s.worker_pids())))
        return got

    def test_idle_workers_hold_their_next_runs_sandbox(self):
        """With the namespace layer each idle worker sets up the next run's
        sandbox while it waits; a run takes it, and it goes with its worker."""
        s = self.private_server(workers=2)
        if s.request("GET", "/healthz").json()["sandbox"] != "namespaces":
            self.skipTest("the namespace layer is not available here, and the rlimits "
                          "layer sets up nothing ahead of a run")
        before = self.spares(s, 2)
        table = harness.proc_table()
        self.assertEqual(sorted(table[p]["ppid"] for p in before), sorted(s.worker_pids()))
        for p in before:
            self.assertEqual(table[p]["uid"], table[table[p]["ppid"]]["uid"])
        self.hello(s)
        after = self.spares(s, 2)
        self.assertEqual(len(set(before) - set(after)), 1,
                         "one sandbox taken by the run: before %r, after %r" % (before, after))
        for p in set(before) - set(after):
            self.assertTrue(harness.wait_pid_gone(p, 3), "the run's init %d lives on" % p)
        # A worker that dies takes its sandbox with it.
        victim = s.worker_pids()[0]
        [its] = [p for p in after if harness.proc_table()[p]["ppid"] == victim]
        os.kill(victim, signal.SIGKILL)
        self.assertTrue(harness.wait_pid_gone(its, 3), "sandbox %d outlived its worker" % its)
        self.assertTrue(harness.wait_for(lambda: not s.work_root_entries(), 5),
                        "work_root after a crashed worker: %r" % s.work_root_entries())
        last = self.spares(s, 2)
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.proc.wait(10), 0, s.log_tail())
        for p in last:
            self.assertTrue(harness.wait_pid_gone(p, 3), "sandbox %d outlived the server" % p)
        self.assertEqual(s.work_root_entries(), [])

    def test_client_abort_stops_the_run(self):
        """A client that gives up (nginx: fastcgi_ignore_client_abort off
        closes the FastCGI connection) does not keep a worker busy until the
        timeout: the run is stopped and its directory removed."""
        s = self.private_server(workers=1)
        try:
            s.post_execute({"main.py": script('''
                import time
                print("x", flush=True)
                time.sleep(8)
                ''')}, timeout=1)
            self.fail("the request did not time out on the client side")
        except AssertionError as e:
            self.assertIn("curl failed (28)", str(e))
        t0 = time.monotonic()
        clean = harness.wait_for(lambda: not python_left(s) and not s.work_root_entries(), 8)
        self.assertTrue(clean)
        self.assertLess(time.monotonic() - t0, 2.5,
                        "the run went on %.1f s after the client left" % (time.monotonic() - t0))
        self.hello(s)

    def test_100_sequential_requests(self):
        s = self.private_server(workers=1)
        files = {"main.py": script('''
            import sys
            data = open("in.txt").read()
            open("out.txt", "w").write(data[::-1])
            print(len(data))
            '''), "in.txt": b"abcdef" * 100}
        for _ in range(5):
            s.post_execute(files)
        [w] = s.worker_pids()
        def idle_fds():
            """The worker's fd count once it has made its next sandbox (it
            holds two more while it sets one up, after the reply)."""
            counts = []
            harness.wait_for(lambda: counts.append(len(os.listdir("/proc/%d/fd" % w))) or
                             (len(counts) >= 5 and len(set(counts[-5:])) == 1), 2, 0.02)
            return counts[-1]
        fds0 = idle_fds()
        rss0 = harness.proc_status_kib(w, "VmRSS")
        first = None
        for i in range(100):
            r = s.post_execute(files)
            self.assertRan(r)
            got = (r.stdout, r.stderr, {k: (v.content_type, v.data) for k, v in r.files.items()})
            if first is None:
                first = got
            self.assertEqual(got, first, "request %d differs" % i)
        self.assertEqual(first[0], b"600\n")
        self.assertEqual(s.worker_pids(), [w], "the worker was replaced")
        fds1 = idle_fds()
        rss1 = harness.proc_status_kib(w, "VmRSS")
        self.assertEqual(fds1, fds0, "worker fds went from %d to %d" % (fds0, fds1))
        if harness.sanitized_build():
            self.skipTest("AddressSanitizer build: RSS holds ASan's quarantine, and "
                          "LeakSanitizer checks for leaks instead (fds and answers checked)")
        self.assertLess(rss1 - rss0, 2048, "worker RSS grew from %d to %d KiB" % (rss0, rss1))

    def test_listen_tcp(self):
        s = self.private_server(listen="tcp")
        self.hello(s)

    def test_listen_on_inherited_fd0(self):
        """Started the way a web server spawns a FastCGI program: the
        listening socket is fd 0 and there is no -l."""
        s = self.private_server(listen="fd")
        self.hello(s)

    def test_config_file_and_overrides(self):
        s = self.private_server(timeout=None,
                                conf_text="# test\ntimeout = 1\nmax_output = 1K\n",
                                options=["max_output=2K"])
        r = s.post_execute({"main.py": script('''
            import time
            print("x" * 5000)
            time.sleep(10)
            ''')})
        self.assertEqual(r.headers.get("X-Execution-Status"), "timeout", r.describe())
        self.assertLess(r.elapsed, 3)
        self.assertEqual(r.stdout, b"x" * 2048)

    def test_work_root_swept_at_start(self):
        def litter(srv):
            d = os.path.join(srv.work_root, "stale-request")
            os.makedirs(os.path.join(d, "locked"))
            with open(os.path.join(d, "locked", "f"), "w") as f:
                f.write("x")
            os.symlink("/etc", os.path.join(d, "link"))
            os.mkfifo(os.path.join(d, "fifo"))
            if harness.IS_ROOT:
                # as a crashed worker leaves them: owned by the server's user
                nobody = pwd.getpwnam("nobody")
                for root, dirs, files in os.walk(srv.work_root):
                    for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                        os.lchown(n, nobody.pw_uid, nobody.pw_gid)
            os.chmod(os.path.join(d, "locked"), 0)
        s = self.private_server(before_start=litter)
        self.assertTrue(harness.wait_for(lambda: not s.work_root_entries(), 3),
                        "stale entries not swept: %r" % s.work_root_entries())
        self.assertTrue(os.path.isdir("/etc"))
        self.hello(s)

    @harness.unittest.skipUnless(harness.IS_ROOT, "privileges are dropped only when started as root")
    def test_drops_privileges(self):
        s = self.private_server(workers=2)
        self.hello(s)
        nobody = pwd.getpwnam("nobody")
        for pid in [s.proc.pid] + s.worker_pids():
            uids = harness.proc_status(pid, "Uid").split()
            gids = harness.proc_status(pid, "Gid").split()
            self.assertEqual(set(map(int, uids)), {nobody.pw_uid}, "pid %d uids %r" % (pid, uids))
            self.assertNotIn(0, set(map(int, gids)), "pid %d gids %r" % (pid, gids))
            self.assertEqual(harness.proc_status(pid, "CapEff"), "0000000000000000")
        sock = os.stat(os.path.join(s.tmp, "pyexec.sock"))
        self.assertEqual(sock.st_uid, nobody.pw_uid)
        self.assertEqual(stat.S_IMODE(sock.st_mode), 0o660)
        wr = os.stat(s.work_root)
        self.assertEqual(wr.st_uid, nobody.pw_uid)
        self.assertEqual(stat.S_IMODE(wr.st_mode), 0o700)


class StartupErrors(harness.E2ETestCase):
    """Bad configuration stops start-up with a message that names it."""


    @harness.unittest.skipUnless(harness.IS_ROOT, "the user is resolved only when started as root")
    def test_workers_never_run_as_root(self):
        for user in ("root", "0"):
            out, _ = self.start_fails(["-o", "user=" + user])
            self.assertIn("user '%s' is root; pyexec runs programs as an unprivileged user"
                          % user, out)
        out, _ = self.start_fails(["-o", "group=0"])
        self.assertIn("group '0' is root's group", out)

    @harness.unittest.skipUnless(harness.IS_ROOT, "privileges are dropped only when started as root")
    def test_numeric_user_and_group(self):
        s = self.private_server(workers=1, options=["user=65534", "group=65534"])
        r = s.post_execute({"main.py": HELLO})
        self.assertRan(r)
        for pid in [s.proc.pid] + s.worker_pids():
            self.assertEqual(set(map(int, harness.proc_status(pid, "Uid").split())), {65534})
            self.assertEqual(set(map(int, harness.proc_status(pid, "Gid").split())), {65534})

    def test_bad_option_value(self):
        out, _ = self.start_fails(["-o", "timeout=soon"])
        self.assertIn("timeout", out)

    def test_unknown_option_key(self):
        out, _ = self.start_fails(["-o", "colour=blue"])
        self.assertIn("colour", out)

    def test_bad_config_line_names_file_line_key(self):
        out, c = self.start_fails([], conf="workers = 2\n# fine\nmax_upload = lots\n")
        self.assertIn(c, out)
        self.assertIn(":3", out)
        self.assertIn("max_upload", out)

    def test_timeout_over_timeout_max(self):
        out, _ = self.start_fails(["-o", "timeout=100", "-o", "timeout_max=50"])
        self.assertIn("timeout", out)


if __name__ == "__main__":
    harness.main()
