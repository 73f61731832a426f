"""End-to-end: faults around a request, through a real nginx.

What the other suites already cover is not repeated here:
  a worker killed with SIGKILL mid-run        test_process.test_killed_worker_is_replaced_and_cleaned_up
  SIGTERM: the request in hand is answered     test_process.test_sigterm_finishes_the_request_in_hand,
                                               test_process.test_sigterm_stops_master_and_workers
  the client leaves during a long run          test_process.test_client_abort_stops_the_run
  an upload that does not fit work_root: 507   test_errors.DiskFull.test_507_when_the_upload_does_not_fit
  a package index that stalls: 424, pip killed test_deps.PipTimeout.test_stalled_index_is_424_and_pip_killed
  the interpreter has no pip: 503              (README; cache.c) -- not tested end to end

This suite adds: the master killed with SIGKILL (idle and mid-run), the
client leaving during its upload (with the shipped site, where nginx holds
the body, and with request buffering off, where pyexec is reading it), a
work_root filled by something else and then freed, an unwritable
deps_cache (at start and at run time), an unreachable package index, a
missing interpreter (at start and removed while serving), a missing
libmagic database, and slow clients (a trickled body, a slowloris) that
must not starve the workers.

"""

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import pyindex  # noqa: E402
from harness import script  # noqa: E402

HELLO = script('print("hello")\n')
PROMPT = 3.0      # seconds within which a plain request must answer on an idle worker

needs_root = harness.unittest.skipUnless(harness.IS_ROOT, "needs root (mount, chmod of a server's dir)")


def run_pids(server):
    """Pids of the server's runs still alive."""
    return sorted(pid for pid, _, _ in server.run_processes())


def alive(pids):
    """Those of pids that still exist (zombies count as gone)."""
    return [p for p in pids if os.path.exists("/proc/%d" % p)
            and not (harness.proc_status(p, "State") or "").startswith("Z")]


def describe(pids):
    table = harness.proc_table()
    return ["%d %s" % (p, table.get(p, {}).get("cmdline")) for p in pids]


def metric(server, name):
    r = server.request("GET", "/metrics", timeout=5)
    m = re.search(r"^%s (\d+)" % re.escape(name), r.body.decode(), re.M)
    return int(m.group(1)) if m else None


class StreamingServer(harness.Server):
    """The shipped site with fastcgi_request_buffering off: nginx passes
    the body on as it arrives, so pyexec reads it from a live client (as
    behind a web server that streams request bodies)."""

    def _nginx_conf(self):
        text = super()._nginx_conf()
        new = text.replace("fastcgi_request_buffering on;", "fastcgi_request_buffering off;")
        if new == text:
            raise harness.ServerError("no fastcgi_request_buffering line to turn off")
        return new


def in_thread(fn):
    """Runs fn in a thread; returns (thread, box) where box["r"] is its
    result or exception."""
    box = {}

    def body():
        try:
            box["r"] = fn()
        except Exception as e:  # noqa: BLE001
            box["r"] = e
    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, box


class FaultCase(harness.E2ETestCase):

    def hello(self, s, within=None):
        r = s.post_execute({"main.py": HELLO}, timeout=30)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")
        if within is not None:
            self.assertLess(r.elapsed, within, "a plain request took %.2f s" % r.elapsed)
        return r

    def kill_after(self, pids):
        """Cleanup: SIGKILL those of pids (processes this test's server
        started) still alive, so a failed test leaves nothing behind."""
        def kill():
            for p in alive(pids):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        self.addCleanup(kill)


# ================================================================ (b) master SIGKILL

class MasterKilled(FaultCase):

    def test_master_sigkill_idle_workers_exit(self):
        s = self.private_server(workers=3)
        self.hello(s)
        workers = harness.wait_for(lambda: len(s.worker_pids()) == 3 and s.worker_pids(), 3)
        self.assertTrue(workers, "expected 3 workers: %r" % s.worker_pids())
        self.kill_after(workers)
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait(5)
        left = harness.wait_for(lambda: not alive(workers), 3) or alive(workers)
        self.assertTrue(left is True, "workers outlived the master by 3 s: %r" % describe(alive(workers)))
        self.assertEqual(s.work_root_entries(), [])

    # The workers' parent-death signal stops the run in hand: nobody would
    # supervise or clean up after it.
    def test_master_sigkill_mid_run_leaves_nothing(self):
        s = self.private_server(workers=2)
        self.hello(s)
        t, box = in_thread(lambda: s.post_execute({"main.py": script('''
            import subprocess, sys, time
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "%s"])
            print("started", flush=True)
            time.sleep(30)
            ''' % harness.MARKER)}, timeout=60))
        self.assertTrue(harness.wait_for(lambda: [i for i in harness.proc_table().values()
                                                  if harness.MARKER in i["cmdline"]], 5),
                        "the run never started")
        time.sleep(0.3)
        workers = s.worker_pids()
        run = run_pids(s)
        everything = workers + run
        self.kill_after(everything)
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait(5)
        gone = harness.wait_for(lambda: not alive(everything), 3)
        left = describe(alive(everything))
        # nginx's connection is closed with the worker: release the client
        s.nginx.send_signal(signal.SIGTERM)
        t.join(15)
        self.assertTrue(gone, "alive 3 s after the master was killed: %r"
                        % left)
        self.assertTrue(harness.wait_for(lambda: s.work_root_entries() == [], 3),
                        "left in work_root: %r" % s.work_root_entries())


# ================================================================ (d) client leaves during the upload

def send_partial_upload(server, total, sent, hold=0.0):
    """Opens a connection to nginx, sends a POST /execute announcing total
    body bytes, sends the first `sent` of them, waits `hold` seconds, then
    closes the connection without reading a reply."""
    body, ctype = harness.build_multipart([
        ("files", "main.py", HELLO, None),
        ("files", "big.bin", b"\xab" * total, "application/octet-stream")])
    head = ("POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
            "Content-Length: %d\r\n\r\n" % (ctype, len(body))).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(head + body[:sent])
        time.sleep(hold)
    finally:
        sock.close()


class ClientLeavesDuringUpload(FaultCase):

    def test_disconnect_during_upload_nginx_buffers(self):
        """The shipped site: nginx reads the whole body before pyexec sees
        the request, so a client that leaves half way never reaches a
        worker: nothing is left and the one worker serves at once."""
        s = self.private_server(workers=1)
        [w] = harness.wait_for(lambda: len(s.worker_pids()) == 1 and s.worker_pids(), 3)
        send_partial_upload(s, 4 << 20, 2 << 20, hold=0.5)
        self.assertEqual(s.check_clean(), [])
        self.hello(s, within=PROMPT)
        self.assertEqual(s.worker_pids(), [w])
        self.assertNotIn("status=5", s.log_since_mark())

    def test_disconnect_during_upload_streamed_to_pyexec(self):
        """Request buffering off: pyexec is reading the body when the client
        leaves. The worker gives the request up (nothing left in work_root,
        no run) and is free for the next one, not waiting on a dead
        connection."""
        s = StreamingServer(name="streaming", workers=2)
        self.use(s)
        self.addCleanup(lambda: (s.stop(), s.cleanup_dir()))
        workers = harness.wait_for(lambda: len(s.worker_pids()) == 2 and s.worker_pids(), 3)
        self.assertTrue(workers)
        busy = {}

        def watch():
            # while the half upload is held open, one worker reads it (the
            # metrics request itself keeps the other busy)
            busy["during"] = harness.wait_for(lambda: metric(s, "pyexec_workers_busy") == 2, 3)
        t = threading.Thread(target=watch)
        t.start()
        send_partial_upload(s, 8 << 20, 3 << 20, hold=1.5)
        t.join(10)
        self.assertTrue(busy.get("during"), "no worker was reading the upload:\n"
                        + s.log_since_mark())
        self.assertTrue(harness.wait_for(lambda: metric(s, "pyexec_workers_busy") == 1, PROMPT),
                        "a worker still busy after the client left:\n" + s.log_since_mark())
        self.assertEqual(s.check_clean(), [])
        self.hello(s, within=PROMPT)
        self.assertEqual(s.worker_pids(), workers, "a worker died:\n" + s.log_since_mark())
        # (a worker's next spare sandbox, just forked, carries the worker's
        # title for a moment: it is told from a run once it has its own)
        harness.wait_for(lambda: not run_pids(s), 1)
        self.assertEqual(describe(run_pids(s)), [])


# ================================================================ (e) work_root full, then space returns

@needs_root
class WorkRootFull(FaultCase):
    """work_root on a 1 MiB tmpfs that something else fills: with the
    rlimits layer, whose uploads are stored there, a request is a 507 that
    says so, leaves nothing, and once the space is back the next request
    runs. The namespace layer writes uploads into the run's own disk
    (max_disk): a full work_root does not stop its requests."""

    def full_server(self, sandbox):
        """A server whose work_root is full, and the filler's path."""
        mounts = []

        def mount_small(server):
            # the tmpfs holds work_root and, beside it, the filler
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777",
                                "pyexec-e2e-full", server.outer], stderr=subprocess.PIPE)
            if r.returncode != 0:
                raise harness.ServerError("mount tmpfs: " + r.stderr.decode(errors="replace"))
            mounts.append(server.outer)

        def unmount():
            for m in mounts:
                subprocess.run(["umount", "-l", m])
        self.addCleanup(unmount)
        try:
            s = self.private_server(name="full-" + sandbox, workers=1, sandbox=sandbox,
                                    before_start=mount_small)
        except harness.ServerError as e:
            self.skipTest("cannot mount a tmpfs here: %s" % e)
        self.hello(s)
        filler = os.path.join(s.outer, "filler")
        with open(filler, "wb") as f:
            try:
                for _ in range(64):             # 64 x 64 KiB > 1 MiB: bounded
                    f.write(b"\0" * (64 << 10))
                    f.flush()
            except OSError:
                pass
        self.addCleanup(lambda: os.path.exists(filler) and os.unlink(filler))
        st = os.statvfs(s.outer)
        self.assertLess(st.f_bavail * st.f_frsize, 64 << 10, "the tmpfs is not full")
        return s, filler

    def test_full_disk_507_then_space_returns(self):
        s, filler = self.full_server("rlimits")
        r = s.post_execute({"main.py": HELLO, "data.txt": b"x" * (32 << 10)}, timeout=30)
        doc = self.assertError(r, 507)
        self.assertEqual(doc["error"], "disk_full", r.describe())
        self.assertIn("space", doc["detail"].lower())
        self.assertEqual(s.check_clean(), [])
        os.unlink(filler)
        r = s.post_execute({"main.py": HELLO, "data.txt": b"x" * (32 << 10)}, timeout=30)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")

    def test_namespace_uploads_do_not_need_work_root(self):
        s, _ = self.full_server("namespaces")
        if s.request("GET", "/healthz").json()["sandbox"] != "namespaces":
            self.skipTest("no namespace sandbox here")
        r = s.post_execute({"main.py": HELLO, "data.txt": b"x" * (32 << 10)}, timeout=30)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")
        self.assertEqual(s.check_clean(), [])


# ================================================================ (f) the environment is broken

class DepsCacheUnwritable(FaultCase):

    def setUp(self):
        super().setUp()
        self.ix = pyindex.PackageIndex().start()
        self.addCleanup(self.ix.stop)
        self.ix.add_module("probe-fault", "1.0")

    def deps_request(self, s, timeout=60):
        return s.post_execute({"main.py": script("import probe_fault\nprint(probe_fault.VERSION)\n")},
                              query="dependencies=probe-fault", timeout=timeout)

    @needs_root
    def test_read_only_deps_cache_at_start(self):
        """deps_cache on a read-only file system: start-up stops naming it."""
        d = harness.tempfile.mkdtemp(prefix="pyexec-e2e-rocache-")
        self.addCleanup(lambda: harness.shutil.rmtree(d, ignore_errors=True))
        cache = os.path.join(d, "deps")
        os.mkdir(cache)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "pyexec-e2e-ro", cache],
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here")
        self.addCleanup(lambda: subprocess.run(["umount", "-l", cache]))
        # start_fails sets its own deps_cache; a later -o wins
        out, _ = self.start_fails(["-o", "deps_cache=" + cache,
                                   "-o", "pip_index_url=" + self.ix.simple_url])
        self.assertIn("deps_cache", out)
        self.assertIn(cache, out)
        self.assertIn("Read-only file system", out)

    @needs_root
    def test_deps_cache_unwritable_while_serving(self):
        """deps_cache loses its write permission under a running server: a
        request with dependencies is a prompt JSON error and the log says
        which directory and why; requests without dependencies still run;
        once the permission is back the install works."""
        s = self.private_server(name="rocache", workers=2, options=[
            "pip_index_url=" + self.ix.simple_url, "pip_only_binary=yes"])
        cache = os.path.join(s.tmp, "deps")
        mode = os.stat(cache).st_mode & 0o7777
        os.chmod(cache, 0o500)
        self.addCleanup(lambda: os.chmod(cache, mode))
        r = self.deps_request(s, timeout=30)
        doc = self.assertError(r, r.status)
        self.assertGreaterEqual(r.status, 500, r.describe())
        self.assertLess(r.elapsed, 10)
        self.assertTrue(doc["detail"], r.describe())
        rid = r.headers.get("X-Request-Id")
        log = s.log_since_mark()
        self.assertIn("id=%s " % rid, log)
        self.assertIn(cache, log, "the log does not name the cache directory:\n" + log)
        self.assertIn("Permission denied", log)
        staging = os.path.join(cache, ".staging")
        self.assertTrue(harness.wait_for(lambda: not os.listdir(staging), 3),
                        "install left in .staging: %r" % os.listdir(staging))
        self.hello(s)
        os.chmod(cache, mode)
        r = self.deps_request(s)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"1.0\n")
        self.assertEqual(r.headers.get("X-Dependencies"), "installed")

    def test_index_unreachable_is_424(self):
        """Nothing listens where the index should be: a 424 that carries
        pip's account, within pip_timeout, no pip left, no entry made."""
        port = harness.free_port()      # free a moment ago: connections refused
        s = self.private_server(name="noindex", workers=2, options=[
            "pip_index_url=http://127.0.0.1:%d/simple/" % port, "pip_only_binary=yes",
            "pip_timeout=30"])
        t0 = time.monotonic()
        r = self.deps_request(s, timeout=60)
        elapsed = time.monotonic() - t0
        self.assertStatus(r, 424)
        self.assertEqual(r.headers.get("X-Execution-Status"), "dependency_error", r.describe())
        err = r.stderr.decode("utf-8", "replace")
        self.assertIn("probe-fault", err)
        self.assertRegex(err, r"(?i)refused|No matching distribution|Could not find a version",
                         r.describe())
        self.assertLess(elapsed, 30, "answered after %.1f s" % elapsed)
        cache = os.path.join(s.tmp, "deps")
        self.assertEqual([e for e in os.listdir(cache) if re.match(r"^[0-9a-f]{64}$", e)], [])
        staging = os.path.join(cache, ".staging")
        self.assertEqual(os.listdir(staging) if os.path.isdir(staging) else [], [])
        self.hello(s)


class InterpreterMissing(FaultCase):

    def test_python_nonexistent_refuses_to_start(self):
        out, _ = self.start_fails(["-o", "python=/nonexistent"])
        self.assertIn("/nonexistent", out)
        self.assertIn("not executable", out)
        self.assertIn("No such file or directory", out)

    def test_python_removed_while_serving(self):
        """The interpreter disappears under a running server (a package
        upgrade gone wrong): each request is a prompt, clear error naming
        it, nothing is left, and once it is back requests run."""
        holder = {}

        def link_python(server):
            p = os.path.join(server.tmp, "bin", "python3")
            os.makedirs(os.path.dirname(p))
            os.chmod(os.path.dirname(p), 0o755)
            os.symlink(os.path.realpath("/usr/bin/python3"), p)
            holder["p"] = p
            server.options.append("python=" + p)
        s = self.private_server(name="nopython", workers=1, before_start=link_python)
        self.hello(s)
        p = holder["p"]
        target = os.readlink(p)
        os.unlink(p)
        self.addCleanup(lambda: os.path.lexists(p) or os.symlink(target, p))
        r = s.post_execute({"main.py": HELLO}, timeout=30)
        self.assertLess(r.elapsed, 10)
        text = r.body.decode("utf-8", "replace")
        if r.status == 200:
            # answered as a run that failed: it must say why
            self.assertNotEqual(r.headers.get("X-Execution-Status"), "ok", r.describe())
            text = r.stderr.decode("utf-8", "replace")
        else:
            self.assertError(r, r.status)
            self.assertGreaterEqual(r.status, 500, r.describe())
            text += s.log_since_mark()
        self.assertIn(p, text, "neither the reply nor the log names the interpreter:\n"
                      + r.describe() + "\n" + s.log_since_mark())
        self.assertEqual(s.check_clean(), [])
        os.symlink(target, p)
        self.hello(s)


class NotWaitingServer(harness.Server):
    """A server whose start does not wait for /healthz (for a fault where
    pyexec may never answer): it returns once nginx listens."""

    def _wait_ready(self):
        ok = harness.wait_for(lambda: self.nginx.poll() is not None or _connects(self.port), 5)
        if not ok or self.nginx.poll() is not None:
            self.stop()
            raise harness.ServerError("nginx did not start:\n" + self.tail(self.nginx_log))


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class MagicDatabaseMissing(FaultCase):
    """pyexec loads libmagic's default database (mime_open(NULL) in
    server_worker_main, fcgi/server.c); libmagic reads the MAGIC variable
    for its location, so MAGIC=/nonexistent/... makes the database missing
    without touching the system's."""

    # The master loads the database once, before forking: a missing one
    # stops start-up with a sentence naming it.
    def test_magic_database_missing_is_a_clear_error(self):
        missing = "/nonexistent/pyexec-e2e/magic.mgc"
        s = NotWaitingServer(name="nomagic", workers=1, env={"MAGIC": missing})
        self.addCleanup(lambda: (s.stop(), s.cleanup_dir()))
        s.start()
        exited = harness.wait_for(lambda: s.proc.poll() is not None, 5)
        log = (harness._read(s.pyexec_log) or b"").decode("utf-8", "replace")
        self.assertTrue(exited, "still running without its libmagic database:\n" + log)
        self.assertNotEqual(s.proc.returncode, 0, log)
        self.assertIn("cannot load the libmagic database %s (from $MAGIC)" % missing, log)


# ================================================================ (g) slow clients

class SlowClients(FaultCase):
    """The shipped site (nginx buffers the body): clients that take their
    time hold nginx connections, never pyexec workers."""

    def test_trickled_body_and_slowloris_do_not_starve_workers(self):
        s = self.private_server(name="slow", workers=1)
        self.hello(s)
        [w] = s.worker_pids()
        stop = threading.Event()

        # a body trickled over ~4 s: 40 pieces, one every 0.1 s
        payload = os.urandom(40 << 10)
        body, ctype = harness.build_multipart([
            ("files", "main.py", script('''
                import hashlib
                print(hashlib.sha256(open("slow.bin", "rb").read()).hexdigest())
                '''), None),
            ("files", "slow.bin", payload, None)])

        def trickle():
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
            try:
                sock.sendall(("POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
                              "Content-Length: %d\r\nConnection: close\r\n\r\n"
                              % (ctype, len(body))).encode())
                step = (len(body) + 39) // 40
                for i in range(0, len(body), step):
                    if stop.is_set():
                        return None
                    sock.sendall(body[i:i + step])
                    time.sleep(0.1)
                data = b""
                while len(data) < (4 << 20):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return data
            finally:
                sock.close()

        # a slowloris: 100 connections, each sending a header line every 0.5 s
        conns = []

        def slowloris():
            for _ in range(100):
                c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
                c.sendall(b"POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                conns.append(c)
            for i in range(10):
                if stop.wait(0.5):
                    break
                for c in conns:
                    try:
                        c.sendall(b"X-Slow-%d: %d\r\n" % (i, i))
                    except OSError:
                        pass
        try:
            tt, tbox = in_thread(trickle)
            ts, sbox = in_thread(slowloris)
            time.sleep(0.5)
            # meanwhile, plain requests on the one worker answer at once
            times = []
            for _ in range(5):
                r = self.hello(s, within=PROMPT)
                times.append(r.elapsed)
                time.sleep(0.3)
            tt.join(20)
            self.assertFalse(tt.is_alive(), "the trickled request got no answer")
        finally:
            stop.set()
            ts.join(10)
            for c in conns:
                c.close()
        raw = tbox.get("r")
        self.assertIsInstance(raw, bytes, repr(raw))
        head, _, rest = raw.partition(b"\r\n\r\n")
        self.assertRegex(head.split(b"\r\n")[0], rb"^HTTP/1\.1 200", head)
        self.assertIn(hashlib.sha256(payload).hexdigest().encode(), rest)
        self.assertLess(max(times), PROMPT, times)
        self.assertEqual(s.worker_pids(), [w])
        self.hello(s, within=PROMPT)


if __name__ == "__main__":
    harness.main()
