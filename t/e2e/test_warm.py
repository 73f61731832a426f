"""End-to-end: a warm start (warm = yes) cannot be told from a cold one.

Two servers behind nginx: A with warm = no, whose runs start as a fresh
`python -s -B main.py`, and B with warm = yes, whose runs are forked from a
worker's zygote. Every probe of the corpus runs on both, and what a client
sees of the two runs must be the same bytes: stdout, stderr, the exit
status (X-Execution-Status, X-Exit-Code, X-Signal) and the generated files.
A probe prints what it inspects; it normalises a value in place only where
the value is per-run by nature (an inode, an address), and says why there.
Each probe also states the outcome it is written for (exit code or signal,
text it prints), checked on A, so a probe that broke by itself is seen.

Then B alone: nothing random repeats across 50 warm runs, no state one run
leaves is seen by another, and every reply says how the run was started
(X-Execution-Start). When B's /healthz says "warm":"off", every test of B
skips with the reason /healthz gives (warm_why).

The same again with a dependency set (DifferentialSet, FreshnessSet):
every run names the set, served by a package index on loopback
(t/pyindex.py), and B runs it in the set's own zygote: a package with a
.pth file, packages whose import prints or writes a file (so they are not
preloaded), a package that shadows a standard module, and one that is
preloaded. Each of B's runs of the set must say it started warm.

$PYEXEC_TEST_WARM=cold, a development aid: both servers start with
warm = no, the /healthz skip and the X-Execution-Start test are bypassed,
and the comparisons run cold against cold, which shows the corpus itself
is deterministic.
"""

import base64
import json
import os
import re
import subprocess
import sys
import threading
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import pyindex  # noqa: E402
from harness import script  # noqa: E402

COLD_ONLY = os.environ.get("PYEXEC_TEST_WARM") == "cold"
if os.environ.get("PYEXEC_TEST_WARM") not in (None, "", "cold"):
    sys.exit("PYEXEC_TEST_WARM: only \"cold\" is known")

COLD = dict(workers=2, options=["warm=no"])
WARM = dict(workers=2, options=["warm=no"] if COLD_ONLY else ["warm=yes"])
FRESH_RUNS = 50
# Server C: warm, with modules preloaded (README "Warm start"): json, and
# numpy where the system's python has it.
HAVE_NUMPY = subprocess.run([os.environ.get("TEST_PYTHON", "/usr/bin/python3"), "-c",
                             "import numpy"], capture_output=True).returncode == 0
PRELOAD = "json,numpy" if HAVE_NUMPY else "json"
PRELOADED = dict(workers=2, options=["warm=no"] if COLD_ONLY
                 else ["warm=yes", "warm_preload=" + PRELOAD])


# The dependency set of DifferentialSet and FreshnessSet.
SET = "diff-pth,diff-printer,diff-writer,diff-plain"


def _fill_index(ix):
    """The wheels of the set."""
    # its .pth file runs in site; its colorsys shadows the standard one
    ix.add(pyindex.build_wheel(ix.dir, "diff-pth", "1.0", {
        "diff_pth/__init__.py": "VERSION = '1.0'\n",
        "diff_pth.pth": "import os; os.environ['DIFF_PTH'] = 'ran'\n",
        "colorsys.py": "WHERE = 'the set'\n",
    }))
    # imports that print and that write a file: not preloaded
    ix.add_module("diff-printer", "1.0", body="print('diff_printer imported')\n")
    ix.add_module("diff-writer", "1.0", body=(
        "with open('written-by-import.txt', 'w') as f:\n"
        "    f.write('diff_writer imported\\n')\n"))
    ix.add_module("diff-plain", "1.0", body="TABLE = {'a': 1}\n")


index = pyindex.on_first_use(_fill_index)


def set_kind(kind):
    """kind, for servers that install the set from index() (and keep a
    set's zygote for the whole run: no refresh in the middle of a test)."""
    options = kind["options"] + ["pip_index_url=" + index().simple_url, "pip_only_binary=yes"]
    if "warm=yes" in options:
        options += ["warm_deps_after=1", "warm_runs=100000", "warm_seconds=86400"]
    return dict(kind, workers=1 if "warm=yes" in options else kind["workers"],
                options=options)


def with_set(query):
    return "&".join(x for x in ("dependencies=" + SET, query) if x)


def cold_server(test):
    return test.server("warm-a", **COLD)


def warm_server(test, name="warm-b", kind=WARM):
    """Server B (or C), or a skip saying why its warm start is off."""
    s = test.server(name, **kind)
    if not COLD_ONLY:
        doc = s.request("GET", "/healthz").json()
        test.assertIn(doc.get("warm"), ("on", "off"), doc)
        if doc["warm"] == "off":
            test.assertTrue(doc.get("warm_why"), doc)
            test.skipTest("warm start is off: %s" % doc["warm_why"])
    return s


def normalize(outcome, reply, server):
    """On the rlimits layer a run's work directory and its TMPDIR are
    paths of the request's own (README), per-run by nature: they are put
    as <work> and <tmp> wherever they show."""
    work = re.compile(re.escape(server.work_root.encode()) + rb"/[^/\s'\"]+")
    # each server has a dependency cache of its own in its directory: the
    # cache's path is <deps>, and the directory's name (which a run of a
    # set sees in /tmp, where the namespace layer binds the set's entry at
    # its path) is <server>
    deps = os.path.join(server.tmp, "deps").encode()
    name = os.path.basename(server.tmp).encode()

    def fix(data):
        data = work.sub(b"<work>", data).replace(deps, b"<deps>").replace(name, b"<server>")
        return re.sub(rb"/tmp/pyexec-[A-Za-z0-9_]{6}", b"<tmp>", data)
    out = dict(outcome)
    if "body" in out:
        # the JSON form: wall and CPU time and peak memory are the run's own;
        # "start" says warm or cold (ExecutionStart tests it)
        doc = json.loads(out["body"])
        for key in ("time", "max_rss_kib", "start"):
            doc.pop(key, None)
        out["body"] = json.dumps(doc, indent=1).encode()
    for key in ("stdout", "stderr", "body"):
        if key in out:
            out[key] = fix(out[key])
    if "files" in out:
        out["files"] = {n: (t, fix(d)) for n, (t, d) in out["files"].items()}
    return out


# ---------------------------------------------------------------- corpus

class Probe:
    """A run: files ({name: bytes}, main.py first), stdin, query, and the
    outcome it is written for: X-Execution-Status, exit code (or signal
    name) and text its stdout and stderr hold."""

    def __init__(self, name, files, exit=0, signal=None, stdout=(), stderr=(), stdin=None,
                 status=None, query=None):
        self.name = name
        self.files = files if isinstance(files, dict) else {"main.py": files}
        self.exit = None if signal else exit
        self.signal = signal
        self.status = status or ("killed" if signal else "ok" if exit == 0 else "error")
        self.query = query
        self.stdout = [stdout] if isinstance(stdout, str) else list(stdout)
        self.stderr = [stderr] if isinstance(stderr, str) else list(stderr)
        self.stdin = stdin


CORPUS = []


def probe(*args, **kwargs):
    CORPUS.append(Probe(*args, **kwargs))


probe("main_identity", script('''
    names = sorted(dir())       # before any import adds to it
    import sys
    print("dir() at start:", names)
    print("__name__:", repr(__name__))
    print("__file__:", repr(__file__))
    print("__spec__:", repr(__spec__))
    print("__loader__:", type(__loader__).__module__, type(__loader__).__qualname__)
    print("__loader__.name:", getattr(__loader__, "name", None),
          "path:", getattr(__loader__, "path", None))
    print("__builtins__:", repr(__builtins__))
    print("__package__:", repr(__package__))
    print("__cached__ present:", "__cached__" in globals(), repr(globals().get("__cached__")))
    print("__doc__:", repr(__doc__))
    print("__annotations__:", repr(__annotations__))
    print("__main__ is this module:", sys.modules["__main__"].__dict__ is globals())
    print("frame f_back:", sys._getframe().f_back)
    import inspect
    stack = inspect.stack()
    print("stack depth:", len(stack))
    for f in stack:
        print("  frame:", f.filename, f.function, f.lineno)
    import builtins
    print("builtins:", sorted(vars(builtins)))
    print("dir() at end:", sorted(dir()))
    '''), stdout=["__name__: '__main__'", "stack depth: 1"])

probe("sys_state", script('''
    import sys
    modules = sorted(sys.modules)   # before this probe's own imports
    print("sys.argv:", sys.argv)
    print("sys.orig_argv:", sys.orig_argv)
    print("sys.path:", sys.path)
    print("sys.flags:", sys.flags)
    print("sys.modules:", modules)
    print("sys.meta_path:", [type(f).__module__ + "." + type(f).__qualname__
                             if not isinstance(f, type) else f.__module__ + "." + f.__qualname__
                             for f in sys.meta_path])
    # a path hook is a function or class: its name, not its repr, which
    # holds an address
    print("sys.path_hooks:", [getattr(h, "__module__", "?") + "." + h.__qualname__
                              for h in sys.path_hooks])
    for name in ("executable", "_base_executable", "prefix", "base_prefix", "exec_prefix",
                 "base_exec_prefix", "platlibdir", "pycache_prefix", "dont_write_bytecode",
                 "warnoptions", "_xoptions"):
        print("sys.%s:" % name, repr(getattr(sys, name, "<absent>")))
    print("hooks are the defaults:", sys.excepthook is sys.__excepthook__,
          sys.displayhook is sys.__displayhook__, sys.breakpointhook is sys.__breakpointhook__,
          sys.unraisablehook is sys.__unraisablehook__)
    print("trace, profile:", sys.gettrace(), sys.getprofile())
    print("recursion limit:", sys.getrecursionlimit())
    print("switch interval:", sys.getswitchinterval())
    print("int max str digits:", sys.get_int_max_str_digits())
    print("dlopen flags:", sys.getdlopenflags())
    import gc
    print("gc:", gc.isenabled(), gc.get_threshold())
    import warnings
    print("warnings.filters:", warnings.filters)
    import threading
    print("threads:", [t.name for t in threading.enumerate()],
          threading.main_thread() is threading.current_thread())
    '''), stdout="sys.orig_argv:")

probe("text_and_streams", script('''
    import locale, sys, time
    print("default encoding:", sys.getdefaultencoding())
    print("filesystem encoding:", sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
    print("preferred encoding:", locale.getpreferredencoding(False))
    print("LC_CTYPE:", locale.setlocale(locale.LC_CTYPE), "LC_ALL:", locale.setlocale(locale.LC_ALL))
    print("tzname:", time.tzname, time.timezone)
    for name in ("stdin", "stdout", "stderr"):
        f = getattr(sys, name)
        print(name, f.fileno(), f.encoding, f.errors, f.line_buffering, f.write_through,
              type(f.buffer).__name__, getattr(f.buffer, "mode", None), f.isatty(),
              f.seekable(), f is getattr(sys, "__%s__" % name))
    print("stdin:", repr(sys.stdin.read()))
    print("caf\\u00e9 \\u2603")
    print("stderr: caf\\u00e9", file=sys.stderr)
    '''), stdout="stdin: ''")

probe("stdin_pipe", script('''
    import sys
    print("seekable:", sys.stdin.seekable(), "isatty:", sys.stdin.isatty())
    print("read:", repr(sys.stdin.read()))
    print("buffer:", repr(sys.stdin.buffer.read()))
    '''), stdin=b"line one\nline two caf\xc3\xa9\n", stdout="seekable: False")

probe("process_state", script('''
    import fcntl, os, re, resource, signal
    for s in sorted(signal.valid_signals()):
        try:
            name = signal.Signals(s).name
        except ValueError:
            name = str(int(s))
        print("signal", name, repr(signal.getsignal(s)))
    print("blocked:", sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])))
    with open("/proc/self/status") as f:
        for line in f:
            # not SigQ: it counts the signals queued to every process of the user
            if line.startswith(("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "Cap",
                                "NoNewPrivs", "Seccomp", "Umask")):
                print("status", line.rstrip())
    for fd in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except FileNotFoundError:
            continue        # the directory listdir read, closed since
        # a pipe's or socket's inode is per-run: its kind is what shows
        target = re.sub(r"^(pipe|socket):\\[\\d+\\]$", r"\\1", target)
        fl = fcntl.fcntl(int(fd), fcntl.F_GETFL)
        print("fd", fd, target, "cloexec" if fcntl.fcntl(int(fd), fcntl.F_GETFD) else "-",
              oct(fl & ~os.O_LARGEFILE))
    mask = os.umask(0o22)
    os.umask(mask)
    print("umask:", oct(mask))
    for name in sorted(n for n in dir(resource) if n.startswith("RLIMIT_")):
        print(name, resource.getrlimit(getattr(resource, name)))
    for k, v in sorted(os.environ.items()):
        print("env", k, "=", v)
    print("cwd:", os.getcwd())
    print("cwd listing:", sorted(os.listdir(".")))
    import tempfile
    print("tmp listing:", tempfile.gettempdir(), sorted(os.listdir(tempfile.gettempdir())))
    print("nice:", os.nice(0))
    # pids are per-run: how they relate is what shows
    print("group leader:", os.getpgrp() == os.getpid(), "session leader:", os.getsid(0) == os.getpid())
    with open("/proc/self/cmdline", "rb") as f:
        print("cmdline:", f.read())
    with open("/proc/self/comm") as f:
        print("comm:", f.read().strip())
    # /proc/self/exe is a documented difference (DocumentedDifferences)
    '''), stdout=["signal SIGINT", "umask:"])

probe("sandbox_view", script('''
    import ctypes, faulthandler, os, socket, tracemalloc
    print("uname:", os.uname().sysname, os.uname().nodename, socket.gethostname())
    try:
        print("interfaces:", socket.if_nameindex())
    except OSError as e:
        print("interfaces:", e)
    for family in ("AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"):
        try:
            socket.socket(getattr(socket, family), socket.SOCK_DGRAM).close()
            print(family, "opens")
        except OSError as e:
            print(family, e)
    # on the rlimits layer (OUTPUT_DIR is not /work) the mount table is the
    # host's, which other programs change at any time
    if os.environ["OUTPUT_DIR"] == "/work":
        with open("/proc/self/mounts") as f:
            print(f.read(), end="")
    with open("/proc/self/oom_score_adj") as f:
        print("oom_score_adj:", f.read().strip())
    print("affinity:", sorted(os.sched_getaffinity(0)), "scheduler:", os.sched_getscheduler(0))
    libc = ctypes.CDLL(None, use_errno=True)
    PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_GET_CHILD_SUBREAPER = 2, 3, 37
    v = ctypes.c_int(-1)
    libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(v), 0, 0, 0)
    print("pdeathsig:", v.value, "dumpable:", libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
    libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(v), 0, 0, 0)
    print("subreaper:", v.value)
    # the run's ids are its worker's (README, run_uid): how they relate shows
    print("ids:", os.getuid() == os.geteuid() == os.getgid() == os.getegid(), os.getgroups())
    print("faulthandler:", faulthandler.is_enabled(), "tracemalloc:", tracemalloc.is_tracing())
    '''), stdout=["uname:", "oom_score_adj:"])
probe("import_main_again", script('''
    print("running as", __name__)
    if __name__ == "__main__":
        import main
        print("imported:", main.__name__, main.__file__, main is __import__("__main__"))
    '''), stdout="running as main")
probe("warnings_shown", script('''
    import warnings
    warnings.warn("shown once in __main__", DeprecationWarning)
    for i in range(2):
        warnings.warn("a user warning")
    import sys
    print("registry:", sorted(k[0] for k in __warningregistry__ if k != "version"))
    '''), stderr="DeprecationWarning: shown once")
probe("json_form", {
    "main.py": script('''
        import sys
        with open("out.txt", "w") as f:
            f.write("a file\\n")
        print("caf\\u00e9")
        sys.stdout.buffer.write(b"\\xff\\x00")
        print("to stderr", file=sys.stderr)
        sys.exit(2)
        ''')}, exit=2, query="format=json", stdout="caf\u00e9", stderr="to stderr")
probe("wall_timeout", script('''
    import time
    print("started", flush=True)
    time.sleep(5)
    '''), query="timeout=1", status="timeout", signal="SIGKILL", stdout="started",
    stderr="wall time limit")

# every way out
probe("exit_int", script('''
    import sys
    print("before")
    sys.exit(3)
    '''), exit=3, stdout="before")
probe("exit_256", script('''
    import sys
    sys.exit(256)
    '''), exit=0)
probe("exit_str", script('''
    import sys
    sys.exit("goodbye, caf\\u00e9")
    '''), exit=1, stderr="goodbye")
probe("exit_none", script('''
    import sys
    sys.exit(None)
    '''), exit=0)
probe("exit_list", script('''
    import sys
    sys.exit(["not", "an", "int"])
    '''), exit=1, stderr="['not', 'an', 'int']")
probe("exit_object", script('''
    import sys
    class Reason:
        def __str__(self):
            return "an object's reason"
    sys.exit(Reason())
    '''), exit=1, stderr="an object's reason")
probe("exit_site_builtin", script('''
    print("stdin closed by exit():", end=" ")
    import atexit, sys
    atexit.register(lambda: print(sys.stdin.closed))
    exit(4)
    '''), exit=4, stdout="True")
probe("os_exit", script('''
    import atexit, os
    atexit.register(print, "atexit must not run")
    print("before os._exit")
    os._exit(7)
    '''), exit=7, stdout="before")
probe("uncaught_chained", script('''
    class AppError(Exception):
        pass
    def parse(s):
        return int(s)
    def load():
        try:
            parse("x")
        except ValueError as e:
            raise AppError("cannot load") from e
    try:
        load()
    except AppError:
        {}["missing"]
    '''), exit=1, stderr=["The above exception was the direct cause",
                          "During handling of the above exception", "KeyError: 'missing'"])
probe("keyboard_interrupt", script('''
    print("interrupting")
    raise KeyboardInterrupt
    '''), signal="SIGINT", stderr="KeyboardInterrupt")
probe("sigterm_self", script('''
    import os, signal
    print("terminating")
    os.kill(os.getpid(), signal.SIGTERM)
    print("not reached")
    '''), signal="SIGTERM", stdout="terminating")
probe("closed_stdout", script('''
    import os, sys
    sys.stdout = open(1, "w", closefd=False, buffering=8192)
    print("held in the buffer, lost")
    os.close(1)
    '''), exit=120, stderr="Bad file descriptor")

# source text
probe("syntax_error_main", script('''
    print("never runs")
    def broken(:
        pass
    '''), exit=1, stderr="SyntaxError")
probe("syntax_error_helper", {
    "main.py": script('''
        print("main runs")
        import helper
        '''),
    "helper.py": b"x = 1\nif x\n    pass\n"}, exit=1, stdout="main runs", stderr="SyntaxError")
probe("utf8_bom", b"\xef\xbb\xbf" + script('''
    """caf\u00e9 doc"""
    print("bom:", __doc__, len("caf\u00e9"))
    raise ValueError("caf\u00e9")
    '''), exit=1, stdout="bom:", stderr="ValueError")
probe("crlf", script('''
    import linecache
    text = """a
    b"""
    print("crlf:", repr(text), repr(linecache.getline(__file__, 3)))
    raise RuntimeError("line numbers")
    ''').replace(b"\n", b"\r\n"), exit=1, stdout="crlf: 'a\\nb'", stderr="RuntimeError")
probe("latin1_cookie", script('''
    # -*- coding: latin-1 -*-
    s = "caf\xe9 \xa9"
    print("latin-1:", s, [hex(ord(c)) for c in s])
    raise ValueError("caf\xe9")
    ''').replace(b"\xc3\xa9", b"\xe9").replace(b"\xc2\xa9", b"\xa9"),
    exit=1, stdout="latin-1:", stderr="ValueError")

# the end of a run
probe("exit_order", script('''
    import atexit, os, threading, weakref
    class Noisy:
        def __init__(self, name):
            self.name = name
        def __del__(self):
            print("__del__", self.name, flush=True)
    keep = Noisy("global")
    go = threading.Event()
    def late():
        go.wait()
        print("thread done", flush=True)
        with open("thread.txt", "w") as f:
            f.write("written by a thread joined at exit\\n")
    threading.Thread(target=late, name="late").start()
    for n in ("first", "second", "third"):
        atexit.register(print, "atexit", n, flush=True)
    def write_file():
        with open(os.path.join(os.environ["OUTPUT_DIR"], "atexit.txt"), "w") as f:
            f.write("written at exit\\n")
    atexit.register(write_file)
    weakref.finalize(keep, print, "finalize global")
    print("main done", flush=True)
    go.set()
    '''), stdout=["main done\nthread done\nfinalize global\natexit third\natexit second\n"
                    "atexit first\n", "__del__ global"])
probe("generated_files", {
    "main.py": script('''
        import os
        os.makedirs("out/deep", exist_ok=True)
        with open("out/deep/data.bin", "wb") as f:
            f.write(bytes(range(256)))
        with open("report.txt", "w") as f:
            f.write("caf\\u00e9\\n")
        with open("changed.txt", "a") as f:
            f.write("appended\\n")
        print(sorted(os.listdir(".")))
        '''),
    "changed.txt": b"uploaded\n",
    "unchanged.txt": b"left alone\n"}, stdout="changed.txt")

# multiprocessing, pickling, shadowing
for method in ("fork", "spawn", "forkserver"):
    probe("multiprocessing_" + method, script('''
        import multiprocessing as mp
        def square(x):
            return x * x, square.__module__, __name__
        if __name__ == "__main__":
            ctx = mp.get_context("%s")
            with ctx.Pool(2) as pool:
                for row in pool.map(square, range(6)):
                    print(row)
            print("start method:", ctx.get_start_method())
        ''' % method), stdout="(25, ")
probe("pickle_main_class", script('''
    import pickle
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y
        def __eq__(self, other):
            return (self.x, self.y) == (other.x, other.y)
    p = Point(1, "two")
    data = pickle.dumps(p, protocol=4)
    print("pickle:", data)
    back = pickle.loads(data)
    print("loaded:", type(back).__module__, type(back).__qualname__, back == p)
    '''), stdout="loaded: __main__ Point True")
probe("shadow_stdlib", {
    "main.py": script('''
        import json
        print("json from:", json.__file__, json.dumps([1]))
        '''),
    "json.py": script('''
        print("the uploaded json.py runs")
        def dumps(obj):
            return "shadowed"
        ''')}, stdout=["the uploaded json.py runs", "/json.py shadowed"])

# What importing a preloaded set leaves (server C preloads json and numpy):
# the same modules, in sys.modules and bound to their packages, and the
# same warning filters, whatever was imported before.
probe("imports_after_others", script('''
    import sys, warnings, re, collections
    before = set(sys.modules)
    try:
        import numpy
    except ImportError:
        print("no numpy here")
    import json
    print("added:", sorted(set(sys.modules) - before))
    print("collections.abc bound:", hasattr(collections, "abc"))
    print("filters:", [(a, getattr(m, "pattern", m), c.__name__, mod, n)
                       for a, m, c, mod, n in warnings.filters])
    '''), stdout="added:")

probe("numpy_submodule_first", script('''
    import sys
    try:
        import numpy.linalg as la
        print(la.inv([[2.0, 0.0], [0.0, 4.0]]).tolist())
        print(sorted(n for n in sys.modules if not n.startswith("numpy")))
        print(len([n for n in sys.modules if n.startswith("numpy")]))
    except ImportError:
        print("no numpy here")
    '''))

probe("numpy_shadowed_by_upload", {
    "main.py": script('''
        import sys
        import numpy
        print("numpy from:", numpy.__file__, numpy.MARK)
        print("json" in sys.modules)
        '''),
    "numpy/__init__.py": script('''
        MARK = "the uploaded numpy"
        ''')}, stdout="/work/numpy/__init__.py the uploaded numpy")

probe("shadowed_after_sys_path_change", {
    "main.py": script('''
        import os, sys
        sys.path.insert(0, os.path.join(os.getcwd(), "vendor"))
        import json
        print(json.__file__, json.MARK)
        '''),
    "vendor/json.py": b"MARK = 'vendored'\n"}, stdout="vendored")


def _outcome_errors(p, reply):
    """How reply misses the outcome p is written for (empty: none)."""
    out = []
    h = reply.headers
    if reply.status != 200:
        return ["HTTP %d" % reply.status]
    if h.get("X-Execution-Status") != p.status:
        out.append("expected X-Execution-Status %s" % p.status)
    if p.signal:
        if h.get("X-Signal") != p.signal:
            out.append("expected to die by %s" % p.signal)
    elif h.get("X-Exit-Code") != str(p.exit):
        out.append("expected exit %d" % p.exit)
    if reply.content_type.startswith("application/json"):
        doc = reply.json()
        outputs = {k: doc[k] if doc[k + "_encoding"] == "utf-8"
                   else base64.b64decode(doc[k]).decode("utf-8", "replace")
                   for k in ("stdout", "stderr")}
    else:
        outputs = {k: getattr(reply, k).decode("utf-8", "replace") for k in ("stdout", "stderr")}
    for key, wants in (("stdout", p.stdout), ("stderr", p.stderr)):
        text = outputs[key]
        out += ["%s lacks %r" % (key, w) for w in wants if w not in text]
    return out


class Differential(harness.E2ETestCase):
    """Each probe of the corpus, on A (cold) and B (warm): the same bytes."""

    def setUp(self):
        super().setUp()
        self.a = cold_server(self)
        self.b = warm_server(self)

    NAMES = ("A (cold)", "B (warm)")

    def query(self, p):
        return p.query

    def run_both(self, p):
        replies = [s.post_execute(p.files, stdin=p.stdin, query=self.query(p))
                   for s in (self.a, self.b)]
        bad = _outcome_errors(p, replies[0])
        if bad:
            self.fail("probe %s on A (cold): %s\n%s" % (p.name, "; ".join(bad),
                                                        replies[0].describe(4000)))
        if not COLD_ONLY:
            self.assertEqual(replies[1].headers.get("X-Execution-Start"), "warm",
                             "B ran it cold:\n" + replies[1].describe())
        self.assertSameRun(*replies, names=self.NAMES,
                           normalize=lambda o, r: normalize(
                               o, r, self.a if r is replies[0] else self.b))


def _add_probe_tests(cls, corpus, what):
    for p in corpus:
        def test(self, p=p):
            self.run_both(p)
        test.__doc__ = "probe %s%s: the same run on A and B" % (p.name, what)
        setattr(cls, "test_" + p.name, test)


_add_probe_tests(Differential, CORPUS, "")


class DifferentialPreloaded(Differential):
    """Each probe on A (cold) and on C, warm with modules preloaded: what a
    run sees of the preloads before it imports them is nothing (sys.modules,
    the meta path, the path hooks are a cold run's), and an upload that
    shadows one wins."""

    def setUp(self):
        harness.E2ETestCase.setUp(self)
        self.a = cold_server(self)
        self.b = warm_server(self, "warm-c", PRELOADED)


# What DifferentialSet runs besides the corpus: the set's own modules.
SET_CORPUS = [Probe("set_modules", script('''
    import os, sys
    print("PYTHONPATH:", os.environ.get("PYTHONPATH"), "DIFF_PTH:", os.environ.get("DIFF_PTH"))
    print("before:", sorted(n for n in sys.modules if "diff" in n or n == "colorsys"))
    import colorsys, diff_plain, diff_printer, diff_pth, diff_writer
    for m in (colorsys, diff_plain, diff_printer, diff_pth, diff_writer):
        print(m.__name__, m.__file__, m.__spec__.origin, type(m.__loader__).__name__,
              sorted(k for k in vars(m) if not k.startswith("__")))
    print("colorsys:", colorsys.WHERE)
    print("after:", sorted(n for n in sys.modules if "diff" in n or n == "colorsys"))
    '''), stdout=["DIFF_PTH: ran", "diff_printer imported", "colorsys: the set"]),
    Probe("set_module_shadowed_by_upload", {
        "main.py": script('''
            import diff_plain, diff_printer
            print(diff_plain.__file__, diff_plain.TABLE, diff_printer.__file__)
            '''),
        "diff_plain.py": b"TABLE = 'uploaded'\n"}, stdout=["/diff_plain.py uploaded"])]


class DifferentialSet(Differential):
    """Each probe of the corpus, and of SET_CORPUS, with the dependency set
    SET, on A (cold) and on B, where the set has a zygote of its own: the
    same bytes, and B's runs warm."""

    def setUp(self):
        harness.E2ETestCase.setUp(self)
        self.a = self.server("warm-a-set", **set_kind(COLD))
        self.b = warm_server(self, "warm-b-set", set_kind(WARM))
        warm_up_set(self, self.b)

    NAMES = ("A (cold)", "B (warm, the set's zygote)")

    def query(self, p):
        return with_set(p.query)


def warm_up_set(test, s):
    """Runs SET on s until a run starts warm (bounded): with
    warm_deps_after = 1 the first request installs the set and earns its
    zygote, the next waits for it to be ready."""
    if COLD_ONLY:
        return
    for _ in range(5):
        r = s.post_execute({"main.py": script("pass\n")}, query=with_set(None))
        test.assertRan(r)
        if r.headers.get("X-Execution-Start") == "warm":
            return
    test.fail("the set's runs are still cold after 5 requests:\n%s\n%s"
              % (r.describe(), s.log_tail()))


_add_probe_tests(DifferentialSet, SET_CORPUS, " with the set")


class Comparison(harness.E2ETestCase):
    """The comparison itself sees a difference of one byte, of the exit
    status or of a generated file (on A alone: it runs whatever the mode)."""

    BASE = """
        import os, sys
        with open(%(name)r, "w") as f:
            f.write(%(file)r)
        print(%(out)r)
        print(%(err)r, file=sys.stderr)
        if %(sig)r:
            os.kill(os.getpid(), %(sig)d)
        sys.exit(%(exit)d)
        """
    SAME = dict(name="out.txt", file="data\n", out="out", err="err", sig=0, exit=0)

    def run_with(self, s, **change):
        return s.post_execute({"main.py": script(self.BASE % dict(self.SAME, **change))})

    def test_differences_are_seen(self):
        a = cold_server(self)
        base = self.run_with(a)
        self.assertSameRun(base, self.run_with(a))
        for change in (dict(out="ouT"), dict(err="er"), dict(exit=3), dict(sig=15),
                       dict(file="data\r\n"), dict(name="Out.txt")):
            with self.subTest(change=change):
                with self.assertRaises(AssertionError):
                    self.assertSameRun(base, self.run_with(a, **change))


# ---------------------------------------------------------------- freshness

FRESH = script('''
    import builtins, glob, json, os, random, secrets, sys, tempfile, types, uuid
    try:
        import ssl
        rand = ssl.RAND_bytes(16).hex()
    except ImportError:
        rand = None
    TAG = "pyexec_warm_probe"
    tmp = tempfile.gettempdir()
    seen = {
        "builtin": getattr(builtins, TAG, None),
        "stdlib module attribute": getattr(json, TAG, None) or getattr(os, TAG, None),
        "sys.modules entry": TAG in sys.modules,
        "os.environ entry": os.environ.get(TAG.upper()),
        "file in /tmp": sorted(glob.glob(os.path.join(tmp, TAG + "*"))),
        "file in /dev/shm": sorted(glob.glob("/dev/shm/" + TAG + "*")),
    }
    token = os.urandom(8).hex()
    setattr(builtins, TAG, token)
    setattr(json, TAG, token)
    setattr(os, TAG, token)
    sys.modules[TAG] = types.ModuleType(TAG)
    os.environ[TAG.upper()] = token
    with open(os.path.join(tmp, TAG + "-" + token), "w") as f:
        f.write(token)
    try:
        with open("/dev/shm/" + TAG + "-" + token, "w") as f:
            f.write(token)
        shm = "written"
    except OSError as e:
        shm = str(e)
    print(json.dumps({
        "random.random()": random.random(),
        "uuid.uuid4()": str(uuid.uuid4()),
        "os.urandom(16)": os.urandom(16).hex(),
        "tempfile.mktemp()": tempfile.mktemp(),
        "secrets.token_hex()": secrets.token_hex(),
        "ssl.RAND_bytes(16)": rand,
        "pid": os.getpid(),
        "seen": seen, "shm": shm, "token": token,
    }))
    ''')


def _fresh_runs(server, n, concurrency=2, query=None, start=None):
    """n runs of FRESH, concurrency at a time (both workers busy), with
    query, each started as start says when given: their printed documents,
    in the order they ended."""
    docs, lock, errors = [], threading.Lock(), []

    def worker(count):
        for _ in range(count):
            r = server.post_execute({"main.py": FRESH}, query=query)
            with lock:
                if r.status != 200 or r.headers.get("X-Exit-Code") != "0":
                    errors.append(r.describe())
                elif start and not COLD_ONLY and r.headers.get("X-Execution-Start") != start:
                    errors.append("not %s:\n%s" % (start, r.describe()))
                else:
                    docs.append(json.loads(r.stdout))
    threads = [threading.Thread(target=worker, args=(n // concurrency + (i < n % concurrency),))
               for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError("a run of the freshness probe failed:\n" + errors[0])
    return docs


class Freshness(harness.E2ETestCase):
    """B alone, FRESH_RUNS warm runs (made once, for every test here): what
    is random is never the same twice, and no run sees another's state."""

    warm_docs = None
    cold_docs = None

    def setUp(self):
        super().setUp()
        self.b = warm_server(self)
        cls = type(self)
        if cls.warm_docs is None:
            cls.warm_docs = _fresh_runs(self.b, FRESH_RUNS)
            # what a cold run shows, for what depends on the sandbox layer
            cls.cold_docs = _fresh_runs(cold_server(self), 4)

    @classmethod
    def tearDownClass(cls):
        # on the rlimits layer /dev/shm is the host's: the files our runs
        # wrote there go
        for doc in (cls.warm_docs or []) + (cls.cold_docs or []):
            try:
                os.unlink("/dev/shm/pyexec_warm_probe-" + doc["token"])
            except OSError:
                pass

    def assertNeverRepeats(self, key):
        values = [d[key] for d in self.warm_docs]
        self.assertEqual(len(values), FRESH_RUNS)
        repeated = sorted({v for v in values if values.count(v) > 1})
        self.assertEqual(repeated, [], "%s repeats across warm runs" % key)

    def test_random_random(self):
        self.assertNeverRepeats("random.random()")

    def test_uuid4(self):
        self.assertNeverRepeats("uuid.uuid4()")

    def test_os_urandom(self):
        self.assertNeverRepeats("os.urandom(16)")

    def test_tempfile_mktemp(self):
        self.assertNeverRepeats("tempfile.mktemp()")

    def test_secrets_token_hex(self):
        self.assertNeverRepeats("secrets.token_hex()")

    def test_ssl_rand_bytes(self):
        if any(d["ssl.RAND_bytes(16)"] is None for d in self.warm_docs):
            self.skipTest("ssl cannot be imported by the server's python")
        self.assertNeverRepeats("ssl.RAND_bytes(16)")

    def test_pids_as_cold_runs_have_them(self):
        """A cold run in a pid namespace of its own always has the same pid:
        a warm run must have it too; where runs share the host's pids, no
        two warm runs may have the same."""
        cold = {d["pid"] for d in self.cold_docs}
        warm = [d["pid"] for d in self.warm_docs]
        if len(cold) == 1:
            self.assertEqual(set(warm), cold, "warm pids against the cold runs' one pid")
        else:
            self.assertEqual(len(set(warm)), len(warm), "a pid repeats across warm runs")

    def assertNoRunSees(self, what):
        """No warm run saw the state `what` an earlier run left, unless cold
        runs see it too (then it is the sandbox layer's, not warm starts')."""
        if what == "file in /dev/shm" and self.warm_docs[0]["shm"] != "written":
            self.skipTest("a run cannot write to /dev/shm: %s" % self.warm_docs[0]["shm"])
        if any(d["seen"][what] for d in self.cold_docs):
            self.skipTest("cold runs see it too: a %s is shared on this sandbox layer" % what)
        seen = [d["seen"][what] for d in self.warm_docs if d["seen"][what]]
        self.assertEqual(seen, [], "a warm run saw a %s an earlier run left" % what)

    def test_no_builtin_left(self):
        self.assertNoRunSees("builtin")

    def test_no_stdlib_module_attribute_left(self):
        self.assertNoRunSees("stdlib module attribute")

    def test_no_sys_modules_entry_left(self):
        self.assertNoRunSees("sys.modules entry")

    def test_no_environment_entry_left(self):
        self.assertNoRunSees("os.environ entry")

    def test_no_file_in_tmp_left(self):
        self.assertNoRunSees("file in /tmp")

    def test_no_file_in_dev_shm_left(self):
        self.assertNoRunSees("file in /dev/shm")


class FreshnessSet(Freshness):
    """The same, FRESH_RUNS warm runs of the set in its zygote on B."""

    warm_docs = None
    cold_docs = None

    def setUp(self):
        harness.E2ETestCase.setUp(self)
        self.b = warm_server(self, "warm-b-set", set_kind(WARM))
        cls = type(self)
        if cls.warm_docs is None:
            warm_up_set(self, self.b)
            # one worker: one run at a time, each from the set's zygote
            cls.warm_docs = _fresh_runs(self.b, FRESH_RUNS, concurrency=1,
                                        query=with_set(None), start="warm")
            cls.cold_docs = _fresh_runs(self.server("warm-a-set", **set_kind(COLD)), 4,
                                        query=with_set(None))


# ---------------------------------------------------------------- headers

EXEC_KINDS = (
    ("ok", script('print("hello")\n'), None),
    ("error", script('import sys\nsys.exit(3)\n'), None),
    ("timeout", script('import time\ntime.sleep(5)\n'), "timeout=0.5"),
)


@unittest.skipIf(COLD_ONLY, "PYEXEC_TEST_WARM=cold: both servers are cold")
class ExecutionStart(harness.E2ETestCase):
    """X-Execution-Start says how each run started, in both reply forms,
    whatever the run did; /healthz says whether warm starts are on."""

    def test_a_says_cold_and_b_says_warm(self):
        a, b = cold_server(self), warm_server(self)
        doc = a.request("GET", "/healthz").json()
        self.assertEqual(doc.get("warm"), "off", doc)
        self.assertTrue(doc.get("warm_why"), doc)
        for s, want in ((a, "cold"), (b, "warm")):
            for status, main, query in EXEC_KINDS:
                for fmt in (None, "format=json"):
                    q = "&".join(x for x in (query, fmt) if x) or None
                    with self.subTest(server=want, run=status, form=fmt or "multipart"):
                        r = s.post_execute({"main.py": main}, query=q)
                        self.assertStatus(r, 200)
                        self.assertEqual(r.headers.get("X-Execution-Status"), status,
                                         r.describe())
                        self.assertEqual(r.headers.get("X-Execution-Start"), want,
                                         r.describe())
                        if fmt:
                            self.assertEqual(r.json().get("start"), want, r.describe())


    def test_runs_with_args_or_env_are_cold(self):
        """A run's command line and environment are the zygote's: one with
        the fields args or env starts cold (README "Warm start"), and gets
        them; the next without them is warm again."""
        b = warm_server(self)
        main = script('import os, sys\nprint(sys.argv[1:], os.environ.get("GREETING"))\n')
        for parts, out in (([("args", None, b'["a", "b"]', None)], b"['a', 'b'] None\n"),
                           ([("env", None, b'{"GREETING": "hi"}', None)], b"[] hi\n"),
                           ([], b"[] None\n")):
            with self.subTest(parts=parts):
                r = b.post_execute({"main.py": main}, extra_parts=parts)
                self.assertRan(r)
                self.assertEqual(r.stdout, out)
                self.assertEqual(r.headers.get("X-Execution-Start"),
                                 "cold" if parts else "warm", r.describe())


@unittest.skipIf(COLD_ONLY, "PYEXEC_TEST_WARM=cold: both servers are cold")
class Preloads(harness.E2ETestCase):
    """Server C's preloaded modules, in warm runs."""

    def test_numpy_random_differs_from_run_to_run(self):
        if not HAVE_NUMPY:
            self.skipTest("the system's python has no numpy (python3-numpy)")
        c = warm_server(self, "warm-c", PRELOADED)
        main = script('''
            import numpy
            print(numpy.random.rand(), numpy.random.default_rng().random())
            ''')
        seen = set()
        for _ in range(10):
            r = c.post_execute({"main.py": main})
            self.assertRan(r)
            self.assertEqual(r.headers.get("X-Execution-Start"), "warm", r.describe())
            seen.add(r.stdout)
        self.assertEqual(len(seen), 10, seen)

    def test_numpy_linalg_inv_of_500_by_500(self):
        if not HAVE_NUMPY:
            self.skipTest("the system's python has no numpy (python3-numpy)")
        c = warm_server(self, "warm-c", PRELOADED)
        r = c.post_execute({"main.py": script('''
            import numpy
            a = numpy.random.default_rng(1).random((500, 500)) + 500 * numpy.eye(500)
            b = numpy.linalg.inv(a)
            print(bool(numpy.allclose(a @ b, numpy.eye(500))))
            ''')}, query="timeout=60")
        self.assertRan(r)
        self.assertEqual(r.stdout, b"True\n")


@unittest.skipIf(COLD_ONLY, "PYEXEC_TEST_WARM=cold: both servers are cold")
class DocumentedDifferences(harness.E2ETestCase):
    """What the README ("Warm start") says a warm run shares with its
    siblings, or shows differently: each as its own test."""

    def runs(self, s, main, n):
        out = []
        for _ in range(n):
            r = s.post_execute({"main.py": main})
            self.assertRan(r)
            out.append(r.stdout)
        return out

    def test_hash_secret_is_the_zygotes(self):
        """A cold run draws its own hash secret; warm runs share their
        zygote's, so there are at most as many values as zygotes."""
        a, b = cold_server(self), warm_server(self)
        main = script('print(hash("pyexec"))\n')
        cold = self.runs(a, main, 10)
        warm = self.runs(b, main, 10)
        self.assertEqual(len(set(cold)), 10, cold)
        workers = b.request("GET", "/healthz").json()["workers"]
        self.assertLessEqual(len(set(warm)), workers, warm)

    def test_proc_self_exe_names_the_zygote(self):
        a, b = cold_server(self), warm_server(self)
        main = script('import os, sys\n'
                      'print(os.path.basename(os.readlink("/proc/self/exe")))\n'
                      'print(os.path.realpath(sys.executable) == os.readlink("/proc/self/exe"))\n')
        self.assertEqual(self.runs(a, main, 1)[0].split(b"\n")[1], b"True")
        self.assertEqual(self.runs(b, main, 1)[0], b"pyexec-zygote\nFalse\n")


if __name__ == "__main__":
    harness.main()
