"""End-to-end harness for pyexec: a real nginx (or lighttpd) in front of
pyexec-fcgi.

Stdlib only. A Server makes a private directory under /tmp, starts
pyexec-fcgi (the binary named by $PYEXEC_FCGI) and /usr/sbin/nginx on a free
loopback port, waits for GET /healthz, and stops both at the end.
Server(web="lighttpd"), or $PYEXEC_TEST_WEB=lighttpd for every server whose
test does not choose, puts /usr/sbin/lighttpd in front instead, from
conf/lighttpd/pyexec.conf; with $PYEXEC_TEST_LIGHTTPD_MODE=bin-path (or
listen="bin-path") lighttpd starts pyexec-fcgi itself, from
conf/lighttpd/pyexec-bin-path.conf. Server(web="apache") (or
$PYEXEC_TEST_WEB=apache) puts a real Apache httpd with mod_fcgid in front,
from conf/apache/pyexec.conf: Apache's mod_fcgid starts pyexec-fcgi itself,
as many processes as it wants (up to `workers`), each with the socket on
fd 0 and one request at a time. $PYEXEC_TEST_SANDBOX (auto, namespaces,
rlimits) is the sandbox layer of every server whose test does not choose;
on the rlimits layer their runs get room for every process of pyexec's
user (see nproc_room). Requests go
through curl (a real client) or http.client (for requests curl will not
send); multipart replies are read with Python's email parser, as a client of
the seed would.

After every test, E2ETestCase checks that no process the test started is
left (descendants of the pyexec master other than its workers, any process
whose command line carries the run's MARKER, any process whose working
directory is inside the server's directory) and that work_root is empty.

Servers die with their run: each process the harness starts (spawn()) is
its own process group and has SIGTERM as its parent-death signal; a run
killed by SIGTERM, SIGINT or SIGHUP stops them all (kill_all) before it
exits, and a guardian process stops whatever is left of them once the run
is gone, even after a SIGKILL (pyexec and lighttpd, which change their
user, lose the parent-death signal).

Run a suite with harness.main(): TAP on stdout, exit status 1 on failure.
"""

import difflib
import email.parser
import email.policy
import email.utils
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.dirname(HERE)
TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR") or TOP_SRCDIR
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
CURL = os.environ.get("CURL", "curl")
FASTCGI_PARAMS = os.environ.get("FASTCGI_PARAMS", "/etc/nginx/fastcgi_params")
SITE_CONF = os.path.join(TOP_SRCDIR, "conf", "nginx", "pyexec.conf")
# The page the site file serves at / (conf/nginx/pyexec.conf, "playground").
PLAYGROUND_DIR = os.environ.get("PYEXEC_PLAYGROUND") or os.path.join(TOP_SRCDIR, "playground")
LIGHTTPD = os.environ.get("LIGHTTPD", "/usr/sbin/lighttpd")
LIGHTTPD_SITE_CONF = os.path.join(TOP_SRCDIR, "conf", "lighttpd", "pyexec.conf")
LIGHTTPD_BIN_PATH_CONF = os.path.join(TOP_SRCDIR, "conf", "lighttpd", "pyexec-bin-path.conf")
APACHE = os.environ.get("APACHE", "/usr/sbin/apache2")
APACHE_MODULES = os.environ.get("APACHE_MODULES", "/usr/lib/apache2/modules")
APACHE_SITE_CONF = os.path.join(TOP_SRCDIR, "conf", "apache", "pyexec.conf")
# The web server in front when a test does not choose: nginx, lighttpd or
# apache.
DEFAULT_WEB = os.environ.get("PYEXEC_TEST_WEB") or "nginx"
# How lighttpd reaches pyexec when a test does not choose: "socket" (pyexec
# listens, started by the harness) or "bin-path" (lighttpd starts it).
LIGHTTPD_MODE = os.environ.get("PYEXEC_TEST_LIGHTTPD_MODE") or "socket"
IS_ROOT = os.geteuid() == 0

# Every test script carries this in a comment; processes a test starts on
# purpose put it in their command line, so a leftover is easy to spot.
MARKER = "pyexec-e2e-marker-%s" % os.urandom(6).hex()

# max_processes where runs share their user with other suites' servers.
SHARED_USER_PROCESSES = 4096
START_TIMEOUT = 15.0     # seconds for pyexec + nginx to answer /healthz
STOP_TIMEOUT = 10.0      # seconds for a graceful stop before SIGKILL
CLEAN_TIMEOUT = 3.0      # seconds for a request's processes and dir to go


# What AddressSanitizer, LeakSanitizer and UBSan print when they find
# something (in the --enable-asan build): any of it in pyexec's log fails.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer")
_sanitizer_reports = []
_stop_reports = []      # (server, what a stop left behind)


def sanitized_build():
    """Whether the pyexec-fcgi under test was built with --enable-asan. Its
    RSS then says nothing about leaks (ASan keeps freed memory in
    quarantine, and LeakSanitizer reports leaks at exit instead)."""
    data = _read(pyexec_path()) or b""
    return b"__asan_init" in data


def sanitizer_lines(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKS)]


def pyexec_path():
    p = os.environ.get("PYEXEC_FCGI")
    if p:
        return p
    for d in (TOP_BUILDDIR, os.path.join(TOP_BUILDDIR, "_build", "release")):
        p = os.path.join(d, "fcgi", "pyexec-fcgi")
        if os.path.exists(p):
            return p
    return os.path.join(TOP_BUILDDIR, "fcgi", "pyexec-fcgi")


def _others_can_read(directory):
    """Whether any user can reach directory and read the files in it."""
    d = directory
    while True:
        if not os.stat(d).st_mode & 0o001:
            return False
        if d == "/":
            break
        d = os.path.dirname(d)
    return all(os.stat(os.path.join(directory, n)).st_mode & 0o004 for n in os.listdir(directory))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def socket_activation_argv(argv, listen_fds="1", listen_pid=None, redirects="3<&0 0</dev/null"):
    """argv started the way systemd starts a socket-activated service
    (sd_listen_fds(3)): through sh, which applies redirects (by default the
    socket given as stdin moves to fd 3 and stdin becomes /dev/null), sets
    LISTEN_FDS and LISTEN_PID and execs argv. LISTEN_PID must be the pid of
    the process itself, which only the child knows: sh puts its own ($$),
    and exec keeps it. listen_pid, when given, is used instead."""
    pid = "$$" if listen_pid is None else shlex.quote(str(listen_pid))
    return (["/bin/sh", "-c", 'LISTEN_FDS=%s LISTEN_PID=%s; export LISTEN_FDS LISTEN_PID; '
             'exec "$@" %s' % (shlex.quote(str(listen_fds)), pid, redirects), "sh"]
            + list(argv))


def script(src):
    """main.py text (bytes) from an indented source, tagged with MARKER."""
    return ("# %s\n" % MARKER + textwrap.dedent(src).lstrip("\n")).encode()


# The source of make_png(width, height), a small valid RGB PNG built with
# zlib and struct: run here for the bytes a test expects, and put into a
# script (PNG_SRC + ...) that writes the same bytes. Its IDAT is deflated at
# level 0 (stored blocks), whose bytes do not depend on the zlib version:
# the test's Python and the server's interpreter may link different ones.
PNG_SRC = '''
import struct, zlib
def make_png(width, height):
    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    raw = b"".join(b"\\x00" + bytes(v for x in range(width)
                                     for v in (x * 40 % 256, y * 60 % 256, 128))
                   for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b""))
'''
_png_ns = {}
exec(PNG_SRC, _png_ns)  # noqa: S102 - our own source


def png_bytes(width=4, height=3):
    """A small valid RGB PNG (PNG_SRC's make_png)."""
    return _png_ns["make_png"](width, height)


def sanitize(name):
    """The form in which pyexec quotes a client's name in a message
    (util_sanitize): printable ASCII but '"' and '\\' kept, other bytes \\xNN."""
    if isinstance(name, str):
        name = name.encode("utf-8", "surrogateescape")
    out = []
    for b in name:
        if 0x20 <= b < 0x7f and b not in (0x22, 0x5c):
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


# ---------------------------------------------------------------- replies

class Headers:
    """Case-insensitive header map; get() returns the last value."""

    def __init__(self, pairs=()):
        self.pairs = list(pairs)

    def get(self, key, default=None):
        key = key.lower()
        for k, v in reversed(self.pairs):
            if k.lower() == key:
                return v
        return default

    def get_all(self, key):
        key = key.lower()
        return [v for k, v in self.pairs if k.lower() == key]

    def __getitem__(self, key):
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key):
        return self.get(key) is not None

    def __repr__(self):
        return "Headers(%r)" % (self.pairs,)


class Part:
    def __init__(self, name, filename, content_type, data, raw_headers):
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.data = data
        self.raw_headers = raw_headers

    def __iter__(self):
        return iter((self.name, self.filename, self.content_type, self.data))

    def __repr__(self):
        return "Part(%r, %r, %r, %d bytes)" % (self.name, self.filename,
                                                 self.content_type, len(self.data))


def _fix_surrogates(s):
    """Header text the parser decoded as ASCII with surrogateescape: read
    the raw bytes again as UTF-8."""
    if s is None:
        return None
    try:
        return s.encode("ascii", "surrogateescape").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def parse_multipart(content_type, body):
    """Parts of a multipart body, in order, read by Python's email parser
    exactly as a client would. Raises AssertionError when it does not parse
    cleanly."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise AssertionError("reply is not multipart: %r" % content_type)
    if msg.defects:
        raise AssertionError("multipart reply has defects: %r" % msg.defects)
    parts = []
    for p in msg.iter_parts():
        if p.defects:
            raise AssertionError("part has defects: %r" % p.defects)
        cd = p.get("Content-Disposition")
        name = p.get_param("name", header="content-disposition")
        if name is not None:
            name = _fix_surrogates(email.utils.collapse_rfc2231_value(name))
        filename = _fix_surrogates(p.get_filename())
        ctype = p.get("Content-Type")
        data = p.get_payload(decode=True)
        if data is None:
            data = b""
        parts.append(Part(name, filename, str(ctype) if ctype is not None else None,
                          data, [(k, str(v)) for k, v in p.items()]))
        if cd is None:
            raise AssertionError("part without Content-Disposition")
    return parts


# Checks every reply a server gives its client goes through: callables
# (method, path, reply) returning a list of problems (t/openapi_check.py's,
# which t/e2e/test_api.py registers). A problem fails the request.
REPLY_CHECKS = []


def _checked(method, path, reply):
    for check in REPLY_CHECKS:
        problems = check(method, path, reply)
        if problems:
            raise AssertionError("the reply to %s %s departs from openapi/openapi.json:\n  %s\n%s"
                                 % (method, path, "\n  ".join(problems[:10]),
                                    reply.describe(2000)))
    return reply


class Reply:
    """What a client got: status, headers, body, and for a multipart body
    its parts in order."""

    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self._parts = None

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "")

    @property
    def parts(self):
        if self._parts is None:
            self._parts = parse_multipart(self.content_type, self.body)
        return self._parts

    def part(self, name):
        found = [p for p in self.parts if p.name == name and p.filename is None]
        if len(found) != 1:
            raise AssertionError("expected one part %r, got %r" % (name, self.parts))
        return found[0].data

    @property
    def stdout(self):
        return self.part("stdout")

    @property
    def stderr(self):
        return self.part("stderr")

    @property
    def files(self):
        """{filename: Part} of the parts that carry a filename."""
        out = {}
        for p in self.parts:
            if p.filename is not None:
                if p.filename in out:
                    raise AssertionError("file %r returned twice" % p.filename)
                out[p.filename] = p
        return out

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def describe(self, limit=1500):
        hdr = "\n".join("%s: %s" % kv for kv in self.headers.pairs)
        body = self.body[:limit]
        more = "" if len(self.body) <= limit else "\n... (%d bytes)" % len(self.body)
        return "HTTP %s (%.3f s)\n%s\n\n%r%s" % (self.status, self.elapsed, hdr, body, more)

    def __repr__(self):
        return "<Reply %s %s %d bytes>" % (self.status, self.content_type, len(self.body))


def run_outcome(reply):
    """What a client sees of a run, less what differs from one run to the
    next by nature (times, peak memory, request id, the multipart
    boundary): {"http", "status", "exit_code", "signal", "truncated",
    "stdout", "stderr", "files": {filename: (Content-Type, bytes)}}."""
    out = {"http": reply.status}
    for key, header in (("status", "X-Execution-Status"), ("exit_code", "X-Exit-Code"),
                        ("signal", "X-Signal"), ("truncated", "X-Truncated")):
        out[key] = reply.headers.get(header)
    if reply.content_type.startswith("multipart/"):
        out["stdout"], out["stderr"] = reply.stdout, reply.stderr
        out["files"] = {n: (p.content_type, p.data) for n, p in reply.files.items()}
    else:
        out["body"] = reply.body
    return out


def _parse_header_file(data):
    """The last header block of a curl -D file (there may be a 100 Continue
    before it). Returns (status, Headers)."""
    text = data.decode("latin-1")
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    if not blocks:
        raise AssertionError("no response headers")
    lines = blocks[-1].splitlines()
    m = re.match(r"HTTP/\S+\s+(\d+)", lines[0])
    if not m:
        raise AssertionError("bad status line %r" % lines[0])
    pairs = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            pairs.append((k.strip(), v.strip()))
    return int(m.group(1)), Headers(pairs)


def build_multipart(parts, boundary=None):
    """A multipart/form-data body built by hand, for names and shapes curl
    cannot express. parts: [(name, filename or None, data, content_type or
    None)]; name/filename may be bytes (sent verbatim inside quotes).
    Returns (body, content_type)."""
    if boundary is None:
        boundary = "e2eBoundary" + os.urandom(12).hex()
    b = boundary.encode()
    out = []
    for name, filename, data, ctype in parts:
        if isinstance(name, str):
            name = name.encode()
        if isinstance(data, str):
            data = data.encode()
        cd = b'Content-Disposition: form-data; name="' + name + b'"'
        if filename is not None:
            if isinstance(filename, str):
                filename = filename.encode("utf-8", "surrogateescape")
            cd += b'; filename="' + filename + b'"'
        out.append(b"--" + b + b"\r\n" + cd + b"\r\n")
        if ctype:
            out.append(b"Content-Type: " + ctype.encode() + b"\r\n")
        out.append(b"\r\n" + data + b"\r\n")
    out.append(b"--" + b + b"--\r\n")
    return b"".join(out), "multipart/form-data; boundary=" + boundary


# ---------------------------------------------------------------- processes

def _read(path, mode="rb"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def proc_table():
    """{pid: dict(ppid, cmdline, exe, cwd, uid)} of every visible process."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        stat = _read("/proc/%d/stat" % pid)
        if stat is None:
            continue
        try:
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (ValueError, IndexError):
            continue
        cmd = _read("/proc/%d/cmdline" % pid) or b""
        info = {"ppid": ppid, "cmdline": cmd.replace(b"\0", b" ").decode("utf-8", "replace").strip()}
        for key in ("exe", "cwd"):
            try:
                info[key] = os.readlink("/proc/%d/%s" % (pid, key))
            except OSError:
                info[key] = None
        status = _read("/proc/%d/status" % pid, "r") or ""
        m = re.search(r"^Uid:\s+(\d+)", status, re.M)
        info["uid"] = int(m.group(1)) if m else None
        table[pid] = info
    return table


# What a worker's next sandbox, made while it waits for a request, shows
# as its command line until a run takes it (lib/sandbox.h).
SPARE_TITLE = "pyexec-fcgi: sandbox (spare)"
# What a worker's zygote shows (README "Warm start").
ZYGOTE_TITLE = "pyexec-fcgi: zygote"


def _children(table):
    kids = {}
    for pid, info in table.items():
        kids.setdefault(info["ppid"], []).append(pid)
    return kids


def spare_pids(table, workers):
    """The sandboxes workers made ahead of their next request: a worker's
    child titled SPARE_TITLE with nothing below it but, in a warm sandbox,
    its payload forked ahead (titled so too, with nothing below it)."""
    workers = set(workers)
    kids = _children(table)

    def waiting(pid):
        return table[pid]["cmdline"] == SPARE_TITLE and not kids.get(pid)
    return sorted(pid for pid, i in table.items()
                  if i["ppid"] in workers and i["cmdline"] == SPARE_TITLE
                  and all(waiting(k) for k in kids.get(pid, [])))


def zygote_pids(table, workers):
    """The zygotes of workers: a worker's child titled ZYGOTE_TITLE."""
    workers = set(workers)
    return sorted(pid for pid, i in table.items()
                  if i["ppid"] in workers and i["cmdline"] == ZYGOTE_TITLE)


def kept_pids(table, workers):
    """What workers keep between requests: their spares (and the payloads
    forked ahead in them) and zygotes."""
    spares = spare_pids(table, workers)
    kids = _children(table)
    ahead = [k for p in spares for k in kids.get(p, [])]
    return spares + ahead + zygote_pids(table, workers)


def descendants(table, root):
    kids = {}
    for pid, info in table.items():
        kids.setdefault(info["ppid"], []).append(pid)
    out, todo = [], list(kids.get(root, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def proc_status(pid, key):
    """A field of /proc/<pid>/status as text, or None."""
    s = _read("/proc/%d/status" % pid, "r")
    if s is None:
        return None
    m = re.search(r"^%s:\s*(.*)$" % re.escape(key), s, re.M)
    return m.group(1).strip() if m else None


def proc_status_kib(pid, key):
    v = proc_status(pid, key)
    if v is None:
        return None
    return int(v.split()[0])


def wait_for(pred, timeout, step=0.02):
    """Polls pred() until it is true or timeout seconds passed; returns its
    last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def wait_pid_gone(pid, timeout):
    return wait_for(lambda: not os.path.exists("/proc/%d" % pid)
                    or (proc_status(pid, "State") or "").startswith("Z"), timeout)


# ---------------------------------------------------------------- servers

PR_SET_PDEATHSIG = 1
KILL_GRACE = 3.0        # seconds for SIGTERM to stop the servers of a killed run
_libc = None


def _die_with_harness(then=None):
    """A preexec_fn: the child gets SIGTERM when the harness dies, even by
    SIGKILL (prctl PR_SET_PDEATHSIG, kept across exec), then runs then().
    The signal comes when the thread that forked ends, so only a child of
    the main thread gets it; and the kernel forgets it when the process
    changes its user (pyexec and lighttpd, started as root, do): the
    guardian (_guard) covers those."""
    global _libc
    if _libc is None:
        import ctypes
        _libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    main_thread = threading.current_thread() is threading.main_thread()

    def preexec():
        if main_thread:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent:      # the harness died before the prctl
                os.kill(os.getpid(), signal.SIGTERM)
        if then is not None:
            then()
    return preexec


def proc_starttime(pid):
    """When pid started (field 22 of /proc/PID/stat), to tell it from a
    later process with its number; None when it is gone or a zombie."""
    stat = _read("/proc/%d/stat" % pid)
    if stat is None:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def terminate_trees(roots, grace=KILL_GRACE):
    """Stops the processes of roots ({pid: start time}, each the leader of
    its process group) that still run, and everything below them: SIGTERM
    to each group, then after grace seconds SIGKILL to what is left."""
    roots = {pid: t for pid, t in roots.items() if t is not None and proc_starttime(pid) == t}
    table = proc_table()
    tree = dict(roots)
    for r in roots:
        tree.update((pid, proc_starttime(pid)) for pid in descendants(table, r))

    def left():
        return [pid for pid, t in tree.items() if t is not None and proc_starttime(pid) == t]
    for r in roots:
        try:
            os.killpg(r, signal.SIGTERM)
        except OSError:
            pass
    if not wait_for(lambda: not left(), grace, 0.05):
        for pid in left():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        wait_for(lambda: not left(), grace, 0.05)


def _guard():
    """The guardian of a run: a process of its own that reads, on stdin,
    "P PID START" for each process spawn() starts and "D PATH" for each
    directory own_dir() is given; when stdin ends, because the run ended
    however it died (SIGKILL too), it stops what is left of those
    processes and removes those directories (but with $PYEXEC_E2E_KEEP)."""
    roots, dirs = {}, []
    for line in sys.stdin:
        kind, rest = line.rstrip("\n").split(" ", 1)
        if kind == "P":
            pid, start = rest.split()
            roots[int(pid)] = int(start)
        else:
            dirs.append(rest)
    terminate_trees(roots)
    if not os.environ.get("PYEXEC_E2E_KEEP"):
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


_spawned = {}       # {Popen: start time} of every process spawn() started
_guardian = None


def _tell_guardian(line):
    global _guardian
    if _guardian is None:
        _guardian = subprocess.Popen(
            [sys.executable, "-B", "-c", "import sys; sys.path.insert(0, %r); "
             "import harness; harness._guard()" % HERE],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd="/", start_new_session=True)
    try:
        _guardian.stdin.write(line.encode("utf-8", "surrogateescape") + b"\n")
        _guardian.stdin.flush()
    except OSError:
        pass


def own_dir(path):
    """Registers a directory of a test's servers: removed when the run dies
    (by the guardian) if the run did not remove it. Returns path."""
    _tell_guardian("D " + path)
    return path


def spawn(argv, preexec=None, **kwargs):
    """subprocess.Popen(argv) for a server of a test: in a session (and so
    a process group) of its own; stopped with everything below it when the
    run is killed (kill_all), or dies (its parent-death signal, and the
    guardian)."""
    p = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_harness(preexec),
                         **kwargs)
    _spawned[p] = proc_starttime(p.pid)
    _tell_guardian("P %d %d" % (p.pid, _spawned[p] or 0))
    return p


def kill_all(grace=KILL_GRACE):
    """Every server's processes, at once, for a run that is being killed:
    no graceful stop (terminate_trees of what spawn() started); the
    servers' directories go."""
    terminate_trees({p.pid: t for p, t in _spawned.items() if p.poll() is None}, grace)
    for p in _spawned:
        p.poll()
    for s in _all_servers:
        s.cleanup_dir()


_all_servers = []
_current = threading.local()


class ServerError(Exception):
    pass


class _SpawnedMaster:
    """The pyexec master when lighttpd started it (bin-path): a process
    that is not our child, with the part of Popen's interface the tests
    use. Its exit status goes to lighttpd, which logs it when it reaps the
    child while running ("child exited: N", "child signalled: N"):
    returncode is that (N, or -N for a signal), or -1 when lighttpd said
    nothing (it does not reap what it kills when it stops)."""

    def __init__(self, pid, web_log=None, parent=None):
        self.pid = pid
        self._parent = parent       # lighttpd's Popen
        self.returncode = None
        self._start = self._starttime()
        self._web_log = web_log
        try:
            self._log_from = os.path.getsize(web_log) if web_log else 0
        except OSError:
            self._log_from = 0

    def _status_from_log(self):
        text = ((_read(self._web_log) or b"")[self._log_from:] if self._web_log else b"")
        found = re.findall(rb"child (exited|signalled): (\d+)", text)
        if len(found) != 1:
            return -1
        kind, n = found[0]
        return int(n) if kind == b"exited" else -int(n)

    def _starttime(self):
        stat = _read("/proc/%d/stat" % self.pid)
        if stat is None:
            return None
        try:
            return int(stat[stat.rindex(b")") + 2:].split()[19])
        except (ValueError, IndexError):
            return None

    def poll(self):
        if self.returncode is None:
            state = proc_status(self.pid, "State") or ""
            if (state == "" or state.startswith("Z") or state.startswith("X")
                    or self._starttime() != self._start):
                # lighttpd logs the status a moment after it reaps
                if self._parent is not None and self._parent.poll() is None:
                    wait_for(lambda: self._status_from_log() != -1, 0.5)
                self.returncode = self._status_from_log()
        return self.returncode

    def wait(self, timeout=None):
        if not wait_for(lambda: self.poll() is not None,
                        timeout if timeout is not None else 1e9, 0.02):
            raise subprocess.TimeoutExpired("pyexec-fcgi (pid %d)" % self.pid, timeout)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)


def _kib(size):
    """An nginx size ("50M", "3m", "100k", "4096") in KiB, rounded up."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", str(size))
    if not m:
        raise ValueError("bad size %r" % (size,))
    n = int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return (n + 1023) // 1024


class Server:
    """pyexec-fcgi behind nginx (or lighttpd) on a free loopback port.

    listen: "unix" (a socket pyexec opens), "tcp" (tcp:127.0.0.1:PORT),
    "fd" (a listening unix socket handed to pyexec as fd 0, the way a web
    server spawns a FastCGI program), "systemd" (that socket handed over
    as fd 3 with LISTEN_FDS=1 and LISTEN_PID, the way systemd's socket
    activation does), or with web="lighttpd" "bin-path" (lighttpd itself
    starts pyexec-fcgi on a socket as fd 0; its master is then lighttpd's
    child, and self.proc stands for it), or with web="apache" "fcgid" (the
    only mode there: mod_fcgid's process manager starts pyexec-fcgi on a
    socket as fd 0, up to `workers` processes with one request at a time
    each, passed as FcgidMaxProcessesPerClass instead of -w; pyexec's
    masters are Apache's grandchildren and self.proc stands for the first).
    options: extra -o KEY=VALUE strings. web: "nginx", "lighttpd" or
    "apache" (default $PYEXEC_TEST_WEB, else nginx); listen defaults to
    "bin-path" for lighttpd when $PYEXEC_TEST_LIGHTTPD_MODE is bin-path,
    "fcgid" for apache, else "unix". self.nginx is the web server's process
    whichever it is (also self.web_proc).
    """

    def __init__(self, name="main", options=(), workers=2, max_upload="50M",
                 client_max_body_size=None, env=None, listen=None,
                 timeout=10, read_timeout=120, args=(), sandbox=None,
                 conf_text="", before_start=None, use_site_conf=True, preexec=None,
                 web=None):
        self.web = web or DEFAULT_WEB
        if self.web not in ("nginx", "lighttpd", "apache"):
            raise ValueError("web server %r: nginx, lighttpd or apache" % (self.web,))
        if listen is None:
            listen = ("bin-path" if self.web == "lighttpd" and LIGHTTPD_MODE == "bin-path"
                      else "fcgid" if self.web == "apache" else "unix")
        if listen == "bin-path" and self.web != "lighttpd":
            raise ValueError("listen bin-path needs web=\"lighttpd\"")
        if (listen == "fcgid") != (self.web == "apache"):
            raise ValueError("web=\"apache\" starts pyexec-fcgi itself (listen \"fcgid\")")
        if listen in ("bin-path", "fcgid") and preexec is not None:
            raise ValueError("preexec: the web server starts pyexec-fcgi in %s mode" % listen)
        self.name = name
        self.options = list(options)
        self.workers = workers
        self.max_upload = max_upload
        self.client_max_body_size = client_max_body_size or max_upload
        self.extra_env = dict(env or {})
        self.listen_mode = listen
        self.timeout = timeout
        self.read_timeout = read_timeout
        self.extra_args = list(args)
        self.sandbox = sandbox if sandbox is not None else os.environ.get("PYEXEC_TEST_SANDBOX")
        # On the rlimits layer a run's RLIMIT_NPROC (max_processes) counts
        # every process of pyexec's user, as root nobody, whom the servers
        # of other suites running at the same time share: a suite run on
        # that layer ($PYEXEC_TEST_SANDBOX) gives its runs room for them,
        # unless the test sets max_processes itself.
        self.nproc_room = (sandbox is None and self.sandbox == "rlimits" and IS_ROOT and
                           not any(o.startswith("max_processes=") for o in self.options))
        self.conf_text = conf_text
        self.use_site_conf = use_site_conf
        self.before_start = before_start
        self.preexec = preexec      # run in the master's process before exec
        self.proc = None
        self.nginx = None
        self.tmp = None
        self.bin_dir = None
        # the directory nginx serves the playground from (None: no playground)
        self.playground = None
        self._log_mark = 0
        self._logf = None
        _all_servers.append(self)

    # paths
    @property
    def pyexec_log(self):
        return os.path.join(self.tmp, "pyexec.log")

    @property
    def nginx_log(self):
        """The web server's error log (nginx's or lighttpd's)."""
        if self.web == "lighttpd":
            return os.path.join(self.tmp, "lighttpd-error.log")
        if self.web == "apache":
            return os.path.join(self.tmp, "apache-error.log")
        return os.path.join(self.tmp, "nginx-error.log")

    web_log = nginx_log

    @property
    def web_proc(self):
        return self.nginx

    def url(self, path="/execute"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    @property
    def binary(self):
        """The pyexec-fcgi this server runs (under Apache, its copy)."""
        if self.bin_dir:
            return os.path.join(self.bin_dir, "pyexec-fcgi")
        return pyexec_path()

    def pyexec_argv(self):
        argv = [self.binary, "-c", self.conf, "-l", self.listen]
        if self.workers is not None and self.listen_mode != "fcgid":
            # under mod_fcgid, `workers` is FcgidMaxProcessesPerClass and
            # pyexec chooses its one worker by itself
            argv += ["-w", str(self.workers)]
        argv += ["-o", "work_root=" + self.work_root,
                "-o", "deps_cache=" + os.path.join(self.tmp, "deps"),
                "-o", "max_upload=" + str(self.max_upload)]
        if self.timeout is not None:
            argv += ["-o", "timeout=" + str(self.timeout)]
        if self.sandbox:
            argv += ["-o", "sandbox=" + self.sandbox]
        if self.nproc_room:
            argv += ["-o", "max_processes=%d" % SHARED_USER_PROCESSES]
        for o in self.options:
            argv += ["-o", o]
        return argv + self.extra_args

    def command(self, *args, timeout=120):
        """pyexec-fcgi with this server's configuration but its socket and
        workers, and args (--prefetch ...): (exit status, its output)."""
        argv, skip = [], False
        for a in self.pyexec_argv():
            if skip:
                skip = False
            elif a in ("-l", "-w"):
                skip = True
            else:
                argv.append(a)
        p = spawn(argv + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                  stderr=subprocess.STDOUT, cwd="/")
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out.decode("utf-8", "replace")

    def start(self):
        if not os.access(pyexec_path(), os.X_OK):
            raise ServerError("pyexec-fcgi not found at %s (set PYEXEC_FCGI)" % pyexec_path())
        self.tmp = own_dir(tempfile.mkdtemp(prefix="pyexec-e2e-%s-" % self.name, dir="/tmp"))
        os.chmod(self.tmp, 0o755)
        if self.listen_mode == "fcgid":
            # mod_fcgid starts pyexec as Apache's User, who may not reach
            # the build tree (a checkout in a 0700 directory): it runs a
            # copy in a directory of its own, which is also its cwd
            # (mod_fcgid changes to the wrapper's directory), so not one
            # inside self.tmp, where a process counts as a leftover.
            if self.bin_dir is None:
                self.bin_dir = own_dir(tempfile.mkdtemp(prefix="pyexec-bin-%s-" % self.name,
                                                        dir="/tmp"))
                os.chmod(self.bin_dir, 0o755)
                shutil.copy(pyexec_path(), self.binary)
                os.chmod(self.binary, 0o755)
        # work_root sits in a directory the unprivileged user may write, so
        # an escape through a hostile name would really leave a file there.
        self.outer = os.path.join(self.tmp, "outer")
        os.mkdir(self.outer)
        os.chmod(self.outer, 0o777)
        self.work_root = os.path.join(self.outer, "work")
        self.conf = os.path.join(self.tmp, "pyexec.conf")
        with open(self.conf, "w") as f:
            f.write(self.conf_text or "# empty: the tests set everything with -o\n")
        self.port = free_port()
        sock_path = os.path.join(self.tmp, "pyexec.sock")
        fd_sock = None
        if self.listen_mode == "unix":
            self.listen = "unix:" + sock_path
            self.upstream = "unix:" + sock_path
        elif self.listen_mode == "tcp":
            fport = free_port()
            self.listen = "tcp:127.0.0.1:%d" % fport
            self.upstream = "127.0.0.1:%d" % fport
        elif self.listen_mode == "bin-path":
            self.listen = "fd:0"          # lighttpd's socket, as fd 0
            self.upstream = "unix:" + sock_path
            # lighttpd numbers the sockets of its bin-path processes
            self.sock_path = sock_path + "-0"
        elif self.listen_mode == "fcgid":
            self.listen = "fd:0"          # mod_fcgid's socket, as fd 0
            self.upstream = None
            if IS_ROOT:
                # pyexec runs as Apache's User (nobody) and cannot drop
                # privileges: its deps_cache must be nobody's
                os.mkdir(os.path.join(self.tmp, "deps"), 0o700)
                os.chown(os.path.join(self.tmp, "deps"), 65534, 65534)
        elif self.listen_mode in ("fd", "systemd"):
            fd_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            fd_sock.bind(sock_path)
            os.chmod(sock_path, 0o666)
            fd_sock.listen(128)
            self.listen = "fd:0"
            self.upstream = "unix:" + sock_path
            self.sock_path = sock_path
            self.sock_ino = os.fstat(fd_sock.fileno()).st_ino  # socket:[ino] in /proc/PID/fd
        else:
            raise ValueError(self.listen_mode)
        if self.before_start:
            self.before_start(self)
        env = dict(os.environ)
        env.update(self.extra_env)
        self._logf = open(self.pyexec_log, "ab")
        argv = self.pyexec_argv()
        if self.listen_mode in ("fd", "systemd", "bin-path", "fcgid"):
            i = argv.index("-l")
            del argv[i:i + 2]   # found on fd 0 (or fd 3) by itself
        if self.listen_mode == "systemd":
            argv = socket_activation_argv(argv)
        self.argv = argv
        if self.listen_mode == "bin-path":
            # lighttpd starts it, with lighttpd's environment and with
            # lighttpd's stdout and stderr (this log).
            self.proc = None
            self._start_lighttpd(env)
            self._wait_ready()
            return self
        if self.listen_mode == "fcgid":
            # Apache's mod_fcgid starts it when the first request comes,
            # with PATH and FcgidInitialEnv as its environment and Apache's
            # main ErrorLog (this log) as stdout and stderr.
            self.proc = None
            self._start_apache()
            self._wait_ready()
            return self
        self.proc = spawn(
            argv, preexec=self.preexec,
            stdin=fd_sock.fileno() if fd_sock else subprocess.DEVNULL,
            stdout=self._logf, stderr=self._logf, env=env, cwd="/")
        if fd_sock:
            fd_sock.close()
        if self.web == "lighttpd":
            self._start_lighttpd(dict(os.environ))
        else:
            self._start_nginx()
        self._wait_ready()
        return self

    def _site_from_repo(self):
        """The operator's site file, conf/nginx/pyexec.conf, with our port,
        body limit and socket put in; None when it is missing or has
        changed shape (then the built-in site below is used)."""
        text = _read(SITE_CONF, "r")
        if text is None:
            return None
        subs = [
            (r"(?m)^(\s*)server\s+unix:[^;]*;", r"\g<1>server %s;" % self.upstream),
            (r"(?m)^(\s*)listen\s+[^;]*;", r"\g<1>listen 127.0.0.1:%d;" % self.port),
            (r"(?m)^(\s*)client_max_body_size\s+[^;]*;",
             r"\g<1>client_max_body_size %s;" % self.client_max_body_size),
            (r"(?m)^(\s*)include\s+fastcgi_params;", r"\g<1>include %s;" % FASTCGI_PARAMS),
        ]
        for pat, rep in subs:
            text, n = re.subn(pat, rep, text)
            if n != 1:
                return None
        # The playground's locations (any number of them, or none) serve
        # the repository's playground/.
        root = r"(?m)^(\s*)root\s+[^;]*;"
        if re.search(root, text):
            pg = self._playground_dir()
            text = re.sub(root, lambda m: m.group(1) + 'root "%s";' % pg, text)
            self.playground = pg
        return text

    def _playground_dir(self):
        """The repository's playground/, or a copy of it in the server's
        directory when nginx's workers (nobody, as root) could not read it
        where it is, or its path cannot be written in nginx's syntax."""
        src = PLAYGROUND_DIR
        if not os.path.isdir(src):
            return src
        plain = not re.search(r'[\s"\\$;{}]', src)
        if plain and (not IS_ROOT or _others_can_read(src)):
            return src
        dst = os.path.join(self.tmp, "playground")
        if not os.path.isdir(dst):
            shutil.copytree(src, dst)
            for dirpath, _, files in os.walk(dst):
                os.chmod(dirpath, 0o755)
                for n in files:
                    os.chmod(os.path.join(dirpath, n), 0o644)
        return dst

    def _nginx_conf(self):
        user = "user nobody nogroup;" if IS_ROOT else ""
        t = self.tmp
        self.playground = None
        site = self._site_from_repo() if self.use_site_conf else None
        self.site_source = SITE_CONF if site else "built-in"
        if site is None:
            site = textwrap.dedent("""\
                server {{
                    listen 127.0.0.1:{port};
                    server_name localhost;
                    client_max_body_size {cmbs};
                    location / {{
                        fastcgi_pass {upstream};
                        include {params};
                        fastcgi_request_buffering on;
                        fastcgi_read_timeout {rt}s;
                        fastcgi_send_timeout {rt}s;
                    }}
                }}
                """).format(port=self.port, cmbs=self.client_max_body_size,
                            upstream=self.upstream, params=FASTCGI_PARAMS,
                            rt=self.read_timeout)
        return textwrap.dedent("""\
            daemon off;
            master_process on;
            worker_processes 1;
            {user}
            pid {t}/nginx.pid;
            error_log {t}/nginx-error.log warn;
            events {{ worker_connections 1024; }}
            http {{
                access_log {t}/nginx-access.log;
                client_body_temp_path {t}/nginx-tmp/body;
                fastcgi_temp_path {t}/nginx-tmp/fastcgi;
                proxy_temp_path {t}/nginx-tmp/proxy;
                uwsgi_temp_path {t}/nginx-tmp/uwsgi;
                scgi_temp_path {t}/nginx-tmp/scgi;
            """).format(user=user, t=t) + textwrap.indent(site, "    ") + "}\n"

    def _start_nginx(self):
        os.mkdir(os.path.join(self.tmp, "nginx-tmp"))
        os.chmod(os.path.join(self.tmp, "nginx-tmp"), 0o755)
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self._nginx_conf())
        self._nginx_out = open(os.path.join(self.tmp, "nginx-stderr.log"), "ab")
        self.nginx = spawn(
            [NGINX, "-p", self.tmp, "-c", conf, "-e", self.nginx_log],
            stdin=subprocess.DEVNULL, stdout=self._nginx_out, stderr=self._nginx_out, cwd="/")

    # lighttpd
    def _lighttpd_site_from_repo(self):
        """The operator's site file for lighttpd (conf/lighttpd/pyexec.conf,
        or pyexec-bin-path.conf in bin-path mode) with our port, body limit,
        socket (and in bin-path mode our pyexec-fcgi command) put in; None
        when it is missing or has changed shape."""
        bin_path = self.listen_mode == "bin-path"
        text = _read(LIGHTTPD_BIN_PATH_CONF if bin_path else LIGHTTPD_SITE_CONF, "r")
        if text is None:
            return None
        if self.upstream.startswith("unix:"):
            backend = '"socket" => "%s",' % self.upstream[len("unix:"):]
        else:
            host, port = self.upstream.rsplit(":", 1)
            backend = '"host" => "%s", "port" => %s,' % (host, port)
        subs = [
            (r'(?m)^(\s*)\$SERVER\["socket"\]\s*==\s*"[^"]*"',
             r'\g<1>$SERVER["socket"] == "127.0.0.1:%d"' % self.port),
            (r'(?m)^(\s*)"socket"\s*=>\s*"[^"]*",', r"\g<1>" + backend.replace("\\", "\\\\")),
            (r"(?m)^(\s*)server\.max-request-size\s*=\s*\d+",
             r"\g<1>server.max-request-size = %d" % _kib(self.client_max_body_size)),
        ]
        if bin_path:
            subs.append((r'(?m)^(\s*)"bin-path"\s*=>\s*"[^"]*",',
                         r'\g<1>"bin-path" => "%s",' % self._bin_path_command()))
        for pat, rep in subs:
            text, n = re.subn(pat, lambda m, rep=rep: m.expand(rep), text)
            if n != 1:
                return None
        return text

    def _bin_path_command(self):
        """pyexec-fcgi's command line as lighttpd's "bin-path" or mod_fcgid's
        FcgidWrapper: both split it at blanks and know no quoting."""
        for a in self.argv:
            if not a or re.search(r'[\s"\\]', a):
                raise ServerError("%s: argument %r cannot be passed through %s"
                                  % (self.listen_mode, a, self.web))
        return " ".join(self.argv)

    def _lighttpd_conf(self):
        t = self.tmp
        site = self._lighttpd_site_from_repo() if self.use_site_conf else None
        bin_path = self.listen_mode == "bin-path"
        self.site_source = ((LIGHTTPD_BIN_PATH_CONF if bin_path else LIGHTTPD_SITE_CONF)
                            if site else "built-in")
        if site is None:
            if self.upstream.startswith("unix:"):
                backend = '"socket" => "%s",' % self.upstream[len("unix:"):]
            else:
                host, port = self.upstream.rsplit(":", 1)
                backend = '"host" => "%s", "port" => %s,' % (host, port)
            if bin_path:
                backend += ' "bin-path" => "%s", "max-procs" => 1,' % self._bin_path_command()
            site = textwrap.dedent("""\
                server.modules += ( "mod_fastcgi" )
                $SERVER["socket"] == "127.0.0.1:{port}" {{
                    server.max-request-size = {kib}
                    fastcgi.server = ( "/" => (( {backend}
                        "check-local" => "disable", "read-timeout" => {rt} )) )
                }}
                """).format(port=self.port, kib=_kib(self.client_max_body_size),
                            backend=backend, rt=self.read_timeout)
        # As root: in bin-path mode lighttpd keeps root (server.username
        # unset), because it starts pyexec-fcgi after dropping privileges
        # and pyexec must start as root to drop to its own user; with a
        # socket pyexec listens on, lighttpd drops to nobody, as nginx's
        # workers do (pyexec's socket is nobody's, mode 0660).
        user = ('server.username = "nobody"\nserver.groupname = "nogroup"\n'
                if IS_ROOT and not bin_path else "")
        return textwrap.dedent("""\
            server.document-root = "{t}/lighttpd-www"
            server.bind = "127.0.0.1"
            server.port = {port}
            server.errorlog = "{t}/lighttpd-error.log"
            server.upload-dirs = ( "{t}/lighttpd-tmp" )
            server.modules = ( "mod_accesslog" )
            accesslog.filename = "{t}/lighttpd-access.log"
            """).format(t=t, port=self.port) + user + site

    def _start_lighttpd(self, env):
        """lighttpd in the foreground (-D). In bin-path mode its stdout and
        stderr are pyexec's log, since pyexec-fcgi, its child, keeps them."""
        t = self.tmp
        for d in ("lighttpd-www", "lighttpd-tmp"):
            os.mkdir(os.path.join(t, d))
        logs = [os.path.join(t, n) for n in ("lighttpd-error.log", "lighttpd-access.log")]
        for f in logs:
            open(f, "ab").close()
        if IS_ROOT and self.listen_mode != "bin-path":
            # opened after lighttpd has dropped to nobody
            for f in logs + [os.path.join(t, "lighttpd-tmp")]:
                os.chown(f, 65534, 65534)
        conf = os.path.join(t, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(self._lighttpd_conf())
        if self.listen_mode == "bin-path":
            out = self._logf
        else:
            out = self._nginx_out = open(os.path.join(t, "lighttpd-stderr.log"), "ab")
        self.nginx = spawn(
            [LIGHTTPD, "-D", "-f", conf], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            env=env, cwd="/")

    # apache
    def _fcgid_env(self):
        """What pyexec gets in its environment under mod_fcgid besides PATH:
        the test's env, and the sanitizers' options."""
        env = {k: v for k, v in os.environ.items()
               if k.startswith(("ASAN_", "LSAN_", "UBSAN_"))}
        env.update(self.extra_env)
        for k, v in env.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) or re.search(r'["\\\n]', v):
                raise ServerError("FcgidInitialEnv: %r=%r cannot be passed through apache"
                                  % (k, v))
        return env

    def _apache_site_from_repo(self):
        """The operator's site file for Apache (conf/apache/pyexec.conf) with
        our port, body limit, process count, logs and pyexec-fcgi command put
        in; None when it is missing or has changed shape."""
        text = _read(APACHE_SITE_CONF, "r")
        if text is None:
            return None
        t = self.tmp
        limit = _kib(self.client_max_body_size) * 1024
        subs = [
            (r"(?m)^(\s*)Listen\s+\S+", r"\g<1>Listen 127.0.0.1:%d" % self.port),
            (r"(?m)^(\s*)<VirtualHost\s+[^>]*>", r"\g<1><VirtualHost 127.0.0.1:%d>" % self.port),
            (r'(?m)^(\s*)FcgidWrapper\s+"[^"]*"\s+virtual',
             r'\g<1>FcgidWrapper "%s" virtual' % self._bin_path_command()),
            (r"(?m)^(\s*)LimitRequestBody\s+\d+", r"\g<1>LimitRequestBody %d" % limit),
            (r"(?m)^(\s*)FcgidMaxRequestLen\s+\d+", r"\g<1>FcgidMaxRequestLen %d" % limit),
            (r"(?m)^(\s*)FcgidMaxProcessesPerClass\s+\d+",
             r"\g<1>FcgidMaxProcessesPerClass %d" % (self.workers or 2)),
            (r"(?m)^(\s*)DocumentRoot\s+\S+", r"\g<1>DocumentRoot %s/apache-www" % t),
            (r"(?m)^(\s*)ErrorLog\s+\S+", r"\g<1>ErrorLog %s/apache-error.log" % t),
            (r"(?m)^(\s*)CustomLog\s+\S+", r"\g<1>CustomLog %s/apache-access.log" % t),
        ]
        for pat, rep in subs:
            text, n = re.subn(pat, lambda m, rep=rep: m.expand(rep), text)
            if n != 1:
                return None
        env = "".join('    FcgidInitialEnv %s "%s"\n' % kv for kv in self._fcgid_env().items())
        text, n = re.subn(r"(?m)^</VirtualHost>", lambda m: env + m.group(0), text)
        return text if n == 1 else None

    def _apache_conf(self):
        t = self.tmp
        site = self._apache_site_from_repo() if self.use_site_conf else None
        self.site_source = APACHE_SITE_CONF if site else "built-in"
        if site is None:
            env = "".join('    FcgidInitialEnv %s "%s"\n' % kv
                          for kv in self._fcgid_env().items())
            site = textwrap.dedent("""\
                Listen 127.0.0.1:{port}
                <VirtualHost 127.0.0.1:{port}>
                    DocumentRoot {t}/apache-www
                    LimitRequestBody {limit}
                    <Location "/">
                        SetHandler fcgid-script
                        FcgidWrapper "{cmd}" virtual
                        Options +ExecCGI
                        Require all granted
                        CGIPassAuth On
                    </Location>
                    FcgidMaxProcessesPerClass {procs}
                    FcgidIOTimeout {rt}
                    FcgidMaxRequestLen {limit}
                    ErrorLog {t}/apache-error.log
                    CustomLog {t}/apache-access.log combined
                """).format(port=self.port, t=t, cmd=self._bin_path_command(),
                            limit=_kib(self.client_max_body_size) * 1024,
                            procs=self.workers or 2, rt=self.read_timeout) + env + "</VirtualHost>\n"
        # As root Apache must have a User: its children and mod_fcgid's
        # process manager, and so pyexec, run as nobody.
        user = "User nobody\nGroup nogroup\n" if IS_ROOT else ""
        mods = "".join("LoadModule %s_module %s/mod_%s.so\n" % (m, APACHE_MODULES, m)
                       for m in ("mpm_event", "authz_core", "reqtimeout", "fcgid"))
        return textwrap.dedent("""\
            ServerRoot {t}
            ServerName localhost
            PidFile {t}/apache.pid
            DefaultRuntimeDir {t}/apache-run
            Mutex file:{t}/apache-run default
            ErrorLog {t}/pyexec.log
            LogLevel warn
            LogFormat "%h %l %u %t \\"%r\\" %>s %b" combined
            StartServers 1
            ServerLimit 2
            ThreadsPerChild 32
            MaxRequestWorkers 64
            FcgidIPCDir {t}/apache-run/fcgid-sock
            FcgidProcessTableFile {t}/apache-run/fcgid-shm
            """).format(t=t).replace("FcgidIPCDir", mods + user + "FcgidIPCDir", 1) + site

    def _start_apache(self):
        """apache2 in the foreground (-DFOREGROUND), its own ServerRoot,
        PidFile, runtime and mutex directory in self.tmp. Its main ErrorLog
        is pyexec's log: mod_fcgid gives it to pyexec as stdout and stderr."""
        t = self.tmp
        os.mkdir(os.path.join(t, "apache-www"))
        os.mkdir(os.path.join(t, "apache-run"), 0o755)
        for n in ("apache-error.log", "apache-access.log"):
            open(os.path.join(t, n), "ab").close()
        conf = os.path.join(t, "apache.conf")
        with open(conf, "w") as f:
            f.write(self._apache_conf())
        self._nginx_out = open(os.path.join(t, "apache-stderr.log"), "ab")
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C"}
        self.nginx = spawn(
            [APACHE, "-DFOREGROUND", "-f", conf], stdin=subprocess.DEVNULL,
            stdout=self._nginx_out, stderr=self._nginx_out, env=env, cwd="/")

    def _fcgid_masters(self, table=None):
        """Under Apache: the pyexec-fcgi masters mod_fcgid started (pyexec
        processes in Apache's tree whose parent is not pyexec), oldest first."""
        if self.nginx is None:
            return []
        table = table if table is not None else proc_table()
        exe = os.path.realpath(self.binary)
        return sorted(pid for pid in descendants(table, self.nginx.pid)
                      if pid in table and table[pid]["exe"] == exe
                      and table.get(table[pid]["ppid"], {}).get("exe") != exe)

    def master_pids(self, table=None):
        """The running pyexec masters of this server: one, or under Apache
        every process mod_fcgid started."""
        if self.listen_mode == "fcgid":
            return self._fcgid_masters(table)
        if self.proc is not None and self.proc.poll() is None:
            return [self.proc.pid]
        return []

    def _find_spawned_master(self):
        """In bin-path mode: lighttpd's child that runs pyexec-fcgi."""
        if self.nginx is None or self.nginx.poll() is not None:
            return None
        exe = os.path.realpath(self.binary)
        kids = [pid for pid, i in proc_table().items()
                if i["ppid"] == self.nginx.pid and i["exe"] == exe]
        return _SpawnedMaster(kids[0], self.nginx_log, self.nginx) if len(kids) == 1 else None

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc is None and self.listen_mode == "bin-path":
                self.proc = self._find_spawned_master()
            if self.proc is None and self.listen_mode == "fcgid":
                masters = self._fcgid_masters()
                self.proc = _SpawnedMaster(masters[0]) if masters else None
            if self.proc is not None and self.proc.poll() is not None:
                self.stop()
                raise ServerError("pyexec-fcgi exited with %s at start-up:\n%s"
                                  % (self.proc.returncode, self.log_tail()))
            if self.nginx.poll() is not None:
                self.stop()
                raise ServerError("%s exited with %s at start-up:\n%s\n%s"
                                  % (self.web, self.nginx.returncode,
                                     self.tail(self.nginx_log), self.log_tail()))
            try:
                r = self.request("GET", "/healthz", timeout=2)
                if r.status == 200 and self.proc is not None:
                    return
                last = r.status
            except OSError as e:
                last = e
            time.sleep(0.05)
        self.stop()
        raise ServerError("no 200 from /healthz within %s s (last: %r)\n%s\n%s"
                          % (START_TIMEOUT, last, self.log_tail(), self.tail(self.nginx_log)))

    def alive(self):
        return (self.proc is not None and self.proc.poll() is None and
                self.nginx is not None and self.nginx.poll() is None)

    def stop(self):
        """SIGTERM to both masters, bounded wait, then SIGKILL. Returns
        pyexec's exit status (None if it had to be killed; -1 in bin-path
        mode when lighttpd stops it: the status is lighttpd's to reap)."""
        rc = None
        spawned = isinstance(self.proc, _SpawnedMaster)
        fcgid = self.listen_mode == "fcgid"
        if fcgid:
            # Apache stops mod_fcgid's processes (SIGTERM, SIGKILL after
            # 8 s) when it stops; every pyexec process is waited for here.
            kids = set()
            if self.nginx is not None:
                table = proc_table()
                for m in self._fcgid_masters(table):
                    kids |= {m} | set(descendants(table, m))
            order = (self.nginx,)
        elif spawned:
            # lighttpd sends its bin-path child SIGTERM when it stops, and
            # does not wait for it: the wait is ours.
            kids = set()
            if self.proc.poll() is None:
                kids = set(descendants(proc_table(), self.proc.pid))
            order = (self.nginx,)
        else:
            order = (self.nginx, self.proc)
        for p in order:
            if p is not None and p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        for p in (self.nginx, self.proc):
            if p is None:
                continue
            try:
                p.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                if p is self.proc and fcgid:
                    continue
                if p is self.proc and spawned:
                    for pid in [p.pid] + sorted(kids):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
                    p.wait(STOP_TIMEOUT)
                    continue
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.kill()
                p.wait()
        if spawned or fcgid:
            # the workers go with their master; bounded wait all the same
            if not wait_for(lambda: all(wait_pid_gone(k, 0) for k in kids), STOP_TIMEOUT, 0.05):
                for k in sorted(kids):
                    try:
                        os.kill(k, signal.SIGKILL)
                    except OSError:
                        pass
                _stop_reports.append((self.name, "pyexec processes left %.0f s after %s "
                                      "stopped (killed): %r" % (STOP_TIMEOUT, self.web,
                                                                sorted(kids))))
        if self.proc is not None:
            rc = self.proc.returncode
            found = sanitizer_lines((_read(self.pyexec_log) or b"").decode("utf-8", "replace"))
            if found and self.name not in [n for n, _ in _sanitizer_reports]:
                _sanitizer_reports.append((self.name, found))
        for f in (self._logf, getattr(self, "_nginx_out", None)):
            if f:
                f.close()
        self._logf = None
        return rc

    def cleanup_dir(self):
        if os.environ.get("PYEXEC_E2E_KEEP"):
            return
        for d in (self.tmp, self.bin_dir):
            if d and os.path.isdir(d):
                shutil.rmtree(d, ignore_errors=True)

    # logs
    @staticmethod
    def tail(path, lines=30, start=0):
        data = _read(path) or b""
        data = data[start:]
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def run_processes(self):
        """Processes of this server's requests still alive, as (pid, cmdline,
        cwd): anything carrying MARKER or sitting in its directory, and,
        while the master runs, its descendants other than its workers (in
        the namespace sandbox a run's cwd is /work of its own mount
        namespace, not a host directory)."""
        table = proc_table()
        run = set()
        for m in self.master_pids(table):
            run |= set(descendants(table, m))
        workers = self.worker_pids()
        run -= set(workers) | set(kept_pids(table, workers))
        out = []
        for pid, info in table.items():
            if pid == os.getpid():
                continue
            cwd = info["cwd"] or ""
            if pid in run or MARKER in info["cmdline"] or cwd.startswith(self.tmp + "/"):
                out.append((pid, info["cmdline"], cwd))
        return out

    def log_tail(self, lines=30):
        return self.tail(self.pyexec_log, lines)

    def mark_log(self):
        try:
            self._log_mark = os.path.getsize(self.pyexec_log)
        except OSError:
            self._log_mark = 0

    def log_since_mark(self):
        return (_read(self.pyexec_log) or b"")[self._log_mark:].decode("utf-8", "replace")

    # processes
    def worker_pids(self):
        """The master's children that run pyexec-fcgi (under Apache, those
        of every master mod_fcgid started)."""
        if self.proc is None:
            return []
        exe = os.path.realpath(self.binary)
        table = proc_table()
        masters = set(self.master_pids(table)) if self.listen_mode == "fcgid" else {self.proc.pid}
        return sorted(pid for pid, i in table.items()
                      if i["ppid"] in masters and i["exe"] == exe)

    def leftovers(self):
        """Processes that should not exist now: descendants of the master
        that are not its workers, anything carrying MARKER, anything whose
        cwd is inside this server's directory."""
        table = proc_table()
        me = os.getpid()
        bad = {}
        masters = self.master_pids(table)
        if masters:
            workers = set(self.worker_pids())
            workers |= set(kept_pids(table, workers))
            for m in masters:
                for pid in descendants(table, m):
                    if pid not in workers and pid in table:
                        bad[pid] = table[pid]
        for pid, info in table.items():
            if pid == me:
                continue
            if MARKER in info["cmdline"]:
                bad[pid] = info
            cwd = info["cwd"] or ""
            if self.tmp and (cwd == self.tmp or cwd.startswith(self.tmp + "/")):
                bad[pid] = info
        return bad

    def work_root_entries(self):
        try:
            return sorted(os.listdir(self.work_root))
        except FileNotFoundError:
            return []

    def check_clean(self, timeout=CLEAN_TIMEOUT):
        """Waits (bounded) until no leftover process and an empty work_root.
        Returns a list of problems (empty when clean); kills what is left so
        the next test starts clean."""
        def clean():
            return not self.leftovers() and not self.work_root_entries()
        if wait_for(clean, timeout, 0.05):
            return []
        problems = []
        for pid, info in self.leftovers().items():
            problems.append("process left: pid %d uid %s ppid %d cwd %s cmd %r"
                            % (pid, info["uid"], info["ppid"], info["cwd"], info["cmdline"]))
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        entries = self.work_root_entries()
        if entries:
            problems.append("work_root not empty: %r" % entries[:20])
            for e in entries:
                p = os.path.join(self.work_root, e)
                _force_rmtree(p)
        return problems

    # requests
    def request(self, method, path, body=None, headers=None, timeout=60):
        """One HTTP/1.1 request with http.client; returns a Reply."""
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return _checked(method, path, Reply(resp.status, Headers(resp.getheaders()), data,
                                                time.monotonic() - t0))
        finally:
            conn.close()

    def curl(self, args, path="/execute", query=None, timeout=60, cwd_files=None):
        """Runs curl with args against path (in a fresh directory holding
        cwd_files, {name: bytes}); returns a Reply."""
        d = tempfile.mkdtemp(prefix="pyexec-client-")
        try:
            for name, data in (cwd_files or {}).items():
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
            hdr = os.path.join(d, "headers")
            body = os.path.join(d, "body")
            url = self.url(path) + (("?" + query) if query else "")
            argv = [CURL, "-sS", "-D", hdr, "-o", body, "--max-time", str(timeout),
                    "-H", "Expect:"] + list(args) + [url]
            t0 = time.monotonic()
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=d, timeout=timeout + 10)
            elapsed = time.monotonic() - t0
            if r.returncode != 0:
                raise AssertionError("curl failed (%d): %s" % (r.returncode,
                                     r.stderr.decode("utf-8", "replace")))
            status, headers = _parse_header_file(_read(hdr) or b"")
            args = list(args)
            method = (args[args.index("-X") + 1] if "-X" in args else "HEAD" if "-I" in args
                      else "POST" if any(a in ("-F", "--data-binary", "-d") for a in args)
                      else "GET")
            return _checked(method, path, Reply(status, headers, _read(body) or b"", elapsed))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def post_execute(self, files, stdin=None, query=None, headers=None,
                     path="/execute", raw=False, extra_parts=(), timeout=60):
        """POSTs files ({name: bytes}, in order) as the seed's clients do
        (curl -F "files=@path;filename=name"), plus a stdin part when given.
        raw=True builds the body by hand (for names curl cannot send) and
        sends it with --data-binary. Returns a Reply."""
        hdr_args = []
        for k, v in (headers or {}).items():
            hdr_args += ["-H", "%s: %s" % (k, v)]
        d = tempfile.mkdtemp(prefix="pyexec-upload-")
        try:
            if raw:
                parts = [("files", name, data, "application/octet-stream")
                         for name, data in files.items()]
                if stdin is not None:
                    parts.append(("stdin", None, stdin, None))
                parts += list(extra_parts)
                body, ctype = build_multipart(parts)
                bp = os.path.join(d, "body")
                with open(bp, "wb") as f:
                    f.write(body)
                args = ["-X", "POST", "--data-binary", "@" + bp,
                        "-H", "Content-Type: " + ctype]
            else:
                args = []
                for i, (name, data) in enumerate(files.items()):
                    p = os.path.join(d, "f%d" % i)
                    with open(p, "wb") as f:
                        f.write(data)
                    args += ["-F", 'files=@%s;filename="%s"' % (p, name)]
                if stdin is not None:
                    p = os.path.join(d, "stdin")
                    with open(p, "wb") as f:
                        f.write(stdin)
                    args += ["-F", "stdin=<" + p]
                for name, filename, data, _ctype in extra_parts:
                    p = os.path.join(d, "x%d" % len(args))
                    with open(p, "wb") as f:
                        f.write(data)
                    if filename is None:
                        args += ["-F", "%s=<%s" % (name, p)]
                    else:
                        args += ["-F", '%s=@%s;filename="%s"' % (name, p, filename)]
            return self.curl(args + hdr_args, path=path, query=query, timeout=timeout)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def post_body(self, body, content_type, path="/execute", query=None, headers=None,
                  timeout=60):
        """POSTs body bytes as they are with the given Content-Type (None = no
        Content-Type header) through curl."""
        d = tempfile.mkdtemp(prefix="pyexec-upload-")
        try:
            bp = os.path.join(d, "body")
            with open(bp, "wb") as f:
                f.write(body)
            args = ["-X", "POST", "--data-binary", "@" + bp]
            args += ["-H", "Content-Type: " + content_type if content_type is not None
                     else "Content-Type:"]
            for k, v in (headers or {}).items():
                args += ["-H", "%s: %s" % (k, v)]
            return self.curl(args, path=path, query=query, timeout=timeout)
        finally:
            shutil.rmtree(d, ignore_errors=True)


def _force_rmtree(path):
    def onerror(func, p, exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
        except OSError:
            pass
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        except OSError:
            pass
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, onerror=onerror)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


_shared = {}


def shared(name, **kwargs):
    """A server shared by the tests of one run (started on first use,
    restarted when it died, stopped by main())."""
    s = _shared.get(name)
    if s is not None and not s.alive():
        s.stop()
        _shared.pop(name)
        raise ServerError("shared server %r had died:\n%s" % (name, s.log_tail()))
    if s is None:
        s = Server(name=name, **kwargs)
        s.start()
        _shared[name] = s
    return s


def stop_all():
    for s in list(_all_servers):
        s.stop()
        s.cleanup_dir()
    _shared.clear()


def _on_kill_signal(sig, frame):
    """SIGTERM, SIGINT, SIGHUP: the run is being killed (a CI time limit,
    Ctrl-C); its servers go with it."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    sys.stdout.write("Bail out! killed by signal %d; the servers are stopped\n" % sig)
    sys.stdout.flush()
    kill_all()
    os._exit(128 + sig)


def die_with_signals():
    """A killed run (SIGTERM, SIGINT, SIGHUP) stops its servers before it
    ends: main() calls this."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_kill_signal)


# ---------------------------------------------------------------- tests

class E2ETestCase(unittest.TestCase):
    """A test that talks to one or more servers; after it, each must be
    clean (no process left, nothing in work_root)."""

    maxDiff = 4000

    def setUp(self):
        self._servers = []
        _current.servers = self._servers

    def use(self, server):
        """Registers a server (started if needed) for the end-of-test checks."""
        if server.proc is None:
            server.start()
        server.mark_log()
        self._servers.append(server)
        return server

    def server(self, name="main", **kwargs):
        return self.use(shared(name, **kwargs))

    def private_server(self, **kwargs):
        """A server of this test alone, stopped when it ends."""
        s = Server(**kwargs)
        self.use(s)
        self.addCleanup(lambda: (s.stop(), s.cleanup_dir()))
        return s

    def tearDown(self):
        problems = []
        shared_servers = set(map(id, _shared.values()))
        for s in self._servers:
            if s.proc is not None and s.proc.poll() is None:
                problems += ["[%s] %s" % (s.name, p) for p in s.check_clean()]
            elif id(s) in shared_servers:
                problems.append("[%s] pyexec-fcgi died (status %s):\n%s"
                                % (s.name, s.proc.returncode if s.proc else None,
                                   s.log_tail()))
            if s.tmp is not None:
                found = sanitizer_lines(s.log_since_mark())
                if found:
                    problems.append("[%s] sanitizer report in pyexec's log:\n%s"
                                    % (s.name, "\n".join(found[:20])))
        if problems:
            self.fail("after the test:\n" + "\n".join(problems))

    def start_fails(self, args, conf=None):
        """Starts pyexec-fcgi with args (and conf as its file), expects it to
        refuse to start; returns (its output, the config path it was given)."""
        d = tempfile.mkdtemp(prefix="pyexec-e2e-bad-")
        os.chmod(d, 0o755)      # reachable once pyexec has dropped to nobody
        try:
            c = os.path.join(d, "pyexec.conf")
            with open(c, "w") as f:
                f.write(conf or "")
            argv = [pyexec_path(), "-c", c, "-l", "unix:" + os.path.join(d, "s.sock"),
                    "-o", "work_root=" + os.path.join(d, "work"),
                    "-o", "deps_cache=" + os.path.join(d, "deps")] + list(args)
            p = spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, cwd="/")
            try:
                out, _ = p.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
                self.fail("%r started instead of failing" % (args,))
            self.assertNotEqual(p.returncode, 0)
            return out.decode("utf-8", "replace"), c
        finally:
            shutil.rmtree(d, ignore_errors=True)

    # assertions on replies
    def assertStatus(self, reply, status):
        if reply.status != status:
            self.fail("expected HTTP %d, got:\n%s" % (status, reply.describe()))

    def assertRan(self, reply, exec_status="ok", exit_code=0):
        """A 200 multipart reply of a run with the given outcome."""
        self.assertStatus(reply, 200)
        self.assertTrue(reply.content_type.startswith("multipart/form-data; boundary="),
                        reply.describe())
        self.assertEqual(reply.headers.get("X-Execution-Status"), exec_status,
                         reply.describe())
        if exit_code is not None:
            self.assertEqual(reply.headers.get("X-Exit-Code"), str(exit_code),
                             reply.describe())
            self.assertNotIn("X-Signal", reply.headers)

    def assertSameRun(self, a, b, names=("A", "B"), normalize=None):
        """Two replies whose runs a client cannot tell apart (run_outcome,
        each passed through normalize when given); a difference is shown
        as a diff of the two."""
        oa, ob = run_outcome(a), run_outcome(b)
        if normalize is not None:
            oa, ob = normalize(oa, a), normalize(ob, b)
        if oa == ob:
            return
        lines = []
        for key in sorted(set(oa) | set(ob)):
            va, vb = oa.get(key), ob.get(key)
            if va == vb:
                continue
            if isinstance(va, bytes) and isinstance(vb, bytes):
                ta = va.decode("utf-8", "backslashreplace").splitlines(keepends=True)
                tb = vb.decode("utf-8", "backslashreplace").splitlines(keepends=True)
                lines.append("%s differs:\n%s" % (key, "".join(difflib.unified_diff(
                    ta, tb, names[0], names[1]))))
            else:
                lines.append("%s differs:\n  %s: %r\n  %s: %r"
                             % (key, names[0], va, names[1], vb))
        self.fail("the runs differ:\n" + "\n".join(lines))

    def assertError(self, reply, status, detail_contains=None):
        """An error reply: status and JSON {"detail", "error"}."""
        self.assertStatus(reply, status)
        self.assertTrue(reply.content_type.startswith("application/json"),
                        "error reply is not JSON:\n" + reply.describe())
        doc = reply.json()
        self.assertIsInstance(doc.get("detail"), str, reply.describe())
        self.assertIsInstance(doc.get("error"), str, reply.describe())
        self.assertTrue(doc["detail"].strip(), reply.describe())
        if detail_contains is not None:
            want = [detail_contains] if isinstance(detail_contains, str) else detail_contains
            for w in want:
                self.assertIn(w.lower(), doc["detail"].lower(), reply.describe())
        return doc


class TapResult(unittest.TestResult):
    """One TAP line per test, diagnostics as "# " lines."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.n = 0
        self.failed_count = 0
        self._in_test = False

    def _emit(self, s):
        self.stream.write(s + "\n")
        self.stream.flush()

    def startTest(self, test):
        super().startTest(test)
        self._in_test = True
        self._state = "ok"
        self._skip = None
        self._diag = []
        self._t0 = time.monotonic()

    def _record(self, test, err):
        self._state = "not ok"
        self._diag.append(self._exc_info_to_string(err, test))
        for s in getattr(_current, "servers", []) or []:
            if s.tmp:
                self._diag.append("--- pyexec log [%s] (this test) ---\n%s"
                                  % (s.name, "\n".join(s.log_since_mark().splitlines()[-40:])))
                self._diag.append("--- %s error log [%s] ---\n%s"
                                  % (getattr(s, "web", "nginx"), s.name,
                                     s.tail(s.nginx_log, 10)))
        if not self._in_test:
            # a class or module fixture failed outside any test
            self.n += 1
            self.failed_count += 1
            self._emit("not ok %d - %s" % (self.n, test))
            for d in self._diag:
                for line in d.splitlines():
                    self._emit("# " + line)

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._record(subtest, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._skip = reason

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._state = "not ok"

    def stopTest(self, test):
        super().stopTest(test)
        self._in_test = False
        _current.servers = []
        self.n += 1
        name = test.id().split(".", 1)[-1]
        line = "%s %d - %s" % (self._state, self.n, name)
        if self._skip is not None and self._state == "ok":
            line += " # SKIP " + self._skip
        self._emit(line)
        if self._state != "ok":
            self.failed_count += 1
            for d in self._diag:
                for l in d.splitlines():
                    self._emit("# " + l)
        self._emit("# %.2f s" % (time.monotonic() - self._t0))


def main(module="__main__"):
    """Runs the tests of module as TAP; exits 1 when any failed. Test names
    given on the command line select tests by substring."""
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromModule(sys.modules[module])
    tests = list(_flatten(suite))
    if len(sys.argv) > 1:
        tests = [t for t in tests if any(a in t.id() for a in sys.argv[1:])]
    t0 = time.monotonic()
    die_with_signals()
    print("1..%d" % len(tests), flush=True)
    result = TapResult(sys.stdout)
    try:
        if not os.access(pyexec_path(), os.X_OK):
            for t in tests:
                result.n += 1
                print("not ok %d - %s # pyexec-fcgi not built at %s"
                      % (result.n, t.id().split(".", 1)[-1], pyexec_path()))
            result.failed_count = len(tests)
        else:
            unittest.TestSuite(tests).run(result)
    finally:
        stop_all()
    # A report at a master's exit (LeakSanitizer) belongs to no one test.
    for name, found in _sanitizer_reports:
        print("# sanitizer report in the log of server [%s]:" % name)
        for line in found[:20]:
            print("#   " + line)
    for name, what in _stop_reports:
        print("# stopping server [%s]: %s" % (name, what))
    print("# %d tests, %d failed, %.1f s" % (result.n, result.failed_count,
                                             time.monotonic() - t0), flush=True)
    sys.exit(1 if result.failed_count or _sanitizer_reports or _stop_reports else 0)


def _flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t
