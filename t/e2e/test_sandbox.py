"""End-to-end: the namespace sandbox (README, "Layer 1: namespaces") against
hostile programs, through a real nginx.

One script per case. Each asserts what a user (or the operator) must see,
and after it the harness checks that no process of the run is alive and
that work_root is empty. The servers run with sandbox = namespaces, so a
sandbox that cannot be set up fails loudly here instead of falling back.

Scripts report what happened as one JSON line on stdout (errno names, sizes,
listings); the tests assert on that report, so a failure shows exactly what
the program could do. Raw syscalls use x86-64 numbers: on another
architecture those tests skip.
"""

import json
import os
import platform
import pwd
import re
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import pyindex  # noqa: E402
from harness import script  # noqa: E402

X86_64 = platform.machine() == "x86_64"
MiB = 1 << 20

# What a program must never read: a variable in pyexec's environment, and
# an option value on its command line (operators put index credentials
# there).
SECRET_ENV = "env-s3cr3t-" + os.urandom(8).hex()
SECRET_ARG = "arg-s3cr3t-" + os.urandom(8).hex()
SECRET_VAR = "PYEXEC_SANDBOX_TEST_SECRET"

MAX_FILE = 8 * MiB
MAX_DISK = 16 * MiB
MAX_PROCS = 64          # the default max_processes
MAX_FDS = 256           # the default max_open_files
MAX_OUTPUT = MiB        # the default max_output
SENSITIVE_ETC = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh/ssh_host_rsa_key",
                 "/etc/machine-id", "/etc/crontab", "/etc/pam.d/su")

# The hostile server: small disk and file size so that filling them is
# fast, a CPU limit of 1 s (the wall limit stays 10 s, so the two differ).
HOSTILE = dict(
    workers=3, sandbox="namespaces", env={SECRET_VAR: SECRET_ENV},
    options=["max_file_size=8M", "max_disk=16M", "cpu_time=1",
             "pip_index_url=http://pyexec:%s@127.0.0.1:9/simple/" % SECRET_ARG])
# Default limits: what `import numpy` must live with.
DEFAULTS = dict(workers=2, sandbox="namespaces")

# Common helpers of the scripts (x86-64 syscall numbers).
PRELUDE = r'''
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def ename(e):
    return errno.errorcode.get(e, str(e))

def sc(nr, *args):
    """A raw syscall: None when it worked, else its errno name."""
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return None if r != -1 else ename(ctypes.get_errno())

def attempt(fn):
    """None when fn() worked, else the errno name of what it raised."""
    try:
        fn()
    except OSError as e:
        return ename(e.errno) if e.errno else "%s: %s" % (type(e).__name__, e)
    return None

def put(path, data=b"x", mode="wb"):
    """Writes unbuffered, so that a refused write raises here."""
    with open(path, mode, buffering=0) as f:
        f.write(data)

def report(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)
'''


def needs_x86_64(fn):
    return harness.unittest.skipUnless(X86_64, "raw syscall numbers are x86-64's")(fn)


def host_can_int80():
    """Whether this kernel runs i386 syscalls for a 64-bit process at all
    (ia32 emulation); without it, int 0x80 is a SIGSEGV anywhere."""
    code = textwrap.dedent('''
        import ctypes, mmap
        m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        m.write(b"\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3")
        f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
        print(f())
        ''')
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, timeout=10)
    return r.returncode == 0 and r.stdout.strip().isdigit()


def run_pids(server):
    """Processes of the server's runs now: the master's descendants other
    than its workers and the sandboxes they made for their next request
    (the sandbox's init and all in it)."""
    table = harness.proc_table()
    workers = server.worker_pids()
    keep = set(workers) | set(harness.kept_pids(table, workers))
    return [p for p in harness.descendants(table, server.proc.pid) if p not in keep]


class SandboxCase(harness.E2ETestCase):
    """Tests against one shared server; helpers to run a script and read
    its report."""

    SERVER = ("hostile", HOSTILE)
    # resident KiB a run's interpreter may have besides its memory limit:
    # pages of its own library that the page cache holds for every
    # process, charged to whichever cgroup read them first
    RSS_SHARED_KIB = 0

    def setUp(self):
        super().setUp()
        name, kw = self.SERVER
        self.s = self.server(name, **kw)

    def run_script(self, body, files=None, prelude=True, preamble="", **kw):
        src = (PRELUDE if prelude else "") + preamble + textwrap.dedent(body)
        all_files = {"main.py": script(src)}
        all_files.update(files or {})
        return self.s.post_execute(all_files, **kw)

    def report(self, r, status="ok"):
        """The last JSON line the script printed, once the run's outcome is
        the expected one."""
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("X-Execution-Status"), status, r.describe())
        lines = [l for l in r.stdout.decode("utf-8", "replace").splitlines()
                 if l.startswith("{")]
        if not lines:
            self.fail("the script printed no report:\n" + r.describe(4000))
        if os.environ.get("PYEXEC_E2E_VERBOSE"):
            print("# report: " + lines[-1], flush=True)
        return json.loads(lines[-1])

    def assertNothingLeftNow(self, grace=0.5):
        """The reply came after the run ended: nothing of it may still run."""
        clean = harness.wait_for(lambda: not run_pids(self.s), grace, 0.02)
        if not clean:
            table = harness.proc_table()
            self.fail("processes of the run alive after its reply: %r"
                      % [(p, table.get(p, {}).get("cmdline")) for p in run_pids(self.s)])

    def run_ids(self):
        """(uid, gid, own) of the runs of the worker that answers (each
        worker's differ when own): own is True when runs have subordinate
        ids of their own (/healthz)."""
        h = self.s.request("GET", "/healthz").json()
        return h["run_uid"], h["run_gid"], h["run_ids"] == "subordinate"

    def memory_by_cgroup(self):
        """Whether a cgroup holds the runs' memory (else RLIMIT_AS does)."""
        return self.s.request("GET", "/healthz").json()["enforced"]["memory"] != "RLIMIT_AS"

    def assertServes(self):
        """The server still answers a plain request."""
        r = self.s.post_execute({"main.py": script('print("still here")\n')})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"still here\n")


# ==================================================================== limits

class Limits(SandboxCase):

    LEFT_RUNNING = '''
        import os, time
        r, w = os.pipe()
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                # a daemon that burns CPU until the run's end kills it, and
                # says when it has burnt 0.6 s (however busy the machine)
                told = False
                while True:
                    if not told and time.process_time() >= 0.6:
                        os.write(w, b"x")
                        told = True
            os._exit(0)
        os.wait()
        os.close(w)
        os.read(r, 1)
        print("main ends")
        '''

    def assertCountsWhatWasLeftRunning(self, r):
        self.assertRan(r)
        self.assertEqual(r.stdout, b"main ends\n")
        # the daemon ran 0.6 s and a little more (under the hostile server's
        # cpu_time of 1 s for the whole run); the main process almost nothing
        self.assertGreaterEqual(float(r.headers["X-CPU-Time"]), 0.6, r.describe())
        self.assertNothingLeftNow()

    def test_cpu_of_processes_left_running_is_counted(self):
        self.assertCountsWhatWasLeftRunning(self.run_script(self.LEFT_RUNNING, timeout=30))

    def test_cpu_of_processes_left_running_is_counted_under_rlimits(self):
        # RLIMIT_NPROC counts every process of pyexec's uid here (other
        # suites' servers run as nobody too): room for them
        s = self.private_server(name="rlimits-cpu", workers=1, sandbox="rlimits",
                                options=["max_processes=4096"])
        r = s.post_execute({"main.py": script(textwrap.dedent(self.LEFT_RUNNING))})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"main ends\n")
        self.assertGreaterEqual(float(r.headers["X-CPU-Time"]), 0.6, r.describe())

    def test_fork_bomb_stops_at_process_limit_and_ends_at_timeout(self):
        r = self.run_script('''
            import time
            n, err = 0, None
            try:
                while n < 100000:
                    if os.fork() == 0:
                        # every child forks as well: a real bomb
                        try:
                            while True:
                                os.fork()
                        except OSError:
                            pass
                        time.sleep(3600)
                        os._exit(0)
                    n += 1
            except OSError as e:
                err = ename(e.errno)
            time.sleep(0.3)
            procs = [d for d in os.listdir("/proc") if d.isdigit()]
            report({"forks": n, "err": err, "procs": len(procs)})
            time.sleep(3600)
            ''', query="timeout=2", timeout=30)
        rep = self.report(r, "timeout")
        self.assertEqual(rep["err"], "EAGAIN", rep)
        # the namespace holds the payload, its processes and init
        self.assertLessEqual(rep["procs"], MAX_PROCS + 1, rep)
        self.assertGreaterEqual(rep["procs"], MAX_PROCS // 2, "the bomb never went off: %r" % rep)
        self.assertLess(r.elapsed, 5, r.describe())
        self.assertIn(b"wall time limit of 2 s", r.stderr)
        self.assertNothingLeftNow()
        self.assertServes()

    def test_thread_bomb(self):
        # small stacks and a large memory limit: the process limit, not
        # RLIMIT_AS, is what stops it
        r = self.run_script('''
            import threading
            threading.stack_size(256 << 10)
            stop = threading.Event()
            n, err = 0, None
            try:
                while n < 100000:
                    threading.Thread(target=stop.wait, daemon=True).start()
                    n += 1
            except RuntimeError as e:
                err = str(e)
            report({"threads": n, "err": err})
            ''', query="memory=4096", timeout=30)
        rep = self.report(r)
        self.assertIn("can't start new thread", rep["err"] or "", rep)
        # the payload's own thread counts, and init too when runs share
        # pyexec's uid
        own = self.run_ids()[2]
        self.assertLessEqual(rep["threads"], MAX_PROCS - (1 if own else 2), rep)
        self.assertGreaterEqual(rep["threads"], MAX_PROCS - 8, rep)
        self.assertNothingLeftNow()
        self.assertServes()

    def test_memory_bomb_is_memory_status(self):
        r = self.run_script('''
            print("allocating", flush=True)
            hog = []
            while True:
                hog.append(b"\\xa5" * (8 << 20))   # written, so really resident
            ''', prelude=False, query="memory=128", timeout=30)
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("X-Execution-Status"), "memory", r.describe())
        self.assertEqual(r.stdout, b"allocating\n")
        if self.memory_by_cgroup():
            self.assertIn(b"pyexec: memory limit of 128 MiB reached", r.stderr)
        else:
            self.assertIn(b"MemoryError", r.stderr)
        self.assertLessEqual(int(r.headers["X-Max-RSS"]), 140 * 1024 + self.RSS_SHARED_KIB,
                             r.describe())
        self.assertLess(r.elapsed, 5)
        self.assertNothingLeftNow()
        self.assertServes()

    def test_busy_loop_hits_cpu_limit(self):
        r = self.run_script('''
            print("spinning", flush=True)
            while True:
                pass
            ''', prelude=False, timeout=30)
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("X-Execution-Status"), "timeout", r.describe())
        self.assertEqual(r.stdout, b"spinning\n")
        self.assertIn(b"CPU time limit of 1 s", r.stderr)
        # RLIMIT_CPU counts the kernel's tick samples, the cgroup (which
        # X-CPU-Time reads) the time really run: on a busy virtual machine
        # the first runs ahead by up to a tenth or so
        self.assertGreaterEqual(float(r.headers["X-CPU-Time"]), 0.8, r.describe())
        # the CPU limit, not the wall limit of 10 s, ended it
        self.assertLess(r.elapsed, 5, r.describe())
        self.assertNothingLeftNow()

    def test_busy_loop_ignoring_sigxcpu_killed_at_hard_cpu_limit(self):
        r = self.run_script('''
            import signal
            signal.signal(signal.SIGXCPU, signal.SIG_IGN)
            print("spinning", flush=True)
            while True:
                pass
            ''', prelude=False, timeout=30)
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("X-Execution-Status"), "timeout", r.describe())
        self.assertEqual(r.headers.get("X-Signal"), "SIGKILL", r.describe())
        self.assertIn(b"CPU time limit of 1 s", r.stderr)
        self.assertLess(r.elapsed, 5, r.describe())
        self.assertNothingLeftNow()

    def test_sleep_forever_hits_wall_limit(self):
        r = self.run_script('''
            import time
            print("sleeping", flush=True)
            time.sleep(3600)
            ''', prelude=False, query="timeout=1", timeout=30)
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("X-Execution-Status"), "timeout", r.describe())
        self.assertEqual(r.stdout, b"sleeping\n")
        self.assertIn(b"wall time limit of 1 s", r.stderr)
        self.assertLess(float(r.headers["X-CPU-Time"]), 0.5, r.describe())
        self.assertLess(r.elapsed, 3, r.describe())
        self.assertNothingLeftNow()

    def test_double_fork_setsid_daemon_dies_with_main(self):
        r = self.run_script('''
            import signal, time
            rd, wr = os.pipe()
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    # the daemon: deaf to the polite signals, keeps stdout
                    # open, keeps writing
                    for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
                        signal.signal(s, signal.SIG_IGN)
                    os.write(wr, str(os.getpid()).encode())
                    os.close(wr)
                    while True:
                        time.sleep(0.05)
                        with open("/tmp/daemon.log", "a") as f:
                            f.write("x")
                os._exit(0)
            os.close(wr)
            daemon = int(os.read(rd, 32))
            os.wait()
            time.sleep(0.2)
            report({"daemon": daemon, "alive": os.path.exists("/proc/%d" % daemon),
                    "sid": os.getsid(daemon) != os.getsid(0)})
            ''', timeout=30)
        rep = self.report(r)
        self.assertTrue(rep["alive"] and rep["sid"], "the daemon never ran: %r" % rep)
        # the reply did not wait for the daemon (the wall limit is 10 s)
        self.assertLess(r.elapsed, 4, r.describe())
        self.assertNothingLeftNow()

    def test_stopped_process_tree_is_killed(self):
        r = self.run_script('''
            import signal, time
            for i in range(3):
                if os.fork() == 0:
                    if os.fork() == 0:
                        os.kill(os.getpid(), signal.SIGSTOP)
                        time.sleep(3600)
                        os._exit(0)
                    os.kill(os.getpid(), signal.SIGSTOP)
                    time.sleep(3600)
                    os._exit(0)
            time.sleep(0.3)
            states = []
            for d in os.listdir("/proc"):
                if d.isdigit() and int(d) not in (1, os.getpid()):
                    stat = open("/proc/%s/stat" % d).read()
                    states.append(stat[stat.rindex(")") + 2])
            report({"states": sorted(states)})
            os.killpg(0, signal.SIGSTOP)     # main.py stops itself too
            ''', query="timeout=1", timeout=30)
        rep = self.report(r, "timeout")
        self.assertEqual(rep["states"], ["T"] * 6, rep)
        self.assertLess(r.elapsed, 3, r.describe())
        self.assertNothingLeftNow()
        self.assertServes()


# ==================================================================== disk

class Disk(SandboxCase):

    STDIN_ATTACK = '''
        import fcntl, stat
        rep = {"fd0": os.readlink("/proc/self/fd/0"),
               "fifo": stat.S_ISFIFO(os.fstat(0).st_mode)}
        def falloc():
            # fallocate(0, FALLOC_FL_KEEP_SIZE, 0, 2 GiB)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.fallocate(0, 1, ctypes.c_long(0), ctypes.c_long(2 << 30)) != 0:
                raise OSError(ctypes.get_errno(), "fallocate")
        rep["fallocate"] = attempt(falloc)
        def write_loop():
            for i in range(64):
                os.write(0, b"x" * (1 << 20))
                os.fsync(0)
                os.ftruncate(0, 0)
        rep["write"] = attempt(write_loop)
        rep["input"] = sys.stdin.read()
        report(rep)
        '''

    def assertStdinIsNoHostFile(self, r):
        rep = self.report(r)
        self.assertTrue(rep["fd0"].startswith("pipe:["), rep)
        self.assertTrue(rep["fifo"], rep)
        self.assertIsNotNone(rep["fallocate"], rep)
        self.assertIsNotNone(rep["write"], rep)
        self.assertEqual(rep["input"], "the input\n" * 1000, rep)

    def test_stdin_is_a_pipe_not_a_host_file(self):
        """fd 0 cannot allocate or write the host's disk, nor name a host path."""
        r = self.run_script(self.STDIN_ATTACK, stdin=b"the input\n" * 1000, timeout=30)
        self.assertStdinIsNoHostFile(r)

    def test_stdin_is_a_pipe_under_rlimits_too(self):
        s = self.private_server(name="rlimits-stdin", workers=1, sandbox="rlimits")
        r = s.post_execute({"main.py": script(PRELUDE + textwrap.dedent(self.STDIN_ATTACK))},
                           stdin=b"the input\n" * 1000)
        self.assertStdinIsNoHostFile(r)

    def test_2gib_file_is_efbig_at_max_file_size(self):
        r = self.run_script('''
            rep = {}
            chunk = b"\\0" * (1 << 20)
            try:
                with open("big.bin", "wb", buffering=0) as f:
                    for i in range(2048):          # 2 GiB
                        f.write(chunk)
            except OSError as e:
                rep["write"] = ename(e.errno)
            rep["size"] = os.path.getsize("big.bin")
            os.unlink("big.bin")
            def sparse():
                with open("sparse.bin", "wb") as f:
                    f.seek(2 << 30)
                    f.write(b"x")
            rep["sparse"] = attempt(sparse)
            def grow():
                with open("trunc.bin", "wb") as f:
                    f.truncate(2 << 30)
            rep["truncate"] = attempt(grow)
            for n in ("sparse.bin", "trunc.bin"):
                rep[n] = os.path.getsize(n)
                os.unlink(n)
            report(rep)
            ''', timeout=30)
        rep = self.report(r)
        self.assertEqual(rep, {"write": "EFBIG", "size": MAX_FILE, "sparse": "EFBIG",
                               "truncate": "EFBIG", "sparse.bin": 0, "trunc.bin": 0})
        self.assertEqual(r.files, {})

    def test_many_files_are_enospc_at_max_disk(self):
        r = self.run_script('''
            rep = {}
            n, total = 0, 0
            try:
                while n < 10000:
                    with open("f%05d.bin" % n, "wb") as f:
                        f.write(b"\\xab" * (256 << 10))
                    n += 1
                    total += 256 << 10
            except OSError as e:
                rep["big"] = ename(e.errno)
            rep["big_bytes"] = total
            for name in os.listdir("."):
                if name.startswith("f"):
                    os.unlink(name)
            # one byte each: a page each on the disk, so the count is bounded too
            n = 0
            try:
                while n < 100000:
                    with open("s%06d" % n, "wb") as f:
                        f.write(b"x")
                    n += 1
            except OSError as e:
                rep["small"] = ename(e.errno)
            rep["small_files"] = n
            for name in os.listdir("."):
                if name.startswith("s"):
                    os.unlink(name)
            # empty files take no page, but an inode each (kernel memory)
            n = 0
            try:
                while n < 100000:
                    os.close(os.open("/tmp/e%06d" % n, os.O_CREAT | os.O_WRONLY, 0o600))
                    n += 1
            except OSError as e:
                rep["empty"] = ename(e.errno)
            rep["empty_files"] = n
            for name in os.listdir("/tmp"):
                os.unlink("/tmp/" + name)
            report(rep)
            ''', timeout=30)
        rep = self.report(r)
        self.assertEqual(rep.get("big"), "ENOSPC", rep)
        self.assertLessEqual(rep["big_bytes"], MAX_DISK, rep)
        self.assertGreaterEqual(rep["big_bytes"], MAX_DISK - 2 * MiB, rep)
        self.assertEqual(rep.get("small"), "ENOSPC", rep)
        self.assertLessEqual(rep["small_files"], MAX_DISK // 4096, rep)
        self.assertEqual(rep.get("empty"), "ENOSPC", rep)
        self.assertLess(rep["empty_files"], 100000, rep)
        self.assertEqual(r.files, {})

    def test_work_tmp_and_shm_share_max_disk(self):
        r = self.run_script('''
            def fill(path, limit):
                written, err = 0, None
                try:
                    with open(path, "wb", buffering=0) as f:
                        while written < limit:
                            written += f.write(b"\\xcd" * min(1 << 20, limit - written))
                except OSError as e:
                    err = ename(e.errno)
                return [written, err]
            rep = {"work": fill("/work/w.bin", 6 << 20), "tmp": fill("/tmp/t.bin", 6 << 20),
                   "shm": fill("/dev/shm/s.bin", 64 << 20)}
            for p in ("/work", "/tmp", "/dev/shm"):
                st = os.statvfs(p)
                rep["size " + p] = st.f_blocks * st.f_frsize
                rep["dev " + p] = os.stat(p).st_dev
            for p in ("/work/w.bin", "/tmp/t.bin", "/dev/shm/s.bin"):
                os.unlink(p)
            from multiprocessing import shared_memory    # POSIX shm still works
            m = shared_memory.SharedMemory(create=True, size=1 << 20)
            m.buf[:5] = b"hello"
            rep["posix_shm"] = bytes(m.buf[:5]).decode()
            m.close()
            m.unlink()
            report(rep)
            ''', timeout=30)
        rep = self.report(r)
        self.assertEqual(rep["work"], [6 * MiB, None], rep)
        self.assertEqual(rep["tmp"], [6 * MiB, None], rep)
        self.assertEqual(rep["shm"][1], "ENOSPC", rep)
        self.assertLessEqual(rep["shm"][0], 4 * MiB, rep)
        self.assertGreater(rep["shm"][0], 2 * MiB, rep)
        for p in ("/work", "/tmp", "/dev/shm"):
            self.assertEqual(rep["size " + p], MAX_DISK, rep)
        self.assertEqual(len({rep["dev /work"], rep["dev /tmp"], rep["dev /dev/shm"]}), 1, rep)
        self.assertEqual(rep["posix_shm"], "hello")

    def test_upload_over_max_disk_is_413(self):
        # three files under max_file_size that together do not fit
        files = {"main.py": script('print("ran")\n')}
        for i in range(3):
            files["blob%d.bin" % i] = os.urandom(6 * MiB)
        r = self.s.post_execute(files, timeout=60)
        doc = self.assertError(r, 413, "max_disk")
        self.assertEqual(doc["error"], "too_large")

    @needs_x86_64
    def test_sysv_ipc_refused(self):
        r = self.run_script('''
            IPC_PRIVATE, IPC_CREAT = 0, 0o1000
            report({"shmget": sc(29, IPC_PRIVATE, 4096, IPC_CREAT | 0o600),
                    "semget": sc(64, IPC_PRIVATE, 1, IPC_CREAT | 0o600),
                    "msgget": sc(68, IPC_PRIVATE, IPC_CREAT | 0o600)})
            ''')
        self.assertEqual(self.report(r), {"shmget": "EPERM", "semget": "EPERM",
                                          "msgget": "EPERM"})

    def test_stdout_flood_capped_and_reported(self):
        r = self.run_script('''
            import sys
            chunk = b"y" * 65536
            for i in range(800):                  # 50 MiB
                sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            sys.stderr.write("went on\\n")
            ''', prelude=False, timeout=60)
        self.assertRan(r, "ok", 0)
        self.assertEqual(len(r.stdout), MAX_OUTPUT)
        self.assertEqual(r.stdout, b"y" * MAX_OUTPUT)
        self.assertEqual(r.headers.get("X-Truncated"), "stdout", r.describe())
        self.assertEqual(r.stderr, b"went on\n")
        self.assertLess(r.elapsed, 8)


# ==================================================================== reading

class Reading(SandboxCase):

    def test_etc_shadow_and_etc(self):
        r = self.run_script('''
            rep = {}
            for p in SENSITIVE:
                rep[p] = attempt(lambda: open(p, "rb").read())
            rep["etc"] = sorted(os.listdir("/etc"))
            rep["passwd"] = open("/etc/passwd").read()
            rep["group"] = open("/etc/group").read() if os.path.exists("/etc/group") else ""
            report(rep)
            ''', preamble="SENSITIVE = %r\n" % (SENSITIVE_ETC,))
        rep = self.report(r)
        for p in SENSITIVE_ETC:
            self.assertEqual(rep[p], "ENOENT", "%s: %r" % (p, rep))
        names = set(rep["etc"])
        self.assertFalse(names & {"shadow", "gshadow", "sudoers", "ssh", "machine-id", "crontab",
                                  "pam.d"}, rep["etc"])
        self.assertLessEqual(len(names), 20, "not a few files: %r" % rep["etc"])
        self.assertEqual(rep["passwd"].count("\n"), 1, rep["passwd"])
        self.assertNotIn("root:", rep["passwd"])
        self.assertNotIn("root:", rep["group"])
        host_shadow = harness._read("/etc/shadow") or b""
        for line in host_shadow.splitlines():
            f = line.split(b":")
            if len(f) > 2 and len(f[1]) > 4:     # a real hash
                self.assertNotIn(f[1], r.body)

    def test_root_home_and_host_dirs(self):
        r = self.run_script('''
            rep = {}
            for p in ("/root", "/home", "/var/lib", "/var/log", "/run", "/srv", "/mnt", "/boot",
                      "/lost+found", "/sys", "/sys/fs/cgroup"):
                try:
                    rep[p] = sorted(os.listdir(p))
                except OSError as e:
                    rep[p] = ename(e.errno)
            report(rep)
            ''')
        rep = self.report(r)
        self.assertIn(rep["/root"], ("ENOENT", "EACCES"), rep)
        try:
            host_root = set(os.listdir("/root"))
        except OSError:
            host_root = set()
        if host_root:
            for p, v in rep.items():
                if isinstance(v, list):
                    self.assertFalse(host_root & set(v) - {"lib", "log"},
                                     "%s shows the host's /root: %r" % (p, v))
        for p in ("/home", "/var/log", "/srv", "/boot", "/lost+found"):
            if isinstance(rep[p], list):
                self.assertEqual(rep[p], [], "%s: %r" % (p, rep[p]))

    def test_work_root_and_server_dirs_not_visible(self):
        s = self.s
        paths = [s.work_root, s.outer, s.tmp, os.path.join(s.tmp, "deps"),
                 os.path.join(s.tmp, "pyexec.conf"), os.path.join(s.tmp, "pyexec.log"),
                 os.path.dirname(s.tmp)]
        r = self.run_script('''
            rep = {}
            for p in %r:
                try:
                    rep[p] = sorted(os.listdir(p)) if os.path.isdir(p) else open(p, "rb").read(64).hex()
                except OSError as e:
                    rep[p] = ename(e.errno)
            # the directories of the sandbox's own processes
            for d in os.listdir("/proc"):
                if d.isdigit():
                    for link in ("cwd", "root"):
                        p = "/proc/%%s/%%s" %% (d, link)
                        try:
                            rep[p] = [os.readlink(p), sorted(os.listdir(p))]
                        except OSError as e:
                            rep[p] = ename(e.errno)
                    if int(d) != os.getpid():
                        # init's descriptors (its socket to the supervisor)
                        p = "/proc/%%s/fd" %% d
                        try:
                            rep[p] = sorted(os.listdir(p))
                        except OSError as e:
                            rep[p] = ename(e.errno)
            rep["/"] = sorted(os.listdir("/"))
            rep["cwd"] = os.getcwd()
            rep["mountinfo"] = open("/proc/self/mountinfo").read()
            report(rep)
            ''' % paths)
        rep = self.report(r)
        host_tmp = set(os.listdir(os.path.dirname(s.tmp)))
        for p in paths:
            if p == os.path.dirname(s.tmp):
                # /tmp inside is the run's own: nothing of the host's /tmp
                v = rep[p]
                if isinstance(v, list):
                    self.assertFalse(set(v) & host_tmp, "the host's /tmp shows: %r" % v)
            else:
                self.assertEqual(rep[p], "ENOENT", "%s: %r" % (p, rep[p]))
        for p, v in rep.items():
            if p.startswith("/proc/") and p.endswith("/fd"):
                self.assertEqual(v, "EACCES", "%s: %r" % (p, v))
            elif p.startswith("/proc/") and isinstance(v, list):
                self.assertNotIn(s.tmp, v[0], "%s leads to the host: %r" % (p, v))
                if v[0] == "/":
                    self.assertEqual(v[1], rep["/"], "%s is another root: %r" % (p, v))
        self.assertEqual(rep["cwd"], "/work")
        self.assertNotIn(s.work_root, rep["mountinfo"], "the mount table names the host's work_root")

    def test_proc_shows_no_host_secret(self):
        """pid 1 inside is the sandbox's init; no file under /proc (environ,
        cmdline, memory of any visible process) carries pyexec's environment
        or command line."""
        r = self.run_script('''
            NAME = b"PYEXEC_SANDBOX_" + b"TEST_SECRET="
            me = os.getpid()
            rep = {"pids": [], "files": {}, "hits": []}
            for d in sorted(os.listdir("/proc")):
                if not d.isdigit() or int(d) == me:
                    continue
                rep["pids"].append(int(d))
                for f in ("environ", "cmdline", "comm"):
                    p = "/proc/%s/%s" % (d, f)
                    try:
                        rep["files"][p] = open(p, "rb").read().decode("latin-1")
                    except OSError as e:
                        rep["files"][p] = ename(e.errno)
                try:
                    maps = open("/proc/%s/maps" % d).read().splitlines()
                    mem = open("/proc/%s/mem" % d, "rb", buffering=0)
                except OSError as e:
                    rep["files"]["/proc/%s/mem" % d] = ename(e.errno)
                    continue
                scanned = 0
                for line in maps:
                    span, perms = line.split()[:2]
                    lo, hi = (int(x, 16) for x in span.split("-"))
                    if "r" not in perms or hi - lo > (256 << 20):
                        continue
                    try:
                        mem.seek(lo)
                        data = mem.read(hi - lo)
                    except (OSError, OverflowError, ValueError):
                        continue
                    scanned += len(data)
                    i = data.find(NAME)
                    while i >= 0 and len(rep["hits"]) < 20:
                        rep["hits"].append(data[i:i + 80].decode("latin-1"))
                        i = data.find(NAME, i + 1)
                    i = data.find(b"arg-s3cr3t-")
                    if i >= 0 and len(rep["hits"]) < 20:
                        rep["hits"].append(data[i:i + 40].decode("latin-1"))
                rep["files"]["/proc/%s/mem" % d] = "read %d bytes" % scanned
                mem.close()
            report(rep)
            ''', timeout=60)
        rep = self.report(r)
        problems = []
        for secret in (SECRET_ENV, SECRET_ARG):
            if secret.encode() in r.body:
                where = [k for k, v in rep["files"].items() if secret in v]
                problems.append("%s readable in %s%s" % (
                    secret[:10], ", ".join(where) or "?",
                    " and in memory" if any(secret in h for h in rep["hits"]) else ""))
        host1 = (harness._read("/proc/1/cmdline") or b"").decode("latin-1")
        if host1 and rep["files"].get("/proc/1/cmdline") == host1:
            problems.append("the host's pid 1 is visible as /proc/1")
        self.assertEqual(problems, [], json.dumps(rep, indent=1)[:6000])
        self.assertIn(1, rep["pids"])
        self.assertLessEqual(len(rep["pids"]), 2, rep["pids"])


# ==================================================================== writing

class Writing(SandboxCase):

    def test_system_paths_read_only(self):
        tag = "pyexec-canary-" + os.urandom(4).hex()
        targets = ["/usr/" + tag, "/usr/bin/" + tag, "/usr/lib/" + tag, "/etc/" + tag,
                   "/" + tag, "/var/" + tag, "/dev/" + tag, "/proc/" + tag]
        r = self.run_script('''
            import stat
            rep = {}
            for p in %r:
                rep["create " + p] = attempt(lambda: put(p))
            rep["mkdir /newdir"] = attempt(lambda: os.mkdir("/%s-dir"))
            rep["append /etc/passwd"] = attempt(lambda: put("/etc/passwd", mode="ab"))
            rep["append python"] = attempt(lambda: put(sys.executable, mode="ab"))
            rep["chmod python"] = attempt(lambda: os.chmod(sys.executable, 0o777))
            rep["rename /etc/passwd"] = attempt(lambda: os.rename("/etc/passwd", "/etc/p2"))
            rep["unlink /usr/bin/env"] = attempt(lambda: os.unlink("/usr/bin/env"))
            rep["utime /etc/passwd"] = attempt(lambda: os.utime("/etc/passwd"))
            rep["symlink /etc"] = attempt(lambda: os.symlink("/work", "/etc/%s-ln"))
            rep["mknod /work/null"] = attempt(lambda: os.mknod("/work/null", stat.S_IFCHR | 0o666,
                                                               os.makedev(1, 3)))
            rep["mknod /dev/mem2"] = attempt(lambda: os.mknod("/dev/mem2", stat.S_IFCHR | 0o666,
                                                              os.makedev(1, 1)))
            rep["hostname"] = attempt(lambda: put("/proc/sys/kernel/hostname", b"evil"))
            rep["drop_caches"] = attempt(lambda: put("/proc/sys/vm/drop_caches", b"3"))
            rep["core_pattern"] = attempt(lambda: put("/proc/sys/kernel/core_pattern", b"|/work/x"))
            rep["sysrq"] = attempt(lambda: put("/proc/sysrq-trigger", b"h"))
            rep["oom_score_adj"] = attempt(lambda: put("/proc/self/oom_score_adj", b"-1000"))
            # what must keep working
            rep["dev/null"] = attempt(lambda: put("/dev/null"))
            rep["dev/full"] = attempt(lambda: put("/dev/full"))
            rep["dev/urandom"] = len(open("/dev/urandom", "rb").read(16))
            rep["/dev"] = sorted(os.listdir("/dev"))
            report(rep)
            ''' % (targets, tag, tag))
        rep = self.report(r)
        worked = [k for k, v in rep.items() if v is None and k not in ("dev/null",)]
        self.assertEqual(worked, [], "the sandbox let these through: %r" % rep)
        self.assertEqual(rep["dev/full"], "ENOSPC")
        self.assertEqual(rep["dev/urandom"], 16)
        self.assertTrue(set(rep["/dev"]) >= {"null", "zero", "full", "random", "urandom"}, rep["/dev"])
        self.assertFalse(set(rep["/dev"]) & {"mem", "kmem", "port", "sda", "vda", "tty", "console",
                                            "kmsg", "fuse", "net"}, rep["/dev"])
        for p in targets + ["/%s-dir" % tag, "/etc/%s-ln" % tag]:
            self.assertFalse(os.path.lexists(p), "%s exists on the host" % p)


# ==================================================================== network

class Network(SandboxCase):

    def test_no_network(self):
        s = self.s
        fcgi_sock = os.path.join(s.tmp, "pyexec.sock")
        # listeners on the host that the program must not reach
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        v6.bind(("::1", 0))
        v6.listen(8)
        self.addCleanup(v6.close)
        abstract_name = "\0pyexec-e2e-" + os.urandom(6).hex()
        ab = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ab.bind(abstract_name)
        ab.listen(8)
        self.addCleanup(ab.close)
        r = self.run_script('''
            import socket
            rep = {}
            def connect(family, addr):
                def go():
                    with socket.socket(family, socket.SOCK_STREAM) as c:
                        c.settimeout(3)
                        c.connect(addr)
                return attempt(go)
            rep["fastcgi socket"] = connect(socket.AF_UNIX, %r)
            rep["abstract socket"] = connect(socket.AF_UNIX, %r)
            rep["nginx 127.0.0.1"] = connect(socket.AF_INET, ("127.0.0.1", %d))
            rep["listener ::1"] = connect(socket.AF_INET6, ("::1", %d))
            rep["outside v4"] = connect(socket.AF_INET, ("1.1.1.1", 443))
            rep["outside v6"] = connect(socket.AF_INET6, ("2606:4700:4700::1111", 443))
            def udp():
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.sendto(b"x", ("8.8.8.8", 53))
            rep["udp out"] = attempt(udp)
            try:
                socket.getaddrinfo("example.com", 443)
                rep["dns"] = None
            except socket.gaierror as e:
                rep["dns"] = "gaierror"
            # (if_nameindex would need a netlink socket, refused)
            rep["interfaces"] = sorted(l.split(":")[0].strip()
                                       for l in open("/proc/net/dev").read().splitlines()[2:])
            # a loopback of its own works
            def own():
                with socket.socket() as srv:
                    srv.bind(("127.0.0.1", 0))
                    srv.listen(1)
                    with socket.create_connection(srv.getsockname(), timeout=3) as c:
                        a, _ = srv.accept()
                        c.sendall(b"ping")
                        rep["own loopback"] = a.recv(4).decode()
                        a.close()
            rep["own loopback"] = attempt(own) or rep.get("own loopback")
            report(rep)
            ''' % (fcgi_sock, abstract_name, s.port, v6.getsockname()[1]), timeout=30)
        rep = self.report(r)
        self.assertEqual(rep["fastcgi socket"], "ENOENT", rep)
        self.assertEqual(rep["abstract socket"], "ECONNREFUSED", rep)
        self.assertEqual(rep["nginx 127.0.0.1"], "ECONNREFUSED", rep)
        self.assertIn(rep["listener ::1"], ("ECONNREFUSED", "EADDRNOTAVAIL", "ENETUNREACH"), rep)
        self.assertEqual(rep["outside v4"], "ENETUNREACH", rep)
        self.assertIn(rep["outside v6"], ("ENETUNREACH", "EADDRNOTAVAIL"), rep)
        self.assertEqual(rep["udp out"], "ENETUNREACH", rep)
        self.assertEqual(rep["dns"], "gaierror", rep)
        self.assertEqual(rep["interfaces"], ["lo"], rep)
        self.assertEqual(rep["own loopback"], "ping", rep)

    def test_socket_families_refused(self):
        r = self.run_script('''
            import socket
            rep = {}
            for name, fam, typ in [("AF_PACKET", 17, socket.SOCK_RAW), ("AF_PACKET dgram", 17, socket.SOCK_DGRAM),
                                   ("AF_NETLINK", 16, socket.SOCK_RAW), ("AF_NETLINK dgram", 16, socket.SOCK_DGRAM),
                                   ("AF_VSOCK", 40, socket.SOCK_STREAM), ("AF_ALG", 38, socket.SOCK_SEQPACKET),
                                   ("AF_KEY", 15, socket.SOCK_RAW), ("AF_XDP", 44, socket.SOCK_RAW),
                                   ("AF_BLUETOOTH", 31, socket.SOCK_RAW), ("AF_TIPC", 30, socket.SOCK_RDM),
                                   ("INET raw", 2, socket.SOCK_RAW), ("INET6 raw", 10, socket.SOCK_RAW)]:
                rep[name] = attempt(lambda: socket.socket(fam, typ).close())
            ok = {}
            for name, fam, typ in [("unix", 1, socket.SOCK_STREAM), ("inet", 2, socket.SOCK_STREAM),
                                   ("inet6 udp", 10, socket.SOCK_DGRAM)]:
                ok[name] = attempt(lambda: socket.socket(fam, typ).close())
            ok["socketpair"] = attempt(lambda: [s.close() for s in socket.socketpair()])
            report({"refused": rep, "allowed": ok})
            ''')
        rep = self.report(r)
        worked = [k for k, v in rep["refused"].items() if v is None]
        self.assertEqual(worked, [], rep)
        self.assertEqual(set(rep["allowed"].values()), {None}, rep)


# ==================================================================== syscalls

class Syscalls(SandboxCase):

    @needs_x86_64
    def test_ptrace_and_process_vm_readv(self):
        r = self.run_script('''
            import signal, time
            kid = os.fork()
            if kid == 0:
                time.sleep(30)
                os._exit(0)
            buf = ctypes.create_string_buffer(64)
            iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 64)
            rep = {"ptrace attach": sc(101, 16, kid, 0, 0),           # PTRACE_ATTACH
                   "ptrace seize": sc(101, 0x4206, kid, 0, 0),        # PTRACE_SEIZE
                   "ptrace traceme": sc(101, 0, 0, 0, 0),             # PTRACE_TRACEME
                   "ptrace init": sc(101, 16, 1, 0, 0),
                   "process_vm_readv": sc(310, kid, ctypes.addressof(iov), 1,
                                           ctypes.addressof(iov), 1, 0),
                   "process_vm_writev": sc(311, kid, ctypes.addressof(iov), 1,
                                            ctypes.addressof(iov), 1, 0)}
            os.kill(kid, signal.SIGKILL)
            os.waitpid(kid, 0)
            report(rep)
            ''')
        rep = self.report(r)
        self.assertEqual(rep, {"ptrace attach": "EPERM", "ptrace seize": "EPERM",
                               "ptrace traceme": "EPERM", "ptrace init": "EPERM",
                               "process_vm_readv": "EPERM", "process_vm_writev": "EPERM"})

    @needs_x86_64
    def test_namespace_mount_and_kernel_syscalls(self):
        r = self.run_script('''
            import subprocess, threading
            CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x10000000, 0x20000, 0x40000000, 0x20000000
            SIGCHLD = 17
            net = os.open("/proc/self/ns/net", os.O_RDONLY)
            attr = ctypes.create_string_buffer(128)         # perf_event_attr, zeroed
            ctypes.memmove(attr, (112).to_bytes(4, "little"), 4)
            ctypes.memmove(ctypes.addressof(attr) + 4, (112).to_bytes(4, "little"), 4)
            params = ctypes.create_string_buffer(120)       # io_uring_params
            bpfattr = ctypes.create_string_buffer(128)
            def raw_clone(flags):
                ctypes.set_errno(0)
                r = libc.syscall(ctypes.c_long(56), ctypes.c_long(flags), ctypes.c_long(0),
                                 ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
                if r == 0:
                    os._exit(0)           # a child got made after all
                if r > 0:
                    os.waitpid(r, 0)
                    return None
                return ename(ctypes.get_errno())
            rep = {"unshare user": sc(272, CLONE_NEWUSER),
                   "unshare mount": sc(272, CLONE_NEWNS),
                   "unshare net": sc(272, CLONE_NEWNET),
                   "setns": sc(308, net, 0),
                   "mount": sc(165, ctypes.addressof(ctypes.create_string_buffer(b"none")),
                               ctypes.addressof(ctypes.create_string_buffer(b"/tmp")),
                               ctypes.addressof(ctypes.create_string_buffer(b"tmpfs")), 0, 0),
                   "umount2": sc(166, ctypes.addressof(ctypes.create_string_buffer(b"/work")), 2),
                   "bpf": sc(321, 5, ctypes.addressof(bpfattr), 128),   # BPF_PROG_LOAD
                   "perf_event_open": sc(298, ctypes.addressof(attr), 0, -1, -1, 0),
                   "io_uring_setup": sc(425, 8, ctypes.addressof(params)),
                   "keyctl": sc(250, 0, -3, 1),                  # KEYCTL_GET_KEYRING_ID session
                   "add_key": sc(248, ctypes.addressof(ctypes.create_string_buffer(b"user")),
                                 ctypes.addressof(ctypes.create_string_buffer(b"k")),
                                 ctypes.addressof(ctypes.create_string_buffer(b"v")), 1, -3),
                   "clone newuser": raw_clone(CLONE_NEWUSER | SIGCHLD),
                   "clone newpid": raw_clone(CLONE_NEWPID | SIGCHLD),
                   # stdin is a pipe: without the filter this is ENOTTY
                   "ioctl TIOCSTI": sc(16, 0, 0x5412, ctypes.addressof(ctypes.create_string_buffer(b"x")))}
            extra = {"clone3": sc(435, 0, 0),
                     "userfaultfd": sc(323, 0),
                     "kexec_load": sc(246, 0, 0, 0, 0),
                     "init_module": sc(175, 0, 0, 0),
                     "pivot_root": sc(155, ctypes.addressof(ctypes.create_string_buffer(b"/work")),
                                      ctypes.addressof(ctypes.create_string_buffer(b"/work"))),
                     "fsopen": sc(430, ctypes.addressof(ctypes.create_string_buffer(b"tmpfs")), 0),
                     "open_tree": sc(428, -100, ctypes.addressof(ctypes.create_string_buffer(b"/work")), 1)}
            # clone3 refused as ENOSYS: glibc falls back to clone, so these work
            t = threading.Thread(target=lambda: None)
            t.start()
            t.join()
            extra["subprocess"] = subprocess.run(["/bin/true"]).returncode
            report({"denied": rep, "extra": extra})
            ''')
        rep = self.report(r)
        self.assertEqual(rep["denied"], {k: "EPERM" for k in rep["denied"]}, rep)
        self.assertEqual(rep["extra"]["clone3"], "ENOSYS", rep)
        self.assertEqual(rep["extra"]["subprocess"], 0, rep)
        worked = [k for k, v in rep["extra"].items() if v is None]
        self.assertEqual(worked, [], rep)

    def test_signal_every_pid(self):
        s = self.s
        host_pids = sorted({s.proc.pid, s.nginx.pid, os.getpid(), 1} | set(s.worker_pids()))
        workers = s.worker_pids()
        r = self.run_script('''
            import signal, time
            kid = os.fork()
            if kid == 0:
                time.sleep(30)
                os._exit(0)
            me = os.getpid()
            seen = {}
            for pid in list(range(1, 1 << 16)) + %r:
                if pid == me:
                    continue
                try:
                    os.kill(pid, 0)
                    seen[pid] = "ok"
                except ProcessLookupError:
                    pass
                except PermissionError:
                    seen[pid] = "EPERM"
            for pid in list(seen):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.kill(-1, signal.SIGKILL)
                minus1 = None
            except OSError as e:
                minus1 = ename(e.errno)
            _, st = os.waitpid(kid, 0)
            report({"seen": seen, "kid": kid, "kid_signal": os.WTERMSIG(st) if os.WIFSIGNALED(st) else None,
                    "kill -1": minus1})
            ''' % host_pids, timeout=60)
        rep = self.report(r)
        # only its own processes (init is pid 1 of the namespace) are there
        self.assertEqual(sorted(int(p) for p in rep["seen"]), sorted([1, rep["kid"]]), rep)
        self.assertEqual(rep["kid_signal"], signal.SIGKILL, rep)
        self.assertIsNone(rep["kill -1"], rep)
        self.assertTrue(s.alive(), "the server or nginx died:\n" + s.log_tail())
        self.assertEqual(s.worker_pids(), workers, "a worker was killed")
        self.assertServes()

    def test_exhausting_fds(self):
        r = self.run_script('''
            fds, err = [], None
            try:
                while len(fds) < 100000:
                    fds.append(os.open("/dev/null", os.O_RDONLY))
            except OSError as e:
                err = ename(e.errno)
            rep = {"opened": len(fds), "err": err, "highest": max(fds),
                   "dup2 far": attempt(lambda: os.dup2(0, 100000))}
            for fd in fds:
                os.close(fd)
            report(rep)
            ''')
        rep = self.report(r)
        self.assertEqual(rep["err"], "EMFILE", rep)
        self.assertEqual(rep["opened"], MAX_FDS - 3, rep)
        self.assertLess(rep["highest"], MAX_FDS, rep)
        self.assertEqual(rep["dup2 far"], "EBADF", rep)
        self.assertServes()

    def test_rlimits_cannot_be_raised(self):
        r = self.run_script('''
            import resource
            rep = {}
            for name in ("RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE",
                         "RLIMIT_CORE"):
                which = getattr(resource, name)
                soft, hard = resource.getrlimit(which)
                try:
                    resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                    rep[name] = None
                except (ValueError, OSError) as e:
                    rep[name] = type(e).__name__
                rep[name + " hard"] = hard
            report(rep)
            ''')
        rep = self.report(r)
        names = ["RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE"]
        if self.memory_by_cgroup():
            # the cgroup holds the memory of the whole run: no RLIMIT_AS
            self.assertEqual(rep["RLIMIT_AS hard"], -1, rep)
        else:
            names.append("RLIMIT_AS")
        for name in names:
            self.assertIsNotNone(rep[name], "%s raised to infinity: %r" % (name, rep))
        self.assertEqual(rep["RLIMIT_NPROC hard"], MAX_PROCS, rep)
        self.assertEqual(rep["RLIMIT_NOFILE hard"], MAX_FDS, rep)
        self.assertEqual(rep["RLIMIT_FSIZE hard"], MAX_FILE, rep)
        self.assertEqual(rep["RLIMIT_CORE hard"], 0, rep)

    def test_proc_self_fd_only_0_1_2(self):
        r = self.run_script('''
            names = sorted(int(n) for n in os.listdir("/proc/self/fd"))
            open_fds = []
            for fd in range(3, 4096):
                try:
                    os.fstat(fd)
                    open_fds.append([fd, os.readlink("/proc/self/fd/%d" % fd)])
                except OSError:
                    pass
            report({"listing": names, "open above 2": open_fds,
                    "stdin": os.readlink("/proc/self/fd/0")})
            ''')
        rep = self.report(r)
        self.assertEqual(rep["open above 2"], [], rep)
        self.assertEqual(rep["listing"][:3], [0, 1, 2], rep)
        self.assertLessEqual(len(rep["listing"]), 4, "more than 0-2 and the listing's own: %r" % rep)
        # an empty pipe when the request sends no stdin (README "POST execute")
        self.assertTrue(rep["stdin"].startswith("pipe:["), rep)

    def test_status_caps_nnp_seccomp(self):
        r = self.run_script('''
            import socket
            st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
            rep = {k: st[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                             "NoNewPrivs", "Seccomp")}
            rep["uid"] = [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]
            rep["hostname"] = socket.gethostname()
            rep["cwd"] = os.getcwd()
            rep["env"] = {k: os.environ.get(k) for k in ("OUTPUT_DIR", "HOME", "TMPDIR")}
            rep["sid"] = os.getsid(0) == os.getpid()
            report(rep)
            ''')
        rep = self.report(r)
        zero = "0000000000000000"
        self.assertEqual({k: rep[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
                         dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), zero), rep)
        self.assertEqual(rep["NoNewPrivs"], "1", rep)
        self.assertEqual(rep["Seccomp"], "2", rep)
        pyexec_uid = os.getuid() if not harness.IS_ROOT else pwd.getpwnam("nobody").pw_uid
        uid, gid = rep["uid"][0], rep["uid"][2]
        self.assertEqual(rep["uid"], [uid, uid, gid, gid], rep)
        if self.run_ids()[2]:
            self.assertNotIn(uid, (0, pyexec_uid), rep)
        else:
            self.assertEqual(uid, pyexec_uid, rep)
        self.assertEqual(rep["hostname"], "pyexec", rep)
        self.assertEqual(rep["cwd"], "/work", rep)
        self.assertEqual(rep["env"], {"OUTPUT_DIR": "/work", "HOME": "/tmp", "TMPDIR": "/tmp"})
        self.assertTrue(rep["sid"], "the payload does not lead its own session: %r" % rep)
        h = self.s.request("GET", "/healthz").json()
        self.assertEqual(h["sandbox"], "namespaces", h)
        self.assertIsInstance(h.get("enforced"), dict, h)

    @needs_x86_64
    def test_i386_int80_syscall_kills(self):
        ia32 = host_can_int80()
        r = self.run_script('''
            import mmap
            m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
            m.write(b"\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3")     # mov eax, 20 (getpid); int 0x80; ret
            f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
            print("calling", flush=True)
            print("returned", f(), flush=True)
            ''', timeout=30)
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("X-Execution-Status"), "killed", r.describe())
        self.assertEqual(r.stdout, b"calling\n")
        # Without IA32 emulation int 0x80 is a fault before any filter.
        self.assertEqual(r.headers.get("X-Signal"), "SIGSYS" if ia32 else "SIGSEGV", r.describe())

    @needs_x86_64
    def test_x32_syscall_kills(self):
        r = self.run_script('''
            print("calling", flush=True)
            print("returned", sc(0x40000000 | 39), flush=True)      # x32 getpid
            ''', timeout=30)
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("X-Execution-Status"), "killed", r.describe())
        self.assertEqual(r.headers.get("X-Signal"), "SIGSYS", r.describe())
        self.assertEqual(r.stdout, b"calling\n")


# ==================================================================== exec

class Exec(SandboxCase):

    def test_exec_of_binary_written_to_work_refused(self):
        r = self.run_script('''
            import mmap, shutil, subprocess
            rep = {}
            for d in ("/work", "/tmp", "/dev/shm"):
                p = d + "/mytrue"
                shutil.copy("/bin/true", p)
                os.chmod(p, 0o755)
                rep["exec " + d] = attempt(lambda: subprocess.run([p]))
                os.unlink(p)
            shutil.copy("/bin/true", "/work/mytrue")
            os.chmod("/work/mytrue", 0o755)
            with open("/work/run.sh", "w") as f:
                f.write("#!/bin/sh\\necho ran\\n")
            os.chmod("/work/run.sh", 0o755)
            rep["exec script"] = attempt(lambda: subprocess.run(["/work/run.sh"]))
            # the dynamic loader maps it instead of execve: still refused
            ldso = [l for l in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1")
                    if os.path.exists(l)]
            if ldso:
                p = subprocess.run([ldso[0], "/work/mytrue"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
                rep["ld.so"] = [p.returncode, p.stdout.decode()[:200]]
            fd = os.open("/work/mytrue", os.O_RDONLY)
            rep["mmap exec"] = attempt(lambda: mmap.mmap(fd, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC))
            os.close(fd)
            os.unlink("/work/mytrue")
            os.unlink("/work/run.sh")
            report(rep)
            ''', timeout=30)
        rep = self.report(r)
        for k in ("exec /work", "exec /tmp", "exec /dev/shm", "exec script"):
            self.assertEqual(rep[k], "EACCES", "%s: %r" % (k, rep))
        self.assertIn(rep["mmap exec"], ("EPERM", "EACCES"), rep)
        if "ld.so" in rep:
            self.assertNotEqual(rep["ld.so"][0], 0, rep)

    def test_dlopen_of_library_written_to_work_refused(self):
        r = self.run_script('''
            import shutil, _ctypes
            src = _ctypes.__file__
            shutil.copy(src, "/work/evil.so")
            shutil.copy(src, "/tmp/evil.so")
            rep = {"src": src}
            for p in ("/work/evil.so", "/tmp/evil.so"):
                try:
                    ctypes.CDLL(p)
                    rep[p] = None
                except OSError as e:
                    rep[p] = str(e)
                os.unlink(p)
            ctypes.CDLL(src)           # the same library from the system loads
            report(rep)
            ''')
        rep = self.report(r)
        for p in ("/work/evil.so", "/tmp/evil.so"):
            self.assertIsNotNone(rep[p], "dlopen of %s worked: %r" % (p, rep))
            self.assertIn("failed to map segment", rep[p], rep)

    def test_setuid_binary_gains_nothing(self):
        r = self.run_script('''
            import fcntl, stat, subprocess, time
            out = {}
            for path in ("/usr/bin/su", "/usr/bin/passwd", "/usr/bin/chsh", "/usr/bin/mount"):
                try:
                    if not os.stat(path).st_mode & stat.S_ISUID:
                        continue
                except OSError:
                    continue
                # a full pipe as its stdout and stderr: its first write
                # blocks, and its credentials can be read meanwhile
                rd, wr = os.pipe()
                fcntl.fcntl(wr, 1031, 4096)           # F_SETPIPE_SZ
                os.set_blocking(wr, False)
                try:
                    while True:
                        os.write(wr, b"\\0" * 4096)
                except BlockingIOError:
                    pass
                os.set_blocking(wr, True)
                p = subprocess.Popen([path, "--help"], stdin=subprocess.DEVNULL, stdout=wr, stderr=wr)
                os.close(wr)
                seen = None
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    try:
                        text = open("/proc/%d/status" % p.pid).read()
                    except OSError:
                        break
                    f = {k: v.strip() for k, v in (l.split(":", 1) for l in text.splitlines() if ":" in l)}
                    if f["Name"] == os.path.basename(path):
                        seen = {"Uid": f["Uid"].split(), "Gid": f["Gid"].split(),
                                "CapEff": f["CapEff"], "CapPrm": f["CapPrm"]}
                        break
                    time.sleep(0.005)
                said = b""
                while True:
                    chunk = os.read(rd, 65536)
                    if not chunk:
                        break
                    said += chunk
                os.close(rd)
                out[path] = {"seen": seen, "rc": p.wait(), "said": said.lstrip(b"\\0")[:120].decode("utf-8", "replace")}
            report({"runs": out, "me": [str(os.getuid()), str(os.getgid())]})
            ''', timeout=30)
        rep = self.report(r)
        seen = {p: v["seen"] for p, v in rep["runs"].items() if v["seen"]}
        self.assertTrue(seen, "no setuid binary was observed running: %r" % rep)
        uid, gid = rep["me"]
        for p, v in seen.items():
            self.assertEqual(v["Uid"], [uid] * 4, "%s: %r" % (p, rep))
            self.assertEqual(v["Gid"], [gid] * 4, "%s: %r" % (p, rep))
            self.assertEqual(v["CapEff"], "0000000000000000", "%s: %r" % (p, rep))
            self.assertEqual(v["CapPrm"], "0000000000000000", "%s: %r" % (p, rep))


# ==================================================================== results

class Results(SandboxCase):

    def test_symlinks_planted_as_results_not_followed(self):
        r = self.run_script('''
            import os
            os.symlink("/etc/passwd", "result.txt")
            os.unlink("data.txt")
            os.symlink("/etc/passwd", "data.txt")           # an upload replaced by a link
            os.symlink("/etc", "etcdir")
            os.symlink("/proc/1/environ", "environ.txt")
            os.symlink("/proc/self/root/etc/passwd", "root.txt")
            os.makedirs("sub")
            os.symlink("../../../../../../../../etc/passwd", "sub/up.txt")
            open("real.txt", "w").write("real")
            print("done")
            ''', prelude=False, files={"data.txt": b"upload\n"})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"done\n")
        self.assertEqual(sorted(r.files), ["real.txt"], r.describe())
        self.assertEqual(r.files["real.txt"].data, b"real")
        self.assertNotIn(b"root:x:0:0", r.body)
        self.assertNotIn(SECRET_ENV.encode(), r.body)
        self.assertNotIn(SECRET_ARG.encode(), r.body)

    def test_mode_000_dirs_fifos_sockets_cleaned_up(self):
        r = self.run_script('''
            import os
            import socket
            os.makedirs("locked/inner/deeper")
            open("locked/inner/deeper/f.txt", "w").write("x")
            for d in ("locked/inner/deeper", "locked/inner", "locked"):
                os.chmod(d, 0)
            os.mkfifo("fifo")
            os.mkfifo("/tmp/fifo")
            s = socket.socket(socket.AF_UNIX)
            s.bind("/work/sock")
            open("noperm.txt", "w").write("y")
            os.chmod("noperm.txt", 0)
            os.makedirs("/tmp/locked/x")
            os.chmod("/tmp/locked", 0)
            open("visible.txt", "w").write("z")
            print("done")
            ''', prelude=False)
        self.assertRan(r)
        self.assertEqual(r.files["visible.txt"].data, b"z")
        self.assertNotIn("fifo", r.files)
        self.assertNotIn("sock", r.files)
        self.assertNothingLeftNow()
        # tearDown: the run's directory is gone

    def test_work_dir_made_unreadable(self):
        r = self.run_script('''
            import os
            open("visible.txt", "w").write("z")
            try:
                os.chmod("/work", 0)
                print("done")
            except PermissionError:
                print("refused")    # /work is pyexec's when the run has ids of its own
            ''', prelude=False)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"refused\n" if self.run_ids()[2] else b"done\n")
        # the run's own files: the collector, as their owner, still gets them
        self.assertEqual({k: v.data for k, v in r.files.items()}, {"visible.txt": b"z"})
        self.assertNothingLeftNow()

    def test_deep_directory_tree(self):
        r = self.run_script('''
            import os
            open("top.txt", "w").write("top")
            os.mkdir("deep")
            os.chdir("deep")
            for i in range(3000):                 # deeper than PATH_MAX
                os.mkdir("d")
                os.chdir("d")
            open("bottom.txt", "w").write("bottom")
            print("done")
            ''', prelude=False, timeout=60)
        self.assertRan(r)
        self.assertEqual(r.files["top.txt"].data, b"top")
        self.assertNothingLeftNow()

    def test_uploads_are_written_once_into_work(self):
        """The uploads go straight into the run's /work: while the run runs,
        the request's directory in work_root holds none of them."""
        res = {}

        def post():
            res["r"] = self.run_script('''
                import time
                time.sleep(2)
                print(open("data.txt").read(), end="")
                ''', prelude=False, files={"data.txt": b"upload\n"}, timeout=30)

        t = threading.Thread(target=post)
        t.start()
        seen = []   # (request directory, what its work/ holds)
        try:
            started = harness.wait_for(lambda: any(
                "main.py" in harness.proc_table().get(p, {}).get("cmdline", "")
                for p in run_pids(self.s)), 5)
            self.assertTrue(started, "the run never started")
            for name in os.listdir(self.s.work_root):
                work = os.path.join(self.s.work_root, name, "work")
                if os.path.isdir(work):
                    seen.append((name, sorted(os.listdir(work))))
        finally:
            t.join(30)
        self.assertRan(res["r"])
        self.assertEqual(res["r"].stdout, b"upload\n")
        self.assertTrue(seen, "no request directory in work_root during the run")
        self.assertEqual([e for e in seen if e[1]], [], seen)

    def test_concurrent_runs_do_not_see_each_other(self):
        token = "tok-" + os.urandom(8).hex()
        res = {}

        def first():
            res["a"] = self.run_script('''
                import os
                import time
                for p in ("/work/tok.txt", "/tmp/tok.txt", "/dev/shm/tok.txt"):
                    open(p, "w").write(%r)
                time.sleep(2)
                os.unlink("/work/tok.txt")
                print("a done")
                ''' % token, prelude=False, timeout=30)

        t = threading.Thread(target=first)
        t.start()
        try:
            started = harness.wait_for(lambda: any(
                "main.py" in harness.proc_table().get(p, {}).get("cmdline", "")
                for p in run_pids(self.s)), 5)
            self.assertTrue(started, "the first run never started")
            time.sleep(0.3)
            r = self.run_script('''
                hits = []
                for top in ("/work", "/tmp", "/dev/shm", "/run", "/var/tmp"):
                    for dirpath, dirnames, filenames in os.walk(top):
                        for f in filenames:
                            try:
                                if TOKEN in open(os.path.join(dirpath, f), errors="replace").read():
                                    hits.append(os.path.join(dirpath, f))
                            except OSError:
                                pass
                report({"hits": hits, "pids": sorted(int(d) for d in os.listdir("/proc") if d.isdigit())})
                ''', preamble="TOKEN = %r + %r\n" % (token[:8], token[8:]), timeout=30)
        finally:
            t.join(30)
        rep = self.report(r)
        self.assertEqual(rep["hits"], [], rep)
        self.assertLessEqual(len(rep["pids"]), 2, rep)
        self.assertRan(res["a"])
        self.assertEqual(res["a"].stdout, b"a done\n")


# ==================================================================== run ids

def subid_range(path, user):
    """(first, count) of user's first range in path, or None."""
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] == user:
                    return int(parts[1]), int(parts[2])
    except OSError:
        pass
    return None


def why_no_subids(workers):
    """Why the hostile server's runs cannot have ids of their own here
    (None when they must)."""
    if not harness.IS_ROOT:
        return "pyexec is not started as root, and this suite gives ranges only to nobody"
    if not (os.access("/usr/bin/newuidmap", os.X_OK) and os.access("/usr/bin/newgidmap", os.X_OK)):
        return "newuidmap/newgidmap are missing (Debian's uidmap)"
    for path in ("/etc/subuid", "/etc/subgid"):
        r = subid_range(path, "nobody")
        if r is None or r[1] < workers:
            return "nobody has no range of %d ids in %s (./quickstart adds one)" % (workers, path)
    return None


class RunIds(SandboxCase):
    """Each worker's runs have a host uid and gid of their own (pyexec's
    user's subordinate ids): per-user kernel quotas and file permissions
    part them from pyexec and from each other."""

    def setUp(self):
        super().setUp()
        why = why_no_subids(HOSTILE["workers"])
        if why:
            self.skipTest("subordinate ids not available here: " + why)

    def concurrently(self, bodies, timeout=30):
        """Runs the scripts at once (one per worker); their replies."""
        out = [None] * len(bodies)

        def go(i):
            out[i] = self.run_script(bodies[i], timeout=timeout)
        ts = [threading.Thread(target=go, args=(i,)) for i in range(len(bodies))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout + 10)
        return out

    def test_healthz_and_log_say_so(self):
        h = self.s.request("GET", "/healthz").json()
        self.assertEqual(h["run_ids"], "subordinate", h)
        first, count = subid_range("/etc/subuid", "nobody")
        self.assertTrue(first <= h["run_uid"] < first + count, h)
        self.assertIn("runs take subordinate ids", self.s.log_tail(200))

    def test_each_worker_its_own_uid(self):
        nobody = pwd.getpwnam("nobody")
        body = '''
            import time
            time.sleep(1.0)
            report({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()})
            '''
        reps = [self.report(r) for r in self.concurrently([body] * HOSTILE["workers"])]
        uids = {r["uid"] for r in reps}
        self.assertEqual(len(uids), HOSTILE["workers"], reps)
        ufirst, ucount = subid_range("/etc/subuid", "nobody")
        gfirst, gcount = subid_range("/etc/subgid", "nobody")
        for r in reps:
            self.assertTrue(ufirst <= r["uid"] < ufirst + ucount, reps)
            self.assertTrue(gfirst <= r["gid"] < gfirst + gcount, reps)
            self.assertNotIn(r["uid"], (0, nobody.pw_uid), reps)
            self.assertEqual(r["groups"], [], reps)

    def test_private_files_come_back(self):
        r = self.run_script('''
            import os, tempfile
            os.umask(0o077)
            fd, path = tempfile.mkstemp(dir="/work", prefix="tmp-", suffix=".txt")
            os.write(fd, b"mkstemp")
            os.close(fd)
            os.rename(path, "/work/private.txt")
            os.mkdir("/work/closed", 0o700)
            open("/work/closed/inner.txt", "w").write("inner")
            os.chmod("/work/closed/inner.txt", 0o600)
            print("ok")
            ''', prelude=False)
        self.assertRan(r)
        got = {k: v.data for k, v in r.files.items()}
        self.assertEqual(got, {"private.txt": b"mkstemp", "closed/inner.txt": b"inner"},
                         r.describe())
        self.assertNothingLeftNow()

    def test_uploads_writable_and_untouched_ones_not_returned(self):
        r = self.run_script('''
            open("data.txt", "a").write("+new")
            os.mkdir("sub/made")
            open("sub/made/x.txt", "w").write("x")
            report({"keep": open("keep.txt").read()})
            ''', files={"data.txt": b"old", "keep.txt": b"same", "sub/in.txt": b"in"})
        rep = self.report(r)
        self.assertEqual(rep["keep"], "same")
        got = {k: v.data for k, v in r.files.items()}
        self.assertEqual(got, {"data.txt": b"old+new", "sub/made/x.txt": b"x"}, r.describe())

    def test_file_only_pyexec_may_read_is_unreadable(self):
        # a file of pyexec's user, mode 0600, under a path the sandbox binds
        d = tempfile.mkdtemp(prefix="pyexec-e2e-own-", dir="/usr/local/share")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        secret = os.path.join(d, "secret")
        with open(secret, "w") as f:
            f.write("pyexec's own")
        nobody = pwd.getpwnam("nobody")
        os.chown(secret, nobody.pw_uid, nobody.pw_gid)
        os.chmod(secret, 0o600)
        r = self.run_script('''
            report({"read": attempt(lambda: open(PATH).read())})
            ''', preamble="PATH = %r\n" % secret)
        self.assertEqual(self.report(r)["read"], "EACCES", r.describe())

    def test_pipe_quota_of_one_run_does_not_shrink_anothers_pipes(self):
        hog = '''
            import fcntl, time
            F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032
            held, err = [], None
            while len(held) < 200:
                r, w = os.pipe()
                held.append((r, w))
                try:
                    fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
                except OSError as e:
                    err = errno.errorcode[e.errno]
                    break
            r, w = os.pipe()
            small = fcntl.fcntl(w, F_GETPIPE_SZ)
            time.sleep(1.5)
            report({"pipes": len(held), "err": err, "own_new_pipe": small})
            '''
        victim = '''
            import fcntl, time
            time.sleep(0.7)
            r, w = os.pipe()
            report({"size": fcntl.fcntl(w, 1032)})
            '''
        with open("/proc/sys/fs/pipe-user-pages-soft") as f:
            soft = int(f.read())
        if soft == 0 or soft > 150 * 256:
            self.skipTest("pipe-user-pages-soft is %d: 150 pipes of 1 MiB do not exceed it" % soft)
        a, b = self.concurrently([hog, victim])
        hog_rep, victim_rep = self.report(a), self.report(b)
        # the hog went past its quota: its own new pipes shrank
        self.assertEqual(hog_rep["err"], "EPERM", hog_rep)
        self.assertLess(hog_rep["own_new_pipe"], 65536, hog_rep)
        # the victim, another user, keeps the default 64 KiB
        self.assertEqual(victim_rep["size"], 65536, (hog_rep, victim_rep))


# ==================================================================== cache


def _fill_index(ix):
    """The wheels of the Cache tests' package index."""
    ix.add_module("probe-sb-one", "1.0", body="SECRET_ONE = 'one-%s'\n" % os.urandom(4).hex())
    ix.add_module("probe-sb-two", "1.0")


index = pyindex.on_first_use(_fill_index)


class Cache(SandboxCase):
    """The dependency cache: a run sees its own entry read-only at its own
    path, and no other entry."""

    def setUp(self):
        harness.E2ETestCase.setUp(self)
        ix = index()
        self.s = self.server("cache", workers=2, sandbox="namespaces",
                             options=["pip_index_url=" + ix.simple_url])

    def entries(self):
        d = os.path.join(self.s.tmp, "deps")
        return sorted(e for e in os.listdir(d) if re.match(r"^[0-9a-f]{64}$", e))

    def install(self, name):
        before = set(self.entries())
        r = self.s.post_execute({"main.py": script("import %s\n" % name.replace("-", "_"))},
                                query="dependencies=" + urllib.parse.quote(name), timeout=120)
        self.assertRan(r)
        new = sorted(set(self.entries()) - before)
        if r.headers.get("X-Dependencies") == "installed":
            self.assertEqual(len(new), 1, new)
        return r

    def entry_of(self, module):
        d = os.path.join(self.s.tmp, "deps")
        for e in self.entries():
            for dirpath, dirnames, filenames in os.walk(os.path.join(d, e)):
                if module in dirnames:
                    return os.path.join(d, e)
        self.fail("no entry holds %s" % module)

    def test_other_cache_entries_not_readable(self):
        self.install("probe-sb-one")
        self.install("probe-sb-two")
        one = self.entry_of("probe_sb_one")
        two = self.entry_of("probe_sb_two")
        cache = os.path.dirname(one)
        r = self.s.post_execute({"main.py": script(PRELUDE + textwrap.dedent('''
            import probe_sb_two
            rep = {"mine": os.path.dirname(os.path.dirname(probe_sb_two.__file__)),
                   "other": %r, "cache": %r}
            def walk(p):
                return sorted(os.path.relpath(os.path.join(d, f), p)
                              for d, ds, fs in os.walk(p) for f in fs)
            rep["other listing"] = attempt(lambda: os.listdir(rep["other"]))
            rep["other walk"] = walk(rep["other"])
            rep["cache listing"] = None
            try:
                rep["cache listing"] = sorted(os.listdir(rep["cache"]))
            except OSError as e:
                rep["cache error"] = ename(e.errno)
            try:
                import probe_sb_one
                rep["import other"] = "imported"
            except ImportError:
                rep["import other"] = "ImportError"
            report(rep)
            ''' % (one, cache)))}, query="dependencies=probe-sb-two")
        rep = self.report(r)
        self.assertEqual(r.headers.get("X-Dependencies"), "cached")
        self.assertTrue(rep["mine"].startswith(two), rep)
        self.assertEqual(rep["other listing"], "ENOENT", rep)
        self.assertEqual(rep["other walk"], [], rep)
        self.assertEqual(rep["import other"], "ImportError", rep)
        if rep["cache listing"] is not None:
            self.assertEqual(rep["cache listing"], [os.path.basename(two)], rep)
        self.assertNotIn(b"SECRET_ONE", r.body)

    def test_own_cache_entry_read_only(self):
        self.install("probe-sb-two")
        two = self.entry_of("probe_sb_two")
        before = sorted(
            (os.path.relpath(os.path.join(d, f), two), os.lstat(os.path.join(d, f)).st_mtime_ns)
            for d, ds, fs in os.walk(two) for f in ds + fs)
        r = self.s.post_execute({"main.py": script(PRELUDE + textwrap.dedent('''
            import probe_sb_two
            pkg = os.path.dirname(probe_sb_two.__file__)
            top = %r
            rep = {"write": attempt(lambda: open(os.path.join(pkg, "__init__.py"), "a").write("X=1")),
                   "create": attempt(lambda: open(os.path.join(pkg, "evil.py"), "w").write("")),
                   "create top": attempt(lambda: open(os.path.join(top, "evil.pth"), "w").write("")),
                   "chmod": attempt(lambda: os.chmod(pkg, 0o777)),
                   "unlink": attempt(lambda: os.unlink(os.path.join(pkg, "__init__.py"))),
                   "rename": attempt(lambda: os.rename(pkg, pkg + "2")),
                   "rmdir top": attempt(lambda: os.rmdir(top))}
            report(rep)
            ''' % two))}, query="dependencies=probe-sb-two")
        rep = self.report(r)
        worked = [k for k, v in rep.items() if v is None]
        self.assertEqual(worked, [], rep)
        self.assertEqual(set(rep.values()) - {"EROFS", "EACCES", "EPERM", "ENOTEMPTY", "EBUSY"},
                         set(), rep)
        after = sorted(
            (os.path.relpath(os.path.join(d, f), two), os.lstat(os.path.join(d, f)).st_mtime_ns)
            for d, ds, fs in os.walk(two) for f in ds + fs)
        self.assertEqual(after, before)


# ==================================================================== numpy, layers

class Defaults(SandboxCase):
    SERVER = ("defaults", DEFAULTS)

    def test_import_numpy_under_default_limits(self):
        if subprocess.run(["/usr/bin/python3", "-c", "import numpy"],
                          stderr=subprocess.DEVNULL).returncode != 0:
            self.skipTest("numpy is not installed for /usr/bin/python3 (python3-numpy)")
        r = self.run_script('''
            import numpy as np
            a = np.arange(1000000, dtype=np.float64)
            report({"version": np.__version__, "sum": float(a.sum()),
                    "det": round(float(np.linalg.det(np.eye(3) * 2)), 6)})
            ''', timeout=30)
        rep = self.report(r)
        self.assertEqual(rep["sum"], 499999500000.0, rep)
        self.assertEqual(rep["det"], 8.0, rep)

    def test_healthz_and_log_say_namespaces(self):
        h = self.s.request("GET", "/healthz").json()
        self.assertEqual(h["sandbox"], "namespaces", h)
        enforced = h.get("enforced")
        self.assertIsInstance(enforced, dict, h)
        self.assertIn("none", enforced.get("network", ""), h)
        log = harness._read(self.s.pyexec_log).decode("utf-8", "replace")
        self.assertRegex(log, r"sandbox layer: namespaces")


class RefusedServeNoProgram(SandboxCase):
    """Calls no Python program needs: watching files (inotify on the
    read-only binds, the host's inodes, would show which files a concurrent
    run opens), modify_ldt, memfd_secret, and setting a personality."""

    @needs_x86_64
    def test_inotify_modify_ldt_memfd_secret_personality(self):
        r = self.run_script('''
            buf = ctypes.create_string_buffer(64)
            rep = {"inotify_init": sc(253), "inotify_init1": sc(294, 0),
                   "fanotify_init": sc(300, 0, 0),
                   "modify_ldt": sc(154, 0, ctypes.addressof(buf), 64),
                   "memfd_secret": sc(447, 0),
                   "personality_query": libc.syscall(135, ctypes.c_long(0xffffffff)),
                   "personality_linux": sc(135, 0),
                   "read_implies_exec": sc(135, 0x0400000),
                   "addr_no_randomize": sc(135, 0x0040000),
                   "linux32": sc(135, 0x0008)}
            # through glibc's wrapper, as a watching library would
            ctypes.set_errno(0)
            rep["watch"] = None if libc.inotify_init1(0) >= 0 else ename(ctypes.get_errno())
            rep["persona_after"] = libc.syscall(135, ctypes.c_long(0xffffffff))
            report(rep)
            ''')
        rep = self.report(r)
        for name in ("inotify_init", "inotify_init1", "fanotify_init", "modify_ldt",
                     "memfd_secret", "read_implies_exec", "addr_no_randomize", "linux32",
                     "watch"):
            self.assertEqual(rep[name], "EPERM", "%s: %r" % (name, rep))
        self.assertEqual(rep["personality_query"], 0, rep)
        self.assertIsNone(rep["personality_linux"], rep)
        self.assertEqual(rep["persona_after"], 0, rep)


class MemoryWithoutCgroup(SandboxCase):
    """Without a memory cgroup, memory is RLIMIT_AS per process, which does
    not count the pages of a memfd filled with write(2): memfd_create is
    refused, and the run cannot hold more than ?memory= that way."""

    SERVER = ("nocgroup", dict(workers=1, sandbox="namespaces", options=["cgroup=no"]))

    def test_memfd_growth_under_memory_32_is_refused(self):
        r = self.run_script('''
            import resource
            held, fds, err = 0, [], None
            # 4 MiB: well inside RLIMIT_AS of 32 MiB, whichever start the
            # interpreter had (a warm one maps libpython as a library)
            chunk = b"x" * (4 << 20)
            try:
                while held < (1536 << 20):
                    fd = os.memfd_create("grow")
                    fds.append(fd)
                    for _ in range(16):
                        os.write(fd, chunk)
                        held += len(chunk)
            except OSError as e:
                err = ename(e.errno)
            report({"held": held, "memfds": len(fds), "error": err,
                    "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
            ''', query="memory=32", timeout=60)
        rep = self.report(r)
        self.assertEqual(rep["error"], "ENOSYS", rep)
        self.assertEqual(rep["held"], 0, rep)
        self.assertEqual(rep["memfds"], 0, rep)
        self.assertLess(int(r.headers["X-Max-RSS"]), 64 * 1024, r.describe())

    def test_healthz_says_memfd_refused(self):
        h = self.s.request("GET", "/healthz").json()
        self.assertIsNone(h["cgroup"], h)
        self.assertEqual(h["enforced"]["memory"], "RLIMIT_AS", h)
        self.assertEqual(h["enforced"]["memfd"], "refused", h)
        log = harness._read(self.s.pyexec_log).decode("utf-8", "replace")
        self.assertRegex(log, r"sandbox layer: namespaces .*memfd_create refused")



# What a run imports: each top-level package of the system's dist-packages,
# each in a forked child of its own (so that one import's side effects do
# not decide another's), reported as one JSON line: {name: null | error}.
IMPORT_EACH = r"""
import json, os, signal, sys
NAMES = %r
rep = {}
for name in NAMES:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        signal.alarm(30)
        try:
            __import__(name)
            msg = b""
        except BaseException as e:
            msg = ("%%s: %%s" %% (type(e).__name__, e)).encode("utf-8", "replace")[:300] or b"?"
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read()
    _, st = os.waitpid(pid, 0)
    if st != 0:
        msg = msg or ("wait status %%d" %% st).encode()
    rep[name] = msg.decode("utf-8", "replace") or None
print(json.dumps(rep, sort_keys=True), flush=True)
"""


def dist_packages_names(top="/usr/lib/python3/dist-packages"):
    """The top-level importable names under the system's dist-packages."""
    names = set()
    for entry in os.listdir(top):
        path = os.path.join(top, entry)
        if os.path.isdir(path):
            name = entry
        elif entry.endswith(".py"):
            name = entry[:-3]
        elif entry.endswith(".so"):
            name = entry.split(".", 1)[0]
        else:
            continue
        if name.isidentifier() and name != "__pycache__":
            names.add(name)
    return sorted(names)


class SystemPackages(SandboxCase):
    """Every package the host's Python imports, a run imports too: the
    view of /etc and of the system covers what they read."""

    SERVER = ("defaults", DEFAULTS)

    def test_every_dist_package_imports_as_outside(self):
        top = "/usr/lib/python3/dist-packages"
        if not os.path.isdir(top):
            self.skipTest("no %s (not a Debian-like Python)" % top)
        names = dist_packages_names(top)
        code = IMPORT_EACH % (names,)
        tmp = tempfile.mkdtemp(prefix="pyexec-imports-")
        self.addCleanup(shutil.rmtree, tmp, True)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": tmp,
               "TMPDIR": tmp, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
        out = subprocess.run(["/usr/bin/python3", "-s", "-B", "-c", code], env=env, cwd=tmp,
                             stdout=subprocess.PIPE, timeout=300, check=True).stdout
        outside = json.loads(out.decode().splitlines()[-1])
        # two runs, so that each stays well inside the time limit
        inside = {}
        half = (len(names) + 1) // 2
        for part in (names[:half], names[half:]):
            r = self.run_script(IMPORT_EACH % (part,), prelude=False,
                                query="timeout=60", timeout=120)
            inside.update(self.report(r))
        self.assertEqual(sorted(inside), names)
        differ = {n: {"outside": outside[n], "inside": inside[n]} for n in names
                  if (outside[n] is None) != (inside[n] is None)}
        self.assertEqual(differ, {}, "imports that differ in a run")
        self.assertGreater(sum(v is None for v in inside.values()), 0, inside)

    def test_chart_with_matplotlib_and_pandas_is_a_png(self):
        for mod in ("matplotlib", "pandas"):
            if subprocess.run(["/usr/bin/python3", "-c", "import " + mod],
                              stderr=subprocess.DEVNULL).returncode != 0:
                self.skipTest("%s is not installed for /usr/bin/python3 (python3-%s)"
                              % (mod, mod))
        r = self.run_script('''
            import os
            import pandas as pd
            import matplotlib
            import matplotlib.pyplot as plt
            df = pd.DataFrame({"x": range(10), "y": [v * v for v in range(10)]})
            ax = df.plot(x="x", y="y", title="squares")
            ax.figure.savefig(os.path.join(os.environ["OUTPUT_DIR"], "chart.png"), dpi=50)
            report({"backend": matplotlib.get_backend(), "home": os.environ["HOME"],
                    "configdir": matplotlib.get_configdir()})
            ''', prelude=False, preamble="import json\ndef report(o): print(json.dumps(o))\n",
            query="timeout=60", timeout=120)
        rep = self.report(r)
        # pyexec's backend: Agg, whose show() saves the figures (README)
        self.assertEqual(rep["backend"], "module://pyexec_figures", rep)
        # a writable config directory in the run's own /tmp
        self.assertTrue(rep["configdir"].startswith("/tmp"), rep)
        png = r.files.get("chart.png")
        self.assertIsNotNone(png, r.describe())
        ctype, data = png.content_type, png.data
        self.assertEqual(ctype, "image/png", r.describe())
        self.assertTrue(data.startswith(b"\x89PNG\r\n\x1a\n"), data[:16])
        self.assertGreater(len(data), 1000)
        self.assertNotIn(b"Matplotlib", r.stderr, r.describe())


class SandboxEtc(SandboxCase):
    """sandbox_etc adds entries of the host's /etc to the defaults."""

    SERVER = ("sandbox-etc", dict(workers=1, sandbox="namespaces",
                                  options=["sandbox_etc=/etc/nsswitch.conf, /etc/debian_version"]))

    def test_entries_added_to_the_defaults(self):
        r = self.run_script('''
            rep = {}
            for p in ("/etc/nsswitch.conf", "/etc/debian_version", "/etc/ld.so.cache",
                      "/etc/shadow"):
                rep[p] = attempt(lambda: open(p, "rb").read())
            report(rep)
            ''')
        rep = self.report(r)
        for p in ("/etc/nsswitch.conf", "/etc/debian_version"):
            self.assertEqual(rep[p], None if os.path.exists(p) else "ENOENT", rep)
        self.assertIsNone(rep["/etc/ld.so.cache"], rep)
        self.assertEqual(rep["/etc/shadow"], "ENOENT", rep)

    def test_reload_applies_to_new_workers(self):
        for p in ("/etc/nsswitch.conf", "/etc/debian_version"):
            if not os.path.exists(p):
                self.skipTest("the host has no %s to show" % p)
        s = self.private_server(name="sandbox-etc-reload", workers=1, sandbox="namespaces",
                                conf_text="sandbox_etc = /etc/nsswitch.conf\n")
        probe = {"main.py": script("import os\nprint(os.path.exists('/etc/nsswitch.conf'),"
                                   " os.path.exists('/etc/debian_version'))\n")}
        r = s.post_execute(probe)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"True False\n")
        old = set(s.worker_pids())
        s.mark_log()
        with open(s.conf, "w") as f:
            f.write("sandbox_etc = /etc/debian_version\n")
        s.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_for(lambda: "reload: configuration reread" in
                                         s.log_since_mark(), 5), s.log_tail())
        self.assertTrue(harness.wait_for(lambda: len(s.worker_pids()) == 1 and
                                         not (set(s.worker_pids()) & old), 10), s.log_tail())
        r = s.post_execute(probe)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"False True\n")


@harness.unittest.skipUnless(harness.IS_ROOT, "needs root to write below /usr/local")
class OwnFiles(harness.E2ETestCase):
    """pyexec's configuration and tokens are not visible to a run, even
    installed below /usr, which runs see: /usr/local/etc is masked, and so
    is each configured path a bind shows (a file reads empty)."""

    def test_conf_and_tokens_below_usr_not_readable(self):
        etc = tempfile.mkdtemp(prefix="pyexec-e2e-", dir="/usr/local/etc")
        share = tempfile.mkdtemp(prefix="pyexec-e2e-", dir="/usr/local/share")
        self.addCleanup(shutil.rmtree, etc, True)
        self.addCleanup(shutil.rmtree, share, True)
        token = "tok-" + os.urandom(12).hex()
        secret = "conf-s3cr3t-" + os.urandom(8).hex()
        conf = os.path.join(etc, "pyexec.conf")
        tokens = os.path.join(share, "tokens")
        with open(conf, "w") as f:
            f.write("# %s\ntokens_file = %s\n" % (secret, tokens))
        with open(tokens, "w") as f:
            f.write(token + "\n")
        for p in (etc, share):
            os.chmod(p, 0o755)
        os.chmod(tokens, 0o644)

        def use_conf(server):
            server.conf = conf

        s = self.private_server(name="ownfiles", workers=1, sandbox="namespaces",
                                before_start=use_conf)
        body = '''
            import json, os
            rep = {}
            for p in %r:
                try:
                    rep[p] = sorted(os.listdir(p)) if os.path.isdir(p) else open(p).read()
                except OSError as e:
                    rep[p] = e.strerror
            print(json.dumps(rep))
            ''' % ([conf, tokens, etc, share, "/usr/local/etc"],)
        r = s.post_execute({"main.py": script(textwrap.dedent(body))},
                           headers={"Authorization": "Bearer " + token})
        self.assertRan(r)
        rep = json.loads(r.stdout.decode().splitlines()[-1])
        self.assertEqual(rep["/usr/local/etc"], [], rep)
        self.assertEqual(rep[conf], "No such file or directory", rep)
        self.assertEqual(rep[tokens], "", rep)
        self.assertNotIn(token.encode(), r.body)
        self.assertNotIn(secret.encode(), r.body)
        # the token works, so the tokens file was the one pyexec read
        r = s.post_execute({"main.py": script("print(1)\n")})
        self.assertStatus(r, 401)


class Rlimits(harness.E2ETestCase):
    """sandbox = rlimits forces the weaker layer: said in healthz and in the
    start-up log, and programs still run."""

    def test_forkserver_sockets_fit_in_tmpdir(self):
        """TMPDIR is short whatever work_root is (the harness's is long), so
        multiprocessing's forkserver can bind its AF_UNIX socket there; the
        directory goes with the request."""
        # (room for every process of nobody, RLIMIT_NPROC's count here)
        s = self.private_server(name="rlimits-forkserver-with-a-long-name", workers=1,
                                sandbox="rlimits", options=["max_processes=4096"])
        self.assertGreater(len(s.work_root), 40, s.work_root)
        r = s.post_execute({"main.py": script('''
            import multiprocessing as mp, os, stat
            def square(x):
                return x * x
            if __name__ == "__main__":
                st = os.stat(os.environ["TMPDIR"])
                print(os.environ["TMPDIR"], oct(stat.S_IMODE(st.st_mode)), st.st_uid == os.getuid())
                mp.set_start_method("forkserver")
                with mp.Pool(2) as p:
                    print(p.map(square, range(5)))
            ''')}, timeout=60)
        self.assertRan(r)
        first, squares = r.stdout.decode().splitlines()
        tmp, mode, own = first.split(" ")
        self.assertRegex(tmp, r"^/tmp/pyexec-[A-Za-z0-9]{6}$")
        self.assertEqual((mode, own), ("0o700", "True"))
        self.assertEqual(squares, "[0, 1, 4, 9, 16]", r.describe())
        self.assertTrue(harness.wait_for(lambda: not os.path.exists(tmp), 5, 0.05),
                        "%s left after the request" % tmp)

    def test_rlimits_layer_forced(self):
        s = self.private_server(name="rlimits", workers=1, sandbox="rlimits")
        h = s.request("GET", "/healthz").json()
        self.assertEqual(h["sandbox"], "rlimits", h)
        if "enforced" in h:
            self.assertNotIn("none (own namespace)", json.dumps(h["enforced"]), h)
        r = s.post_execute({"main.py": script('''
            import os
            print("ran", os.environ["OUTPUT_DIR"] == os.getcwd())
            ''')})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"ran True\n")
        log = harness._read(s.pyexec_log).decode("utf-8", "replace")
        lines = [l for l in log.splitlines() if "sandbox layer: rlimits" in l]
        self.assertEqual(len(lines), 1, log)
        # it says what it does not protect
        self.assertRegex(lines[0], r"no namespaces")
        self.assertRegex(lines[0], r"host's files")
        self.assertRegex(lines[0], r"network")
        self.assertNotIn("sandbox layer: namespaces", log)


# ==================================================================== start-up

# Runs argv[1:] as nobody inside a user namespace of its own (the whole
# uid/gid range mapped to itself), whose user.max_user_namespaces is
# $PYEXEC_TEST_USERNS_MAX when set: with 0, no user namespace can be made
# below it, as on a host that forbids them, without touching the host's
# setting. Needs root.
USERNS_WRAPPER = textwrap.dedent("""
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        for f in ("uid_map", "gid_map"):
            with open("/proc/%d/%s" % (os.getppid(), f), "w") as fh:
                fh.write("0 0 4294967295\\n")
        os._exit(0)
    os.close(r)
    if libc.unshare(0x10000000) != 0:
        sys.exit("unshare(CLONE_NEWUSER): " + os.strerror(ctypes.get_errno()))
    os.write(w, b"x")
    os.close(w)
    _, st = os.waitpid(pid, 0)
    if st != 0:
        sys.exit("cannot write the maps")
    limit = os.environ.pop("PYEXEC_TEST_USERNS_MAX", None)
    if limit is not None:
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write(limit)
    nobody = int(os.environ.pop("PYEXEC_TEST_NOBODY"))
    os.setgroups([])
    os.setresgid(nobody, nobody, nobody)
    os.setresuid(nobody, nobody, nobody)
    os.execv(sys.argv[1], sys.argv[1:])
    """)


def set_userns_max(pid, value):
    """Sets user.max_user_namespaces in the user namespace of pid."""
    code = ("import ctypes, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "fd = os.open('/proc/%d/ns/user', os.O_RDONLY)\n"
            "if libc.setns(fd, 0x10000000) != 0:\n"
            "    raise SystemExit('setns: ' + os.strerror(ctypes.get_errno()))\n"
            "open('/proc/sys/user/max_user_namespaces', 'w').write('%d')\n" % (pid, value))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=10)


class UsernsServer(harness.Server):
    """pyexec-fcgi started as nobody (no privilege drop of its own) inside
    USERNS_WRAPPER's namespace."""

    def __init__(self, userns_max=None, **kw):
        nobody = pwd.getpwnam("nobody")
        env = dict(kw.pop("env", {}) or {})
        env["PYEXEC_TEST_NOBODY"] = str(nobody.pw_uid)
        if userns_max is not None:
            env["PYEXEC_TEST_USERNS_MAX"] = str(userns_max)

        def own_dir(srv):
            # pyexec runs as nobody from the start: its directory is nobody's,
            # and so is a copy of the binary (the build tree may be a 0700
            # directory nobody cannot reach, as a fresh mktemp clone is)
            os.chown(srv.tmp, nobody.pw_uid, nobody.pw_gid)
            shutil.copy2(harness.pyexec_path(), srv.binary_copy)
            os.chmod(srv.binary_copy, 0o755)
        super().__init__(env=env, before_start=own_dir, **kw)

    @property
    def binary_copy(self):
        return os.path.join(self.tmp, "pyexec-fcgi")

    @property
    def binary(self):
        return self.binary_copy

    def pyexec_argv(self):
        return [sys.executable, "-c", USERNS_WRAPPER] + super().pyexec_argv()


def needs_root(fn):
    return harness.unittest.skipUnless(
        harness.IS_ROOT, "a user namespace with the whole uid range needs root")(fn)


class StartUp(harness.E2ETestCase):
    """What the operator sees when user namespaces cannot be had: auto falls
    back and says so, namespaces refuses to start naming the cause and the
    fix, and a set-up failure at request time is a 503."""

    def private_userns_server(self, **kw):
        s = UsernsServer(**kw)
        self.use(s)
        self.addCleanup(lambda: (s.stop(), s.cleanup_dir()))
        return s

    @needs_root
    def test_namespaces_refuses_to_start_without_userns(self):
        s = UsernsServer(name="refuse", userns_max=0, workers=1, sandbox="namespaces")
        self.addCleanup(s.cleanup_dir)
        with self.assertRaises(harness.ServerError) as cm:
            s.start()
        s.stop()
        out = str(cm.exception)
        self.assertRegex(out, r"exited with [1-9]", out)
        self.assertIn("No space left on device", out)             # the errno
        self.assertIn("user.max_user_namespaces", out)           # the fix
        self.assertNotIn("listening", out)

    @needs_root
    def test_auto_falls_back_to_rlimits_and_says_so(self):
        s = self.private_userns_server(name="fallback", userns_max=0, workers=1, sandbox="auto")
        h = s.request("GET", "/healthz").json()
        self.assertEqual(h["sandbox"], "rlimits", h)
        log = harness._read(s.pyexec_log).decode("utf-8", "replace")
        self.assertIn("No space left on device", log)
        self.assertIn("user.max_user_namespaces", log)
        self.assertRegex(log, r"sandbox = auto: falling back to the rlimits layer")
        self.assertRegex(log, r"sandbox layer: rlimits .*no namespaces")
        r = s.post_execute({"main.py": script('print("ran anyway")\n')})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"ran anyway\n")

    def assertSharesIds(self, s, why_re):
        """s's runs share pyexec's uid, and its log and /healthz say so."""
        h = s.request("GET", "/healthz").json()
        self.assertEqual(h["run_ids"], "shared", h)
        log = harness._read(s.pyexec_log).decode("utf-8", "replace")
        self.assertRegex(log, why_re)
        r = s.post_execute({"main.py": script('import os\nprint(os.getuid())\n')})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"%d\n" % h["run_uid"])

    def test_subordinate_ids_turned_off(self):
        s = self.private_server(name="sharedids", workers=1, sandbox="namespaces",
                                options=["subordinate_ids=no"])
        self.assertSharesIds(s, r"subordinate_ids = no: runs share pyexec's uid \d+")

    @needs_root
    def test_user_without_a_range_shares_and_says_so(self):
        daemon = pwd.getpwnam("daemon")
        if subid_range("/etc/subuid", "daemon"):
            self.skipTest("daemon has a range in /etc/subuid here")
        s = self.private_server(name="norange", workers=1, sandbox="namespaces",
                                options=["user=daemon", "group=nogroup"])
        self.assertSharesIds(s, r"runs share pyexec's uid %d: daemon has no range of 1 ids "
                             r"in /etc/subuid and /etc/subgid .*usermod --add-subuids"
                             % daemon.pw_uid)

    @needs_root
    def test_setup_failure_is_503_sandbox_unavailable(self):
        s = self.private_userns_server(name="setupfail", workers=1, sandbox="namespaces")
        hello = {"main.py": script('print("hello")\n')}
        self.assertRan(s.post_execute(hello))
        set_userns_max(s.proc.pid, 0)
        try:
            r = s.post_execute(hello)
            if r.status == 200:
                # The sandbox the worker made for its next request before
                # the limit came served this one; the next has none.
                self.assertEqual(r.stdout, b"hello\n")
                r = s.post_execute(hello)
        finally:
            set_userns_max(s.proc.pid, 1000)
        doc = self.assertError(r, 503)
        self.assertEqual(doc["error"], "sandbox_unavailable", r.describe())
        rid = r.headers.get("X-Request-Id")
        log = s.log_since_mark()
        self.assertRegex(log, r"request %s: sandbox: .*No space left on device" % re.escape(rid), log)
        # and the next run, once namespaces can be made again, works
        r = s.post_execute(hello)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")


# The hostile suite again, with runs sharing pyexec's uid (subordinate_ids = no,
# as on a host without ranges in /etc/subuid): what holds there must hold too.
HOSTILE_SHARED = dict(HOSTILE, options=HOSTILE["options"] + ["subordinate_ids=no"])
# (Tests of the rlimits layer, which has no run ids, are not repeated.)
for _case in (Limits, Disk, Reading, Writing, Network, Syscalls, Exec, Results):
    _attrs = {name: None for name in dir(_case)
              if name.startswith("test_") and "_under_rlimits" in name}
    _attrs.update(SERVER=("hostile-shared", HOSTILE_SHARED),
                  __doc__=(_case.__doc__ or "") + " (runs share pyexec's uid)")
    globals()["Shared" + _case.__name__] = type("Shared" + _case.__name__, (_case,), _attrs)
del _case, _attrs


if __name__ == "__main__":
    harness.main()
