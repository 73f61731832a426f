"""End-to-end: systemd socket activation (sd_listen_fds(3), without
libsystemd). The test plays systemd: it binds and listens on a unix socket,
and starts pyexec-fcgi with that socket on fd 3, LISTEN_FDS=1 and
LISTEN_PID set to pyexec's own pid (harness.socket_activation_argv), no -l
and no listen key; nginx talks to the socket."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import script  # noqa: E402

HELLO = script('print("hello")\n')
ENVIRON = script('''
    import os
    for k in sorted(os.environ):
        print(k)
    ''')
O_CLOEXEC = 0o2000000


def fd_target(pid, fd):
    try:
        return os.readlink("/proc/%d/fd/%d" % (pid, fd))
    except OSError:
        return None


def fd_flags(pid, fd):
    with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
        for line in f:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    return None


class PidOfAnotherProcess(harness.Server):
    """Started on a socket as fd 0 (listen "fd": the web-server way) or with
    -l (listen "unix"), plus LISTEN_FDS=1 and LISTEN_PID of another process
    (the test's), and fd 3 not a socket at all: pyexec must leave fd 3
    alone, or it would refuse to start."""

    def pyexec_argv(self):
        return harness.socket_activation_argv(super().pyexec_argv(), listen_pid=os.getpid(),
                                              redirects="3</dev/null")


class Systemd(harness.E2ETestCase):

    def hello(self, s):
        r = s.post_execute({"main.py": HELLO})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")
        return r

    def test_socket_activation_serves_on_the_passed_socket(self):
        s = self.private_server(listen="systemd", workers=2)
        self.assertNotIn("-l", s.argv)
        self.hello(s)
        self.assertIn("listening (fd 3 from systemd)", s.log_tail(50))
        # The master and every worker hold the very socket the test made,
        # on fd 3, close-on-exec; fd 0 is /dev/null, not a socket.
        want = "socket:[%d]" % s.sock_ino
        workers = harness.wait_for(lambda: len(s.worker_pids()) == 2 and s.worker_pids(), 3)
        self.assertTrue(workers, "expected 2 workers, found %r" % s.worker_pids())
        for pid in [s.proc.pid] + workers:
            self.assertEqual(fd_target(pid, 3), want, "fd 3 of %d" % pid)
            self.assertEqual(fd_target(pid, 0), "/dev/null", "fd 0 of %d" % pid)
        self.assertTrue(fd_flags(s.proc.pid, 3) & O_CLOEXEC, "fd 3 is not close-on-exec")
        # A few requests in parallel: each is answered through that socket.
        replies = [s.post_execute({"main.py": HELLO}) for _ in range(4)]
        for r in replies:
            self.assertRan(r)

    def test_programs_see_no_listen_variables(self):
        s = self.private_server(listen="systemd")
        r = s.post_execute({"main.py": ENVIRON})
        self.assertRan(r)
        names = r.stdout.decode().split()
        self.assertTrue(names, r.describe())
        self.assertEqual([n for n in names if n.startswith("LISTEN_")], [], names)

    def test_reload_and_stop_keep_the_socket(self):
        """SIGHUP: new workers on the same socket. SIGTERM: pyexec stops and
        leaves the socket file, which belongs to systemd."""
        s = self.private_server(listen="systemd", workers=2)
        self.hello(s)
        before = set(s.worker_pids())
        s.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_for(
            lambda: len(s.worker_pids()) == 2 and not before & set(s.worker_pids()), 10),
            "workers not replaced after SIGHUP:\n" + s.log_tail())
        self.hello(s)
        s.proc.send_signal(signal.SIGTERM)
        try:
            rc = s.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.fail("master still running 10 s after SIGTERM:\n" + s.log_tail())
        self.assertEqual(rc, 0, s.log_tail())
        self.assertTrue(os.path.exists(s.sock_path), "pyexec removed systemd's socket file")

    def test_listen_pid_of_another_process_is_ignored(self):
        # no -l: the normal default (fd 0, the web server's socket)
        s = PidOfAnotherProcess(name="otherpid-fd", listen="fd")
        self.use(s)
        self.addCleanup(lambda: (s.stop(), s.cleanup_dir()))
        self.hello(s)
        self.assertIn("listening (fd 0)", s.log_tail(50))
        r = s.post_execute({"main.py": ENVIRON})
        self.assertRan(r)
        self.assertNotIn(b"LISTEN_", r.stdout)
        # an explicit -l is no contradiction then
        s2 = PidOfAnotherProcess(name="otherpid-unix", listen="unix")
        self.use(s2)
        self.addCleanup(lambda: (s2.stop(), s2.cleanup_dir()))
        self.assertIn("-l", s2.argv)
        self.hello(s2)

    # ------------------------------------------------------------ refusals

    def activated_start_fails(self, redirects, listen_fds="1", args=(), conf="", stdin=None,
                              pass_fds=()):
        """pyexec-fcgi socket-activated (LISTEN_PID its own pid) with the
        given fds, expected to refuse to start; returns its output."""
        d = tempfile.mkdtemp(prefix="pyexec-e2e-sd-")
        os.chmod(d, 0o755)
        try:
            c = os.path.join(d, "pyexec.conf")
            with open(c, "w") as f:
                f.write(conf)
            argv = [harness.pyexec_path(), "-c", c,
                    "-o", "work_root=" + os.path.join(d, "work"),
                    "-o", "deps_cache=" + os.path.join(d, "deps")] + list(args)
            argv = harness.socket_activation_argv(argv, listen_fds=listen_fds,
                                                  redirects=redirects)
            p = harness.spawn(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/",
                              pass_fds=pass_fds)
            try:
                out, _ = p.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
                self.fail("pyexec started instead of failing (%s)" % redirects)
            out = out.decode("utf-8", "replace")
            self.assertEqual(p.returncode, 1, out)
            return out
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def listening(self, kind=socket.SOCK_STREAM, listen=True):
        d = tempfile.mkdtemp(prefix="pyexec-e2e-sd-sock-")
        self.addCleanup(shutil.rmtree, d, True)
        s = socket.socket(socket.AF_UNIX, kind)
        self.addCleanup(s.close)
        s.bind(os.path.join(d, "s.sock"))
        if listen:
            s.listen(8)
        return s

    def test_two_sockets_refused(self):
        a, b = self.listening(), self.listening()
        out = self.activated_start_fails("3<&0 4<&%d %d<&- 0</dev/null" % (b.fileno(), b.fileno()),
                                         listen_fds="2", stdin=a.fileno(), pass_fds=(b.fileno(),))
        self.assertIn("systemd passed 2 sockets (LISTEN_FDS=2)", out)
        self.assertIn("exactly one", out)

    def test_fd3_not_a_listening_socket_refused(self):
        with self.subTest("not a socket"):
            out = self.activated_start_fails("3</dev/null")
            self.assertIn("fd 3, passed by systemd (LISTEN_FDS=1), is not a socket", out)
        with self.subTest("not open"):
            out = self.activated_start_fails("3<&-")
            self.assertIn("fd 3, passed by systemd (LISTEN_FDS=1), is not open", out)
        with self.subTest("bound, not listening"):
            s = self.listening(listen=False)
            out = self.activated_start_fails("3<&0 0</dev/null", stdin=s.fileno())
            self.assertIn("fd 3, passed by systemd (LISTEN_FDS=1), is a socket that is not "
                          "listening", out)
        with self.subTest("datagram"):
            s = self.listening(kind=socket.SOCK_DGRAM, listen=False)
            out = self.activated_start_fails("3<&0 0</dev/null", stdin=s.fileno())
            self.assertIn("fd 3, passed by systemd (LISTEN_FDS=1), is not a stream socket", out)

    def test_listen_fds_not_a_number_refused(self):
        s = self.listening()
        out = self.activated_start_fails("3<&0 0</dev/null", listen_fds="one", stdin=s.fileno())
        self.assertIn("LISTEN_FDS='one' (from systemd) is not a number of sockets", out)

    def test_listen_fds_and_explicit_listen_refused(self):
        s = self.listening()
        path = "unix:/tmp/pyexec-e2e-sd-unused-%d.sock" % os.getpid()
        self.addCleanup(lambda: os.path.exists(path[5:]) and os.unlink(path[5:]))
        with self.subTest("-l"):
            out = self.activated_start_fails("3<&0 0</dev/null", stdin=s.fileno(),
                                             args=["-l", path])
            self.assertIn("both a socket from systemd (LISTEN_FDS=1) and listen = '%s' were "
                          "given" % path, out)
        with self.subTest("listen key"):
            out = self.activated_start_fails("3<&0 0</dev/null", stdin=s.fileno(),
                                             conf="listen = %s\n" % path)
            self.assertIn("both a socket from systemd (LISTEN_FDS=1) and listen = '%s' were "
                          "given" % path, out)
        self.assertFalse(os.path.exists(path[5:]), "pyexec made the -l socket anyway")


if __name__ == "__main__":
    harness.main()
