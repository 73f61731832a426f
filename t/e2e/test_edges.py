"""End-to-end: bad input at the edges, through a real nginx, asserting what
a client sees.

What the other suites already cover is not repeated here:
  body over pyexec's max_upload (nginx allows more): 413
                                   test_errors.Limits.test_413_body_over_max_upload
  body over nginx's client_max_body_size: 413 from nginx
                                   test_errors.Limits.test_413_from_nginx_itself
  more than max_files (5) files: 413
                                   test_errors.Limits.test_413_too_many_files
  a 256-byte component, depth 17: 400 that names the file
                                   test_errors.Errors.test_hostile_name_component_256_bytes,
                                   test_errors.Errors.test_hostile_name_depth_17
  a 255-byte name at the top, a file at depth 16 (short components)
                                   test_errors.NamesAccepted.test_names_at_the_limits
  invalid UTF-8, overlong '/', a surrogate: 400 that names it, nothing written
                                   test_errors.Errors.test_hostile_name_invalid_utf8,
                                   ..._overlong_utf8_slash, ..._utf8_surrogate
  a client that leaves half way through its body (Content-Length longer
  than what it sends, then close), buffered by nginx or streamed to pyexec
                                   test_faults.ClientLeavesDuringUpload.*
  a body trickled slowly            test_faults.SlowClients.*

This suite adds: the 413 for pyexec's max_upload with work_root on a
tmpfs barely larger than max_upload (so a server that wrote the body before
refusing it would answer 507, not 413), with Content-Length and chunked,
and nginx's own 413 never reaching pyexec; 10 000 one-byte files (413
naming the default limit of 200; a run that sees all of them with
max_files=10000; 10 001 refused); a 255-byte component at depth 16 read
and imported by the script (and a name of 16 such components, 4095 bytes,
the longest the rules allow), and a 400 that says which rule
for 256 bytes and depth 17; eight kinds of non-UTF-8 names, first and last
in the body, as `bad_file_name` with nothing left; Content-Length
shorter than the body (cut inside main.py, before the close delimiter,
after it) and longer than the body (client stalls until nginx's
client_body_timeout, or half-closes), with nginx buffering the body and
with nginx streaming it to pyexec; chunked bodies through nginx (raw
socket and curl); HTTP/1.0 clients without Host.
"""

import hashlib
import os
import re
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import script  # noqa: E402

HELLO = script('print("hello")\n')
MAIN = dict(workers=2)
BODY_TIMEOUT = 2          # nginx client_body_timeout of the stalling tests, seconds
PROMPT = 5.0              # seconds within which a plain request must answer


# ---------------------------------------------------------------- servers

class EdgeServer(harness.Server):
    """The shipped site, with nginx's client_body_timeout shortened (so a
    stalled client is given up in seconds, not 60) and, with
    streaming=True, fastcgi_request_buffering off (nginx passes the body
    on as it arrives, so pyexec reads it from a live client)."""

    def __init__(self, body_timeout=None, streaming=False, **kwargs):
        self.body_timeout = body_timeout
        self.streaming = streaming
        super().__init__(**kwargs)

    def _nginx_conf(self):
        text = super()._nginx_conf()
        if self.streaming:
            new = text.replace("fastcgi_request_buffering on;", "fastcgi_request_buffering off;")
            if new == text:
                raise harness.ServerError("no fastcgi_request_buffering line to turn off")
            text = new
        if self.body_timeout is not None:
            new = text.replace("http {\n", "http {\n    client_body_timeout %ds;\n"
                               % self.body_timeout, 1)
            if new == text:
                raise harness.ServerError("no http block in nginx.conf")
            text = new
        return text


# ---------------------------------------------------------------- raw HTTP

class RawReply:
    """One HTTP response read off a raw socket."""

    def __init__(self, status, version, headers, body):
        self.status = status
        self.version = version
        self.headers = headers
        self.body = body

    def as_reply(self):
        return harness.Reply(self.status, self.headers, self.body, 0.0)

    def __repr__(self):
        return "<RawReply %s %s %r>" % (self.version, self.status, self.body[:200])


def parse_responses(data, eof):
    """The complete responses at the start of data (bytes read off a
    socket; eof: the server closed it). Returns (responses, rest)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"(HTTP/\d\.\d) (\d{3})", lines[0])
        if not m:
            raise AssertionError("not an HTTP response: %r" % data[:300])
        pairs = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            pairs.append((k.strip(), v.strip()))
        h = harness.Headers(pairs)
        if h.get("Transfer-Encoding", "").lower() == "chunked":
            body, pos = b"", 0
            while True:
                nl = rest.find(b"\r\n", pos)
                if nl < 0:
                    return out, data
                size = int(rest[pos:nl].split(b";")[0], 16)
                if len(rest) < nl + 2 + size + 2:
                    return out, data
                body += rest[nl + 2:nl + 2 + size]
                pos = nl + 2 + size + 2
                if size == 0:
                    break
            rest = rest[pos:]
        elif h.get("Content-Length") is not None:
            n = int(h["Content-Length"])
            if len(rest) < n:
                return out, data
            body, rest = rest[:n], rest[n:]
        else:
            if not eof:
                return out, data
            body, rest = rest, b""
        out.append(RawReply(int(m.group(2)), m.group(1), h, body))
        data = rest
        if (h.get("Connection", "").lower() == "close"):
            break
    return out, data


class Exchange:
    """What a raw-socket client saw: the responses, whether (and when) the
    server closed the connection, and any bytes that were not a whole
    response."""

    def __init__(self, responses, closed, rest, elapsed):
        self.responses = responses
        self.closed = closed
        self.rest = rest
        self.elapsed = elapsed

    def __repr__(self):
        return "<Exchange %r closed=%s after %.2f s, rest %r>" % (
            self.responses, self.closed, self.elapsed, self.rest[:200])


def raw_exchange(port, data, want=1, linger=0.0, half_close=False, timeout=15.0):
    """Sends data on a fresh connection to 127.0.0.1:port, then reads until
    the server closes, or `want` responses are complete and `linger`
    more seconds passed, or timeout seconds passed in all. half_close:
    shut the sending side after data (the client says it is done)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    buf, closed, responses, rest = b"", False, [], b""
    try:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        done_at = None
        while True:
            now = time.monotonic()
            end = deadline if done_at is None else min(deadline, done_at + linger)
            if now >= end:
                break
            sock.settimeout(max(0.01, min(0.5, end - now)))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                closed = "reset"
                break
            if not chunk:
                closed = True
                break
            buf += chunk
            responses, rest = parse_responses(buf, False)
            if len(responses) >= want and done_at is None:
                done_at = time.monotonic()
    finally:
        sock.close()
    responses, rest = parse_responses(buf, bool(closed))
    return Exchange(responses, closed, rest, time.monotonic() - t0)


def request_head(ctype, length=None, version="1.1", host=True, extra=()):
    lines = ["POST /execute HTTP/%s" % version]
    if host:
        lines.append("Host: 127.0.0.1")
    lines.append("Content-Type: " + ctype)
    if length is not None:
        lines.append("Content-Length: %d" % length)
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(body, sizes):
    """body in chunked transfer coding, chunk sizes taken from sizes in
    turn (with a chunk extension on some, which a server must ignore)."""
    out, i, k = [], 0, 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        piece = body[i:i + n]
        ext = b";ext=1" if k % 3 == 1 else b""
        out.append(b"%x%s\r\n%s\r\n" % (len(piece), ext, piece))
        i += n
        k += 1
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def request_lines(server):
    """pyexec's request log lines since the mark."""
    return [l for l in server.log_since_mark().splitlines() if " request id=" in l]


def hash_script():
    """main.py that prints the sha256 of every upload and of stdin."""
    return script('''
        import hashlib, os, sys
        for root, dirs, files in sorted(os.walk(".")):
            for f in sorted(files):
                p = os.path.join(root, f)
                print(os.path.relpath(p, "."), hashlib.sha256(open(p, "rb").read()).hexdigest())
        print("stdin", hashlib.sha256(sys.stdin.buffer.read()).hexdigest())
        ''')


def sha(b):
    return hashlib.sha256(b).hexdigest()


class EdgeCase(harness.E2ETestCase):

    def hello(self, s, within=PROMPT):
        r = s.post_execute({"main.py": HELLO}, timeout=30)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")
        self.assertLess(r.elapsed, within, "a plain request took %.2f s" % r.elapsed)
        return r

    def edge_server(self, **kwargs):
        s = EdgeServer(**kwargs)
        self.use(s)
        self.addCleanup(lambda: (s.stop(), s.cleanup_dir()))
        return s


# ================================================================ 1. max_upload

class MaxUpload(EdgeCase):
    """max_upload=1M, nginx allows 4m, work_root on a 1.5 MiB tmpfs: a
    server that spooled the body to work_root before refusing it would run
    out of space (507), so a 413 here shows it refused first."""

    MAX = 1 << 20

    def setUp(self):
        super().setUp()
        self.mounts = []

        def mount_small(server):
            os.makedirs(server.work_root, exist_ok=True)
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k,mode=0755",
                                "pyexec-e2e-edges", server.work_root], stderr=subprocess.PIPE)
            if r.returncode != 0:
                raise harness.ServerError("mount tmpfs: " + r.stderr.decode(errors="replace"))
            self.mounts.append(server.work_root)

        def unmount():
            for m in self.mounts:
                subprocess.run(["umount", "-l", m])
        self.addCleanup(unmount)
        if not harness.IS_ROOT:
            self.skipTest("mounting a small tmpfs as work_root needs root")
        try:
            self.s = self.private_server(name="maxupload", max_upload="1M",
                                         client_max_body_size="4m", before_start=mount_small)
        except harness.ServerError as e:
            self.skipTest("cannot mount a tmpfs here: %s" % e)

    def body(self, size):
        return harness.build_multipart([
            ("files", "main.py", hash_script(), None),
            ("files", "big.bin", b"\xab" * size, "application/octet-stream")])

    def test_413_before_the_disk_fills(self):
        s = self.s
        self.assertTrue(os.path.ismount(s.work_root), "work_root is not the small tmpfs")
        body, ctype = self.body(3 << 20)
        want = "limit of %d bytes" % self.MAX
        # Content-Length, through curl
        r = s.post_body(body, ctype)
        doc = self.assertError(r, 413, want)
        self.assertEqual(doc["error"], "too_large")
        # chunked: nginx reads it all, then tells pyexec its length
        x = raw_exchange(s.port, request_head(ctype, extra=["Transfer-Encoding: chunked",
                                                            "Connection: close"])
                         + chunked(body, [65536, 1000, 7]))
        self.assertEqual(len(x.responses), 1, x)
        doc = self.assertError(x.responses[0].as_reply(), 413, want)
        self.assertEqual(doc["error"], "too_large")
        # over nginx's own limit: nginx answers, pyexec never sees it
        s.mark_log()
        big, bctype = self.body(5 << 20)
        r = s.post_body(big, bctype)
        self.assertStatus(r, 413)
        time.sleep(0.2)
        self.assertEqual(request_lines(s), [], "pyexec saw a body nginx refused")
        # and the tmpfs was usable all along: a body just under the limit runs
        ok = os.urandom(self.MAX - 4096)
        body, ctype = harness.build_multipart([
            ("files", "main.py", hash_script(), None), ("files", "big.bin", ok, None)])
        r = s.post_body(body, ctype)
        self.assertRan(r)
        self.assertIn(("big.bin " + sha(ok)).encode(), r.stdout)


# ================================================================ 2. many files

def many_files_body(n):
    """main.py plus n-1 one-byte files f00001.. (n files in all)."""
    parts = [("files", "main.py", script('''
        import hashlib, os
        h, n = hashlib.sha256(), 0
        for f in sorted(os.listdir(".")):
            if f.startswith("f"):
                h.update(f.encode() + open(f, "rb").read())
                n += 1
        print(n + 1, h.hexdigest())
        '''), None)]
    h = hashlib.sha256()
    for i in range(1, n):
        name = "f%05d" % i
        data = bytes([i % 251])
        parts.append(("files", name, data, None))
        h.update(name.encode() + data)
    body, ctype = harness.build_multipart(parts)
    return body, ctype, ("%d %s\n" % (n, h.hexdigest())).encode()


class ManyFiles(EdgeCase):

    def test_10000_files_over_the_default_limit_413(self):
        s = self.server("main", **MAIN)
        body, ctype, _ = many_files_body(10000)
        r = s.post_body(body, ctype)
        doc = self.assertError(r, 413, "200 files")
        self.assertEqual(doc["error"], "too_many_files")

    def test_10000_files_with_max_files_10000(self):
        s = self.private_server(name="manyfiles", options=["max_files=10000"])
        body, ctype, want = many_files_body(10000)
        r = s.post_body(body, ctype, timeout=60)
        self.assertRan(r)
        self.assertEqual(r.stdout, want)
        self.assertEqual(r.files, {})
        # one more than the limit is refused, naming it
        body, ctype, _ = many_files_body(10001)
        r = s.post_body(body, ctype)
        doc = self.assertError(r, 413, "10000 files")
        self.assertEqual(doc["error"], "too_many_files")


# ================================================================ 3. name length and depth

class NameLimits(EdgeCase):

    def setUp(self):
        super().setUp()
        self.s = self.server("main", **MAIN)

    def test_255_byte_component_at_depth_16_importable(self):
        # a module at depth 16 whose own name is 255 bytes, in packages p01..p15,
        # and beside it a data file whose name is 255 bytes too
        pkgs = ["p%02d" % i for i in range(1, 16)]
        mod = "m" * 252
        modpath = "/".join(pkgs) + "/" + mod + ".py"
        data = "/".join(pkgs) + "/" + "d" * 255
        self.assertEqual((len(modpath.split("/")), len(mod + ".py")), (16, 255))
        self.assertEqual((len(data.split("/")), len(data.rsplit("/", 1)[1])), (16, 255))
        files = {"main.py": script('''
            import importlib
            m = importlib.import_module(%r)
            print(m.VALUE)
            print(open(%r).read())
            ''' % (".".join(pkgs) + "." + mod, data)),
            modpath: b"VALUE = 'imported at depth 16'\n",
            data: b"read at depth 16"}
        r = self.s.post_execute(files, raw=True)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"imported at depth 16\nread at depth 16\n")
        self.assertEqual(r.files, {})

    # The longest name the rules allow, 16 components of 255 bytes (4095
    # bytes), also makes it into the namespace sandbox's /work.
    def test_longest_allowed_name_4095_bytes_readable(self):
        if self.s.request("GET", "/healthz").json().get("sandbox") != "namespaces":
            self.skipTest("the gap is in the namespace sandbox's copy of the uploads")
        comps = [("%02d" % i) + "d" * 253 for i in range(1, 17)]
        deep = "/".join(comps)
        self.assertEqual((len(comps), max(map(len, comps)), len(deep)), (16, 255, 4095))
        r = self.s.post_execute({"main.py": script('''
            import os
            os.chdir(os.path.dirname(%r))
            print(open(os.path.basename(%r)).read())
            ''' % (deep, deep)), deep: b"read at 4095 bytes"}, raw=True)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"read at 4095 bytes\n")

    def test_256_bytes_or_depth_17_is_400_saying_which_rule(self):
        long_leaf = "/".join(["d"] * 15) + "/" + "x" * 256
        too_deep = "/".join(["d"] * 16) + "/f.txt"
        cases = [(long_leaf, "longer than 255 bytes"),
                 ("x" * 256 + "/f.txt", "longer than 255 bytes"),
                 (too_deep, "deeper than 16 levels")]
        for name, rule in cases:
            r = self.s.post_execute({"main.py": HELLO, name: b"x"}, raw=True)
            doc = self.assertError(r, 400, rule)
            self.assertEqual(doc["error"], "bad_file_name", r.describe())
            # the file is named: the detail quotes it (shown in full or cut)
            self.assertIn(harness.sanitize(name)[:60], doc["detail"], r.describe())


# ================================================================ 4. non-UTF-8 names

NON_UTF8 = {
    "latin1": b"caf\xe9.py",
    "lone_continuation": b"a\x80b.txt",
    "truncated_at_end": b"end\xe2\x82",
    "truncated_mid": b"mid\xe2\x82x.txt",
    "overlong_nul": b"nul\xc0\x80.txt",
    "above_u10ffff": b"big\xf4\x90\x80\x80.txt",
    "f5_byte": b"f5\xf5\x80\x80\x80.txt",
    "in_a_directory": b"dir\xff/x.py",
}


class NonUtf8Names(EdgeCase):

    def test_non_utf8_names_are_bad_file_name_nothing_written(self):
        s = self.server("main", **MAIN)
        canary = script('open("ran", "w").write("ran")\n')
        for key, name in NON_UTF8.items():
            for first in (True, False):
                parts = [("files", name, b"pwned", "application/octet-stream")]
                other = [("files", "main.py", canary, None),
                         ("files", "ok.bin", os.urandom(200 << 10), None)]
                body, ctype = harness.build_multipart(parts + other if first else other + parts)
                r = s.post_body(body, ctype)
                doc = self.assertError(r, 400, "not valid UTF-8")
                self.assertEqual(doc["error"], "bad_file_name", (key, r.describe()))
                self.assertIn(harness.sanitize(name), doc["detail"], (key, r.describe()))
                self.assertEqual(s.check_clean(), [], key)
        for root, dirs, files in os.walk(s.tmp):
            for f in files + dirs:
                self.assertNotIn(f, ("ran", "ok.bin"), os.path.join(root, f))
        self.hello(s)


# ================================================================ 5. Content-Length that lies

def two_line_body():
    """A body whose main.py, cut after its first line, is still a valid
    program: a server that ran a cut body would print only "first"."""
    main = script('print("first")\nprint("second")\n')
    body, ctype = harness.build_multipart([("files", "main.py", main, None)],
                                          boundary="e2eEdgeBoundary")
    return body, ctype


class ContentLengthShort(EdgeCase):
    """Content-Length smaller than the body: nginx takes Content-Length
    bytes as the body and the rest as what follows it on the connection."""

    def setUp(self):
        super().setUp()
        self.s = self.server("main", **MAIN)

    def exchange(self, length, body, ctype, want=1, linger=1.0):
        return raw_exchange(self.s.port, request_head(ctype, length) + body,
                            want=want, linger=linger)

    def test_cut_inside_main_py_never_runs(self):
        body, ctype = two_line_body()
        cut = body.index(b'print("second")')
        x = self.exchange(cut, body, ctype, want=2)
        self.assertGreaterEqual(len(x.responses), 1, x)
        doc = self.assertError(x.responses[0].as_reply(), 400)
        self.assertEqual(doc["error"], "bad_multipart", x)
        self.assertNotIn("X-Execution-Status", x.responses[0].headers)
        # the rest of the bytes ('print("second")...') is nginx's next
        # request: a 400 of its own, then it closes
        self.assertEqual([r.status for r in x.responses[1:]], [400], x)
        self.assertTrue(x.closed, x)
        self.hello(self.s)

    def test_cut_before_the_close_delimiter_never_runs(self):
        body, ctype = two_line_body()
        cut = body.rindex(b"--\r\n")     # "...\r\n--boundary" without its "--"
        x = self.exchange(cut, body, ctype, want=2)
        self.assertGreaterEqual(len(x.responses), 1, x)
        doc = self.assertError(x.responses[0].as_reply(), 400)
        self.assertEqual(doc["error"], "bad_multipart", x)
        self.assertEqual([r.status for r in x.responses[1:]], [400], x)
        self.assertTrue(x.closed, x)
        self.hello(self.s)

    def test_cut_after_the_close_delimiter_runs_whole(self):
        """Only the final CRLF is left out: the body is complete, the run is
        the whole program, and the CRLF left over is ignored by nginx
        between requests (the connection stays open)."""
        body, ctype = two_line_body()
        x = self.exchange(len(body) - 2, body, ctype, want=1, linger=0.5)
        self.assertEqual(len(x.responses), 1, x)
        r = x.responses[0].as_reply()
        self.assertRan(r)
        self.assertEqual(r.stdout, b"first\nsecond\n")
        self.assertFalse(x.closed, x)
        self.hello(self.s)


class ContentLengthLong(EdgeCase):
    """Content-Length larger than the body: the client stalls (nginx gives
    up after client_body_timeout) or half-closes. With nginx buffering the
    body pyexec never hears of it; with nginx streaming it, pyexec has read
    a complete multipart body but never the end of the stream, and must
    not run it."""

    def check_long(self, s, half_close, streamed):
        body, ctype = two_line_body()
        s.mark_log()
        x = raw_exchange(s.port, request_head(ctype, len(body) + 100) + body,
                         half_close=half_close, timeout=BODY_TIMEOUT + 8)
        # nginx gives the request up and closes, with no reply or an error
        self.assertTrue(x.closed, x)
        self.assertTrue(all(r.status in (400, 408) for r in x.responses), x)
        if not half_close:
            self.assertGreater(x.elapsed, BODY_TIMEOUT - 0.5, x)
        self.assertLess(x.elapsed, BODY_TIMEOUT + 6, x)
        self.assertEqual(s.check_clean(), [])
        # (a half-closed request may end in nginx before pyexec is asked)
        lines = harness.wait_for(lambda: request_lines(s),
                                 3 if streamed and not half_close else 0.5)
        for l in lines or []:
            self.assertIn("exec=-", l, "pyexec ran a body it never had whole:\n%s" % l)
        if streamed and not half_close:
            # pyexec was reading the body when nginx gave up: it says so
            self.assertTrue(lines, "pyexec logged no request:\n" + s.log_since_mark())
            self.assertIn("status=499", lines[0])
        elif streamed:
            # nginx may pass the request on before it reads the half-close:
            # then pyexec hears the client leave, and says so
            for l in lines or []:
                self.assertIn("status=499", l)
        else:
            self.assertEqual(lines or [], [], "pyexec saw a body nginx never had whole")
        self.hello(s)

    def test_buffered_client_stalls(self):
        s = self.edge_server(name="cl-long", body_timeout=BODY_TIMEOUT)
        self.check_long(s, half_close=False, streamed=False)

    def test_buffered_client_half_closes(self):
        s = self.edge_server(name="cl-long", body_timeout=BODY_TIMEOUT)
        self.check_long(s, half_close=True, streamed=False)

    def test_streamed_client_stalls(self):
        s = self.edge_server(name="cl-long-stream", body_timeout=BODY_TIMEOUT, streaming=True)
        self.check_long(s, half_close=False, streamed=True)

    def test_streamed_client_half_closes(self):
        s = self.edge_server(name="cl-long-stream", body_timeout=BODY_TIMEOUT, streaming=True)
        self.check_long(s, half_close=True, streamed=True)


# ================================================================ 6. chunked bodies

class Chunked(EdgeCase):

    def setUp(self):
        super().setUp()
        self.s = self.server("main", **MAIN)

    def payload(self):
        data = os.urandom(300 << 10)
        stdin = b"line one\nline two\n" * 100
        body, ctype = harness.build_multipart([
            ("files", "main.py", hash_script(), None),
            ("files", "sub/data.bin", data, "application/octet-stream"),
            ("stdin", None, stdin, None)])
        want = ("main.py %s\nsub/data.bin %s\nstdin %s\n"
                % (sha(hash_script()), sha(data), sha(stdin))).encode()
        return body, ctype, want

    def test_chunked_raw_socket_same_as_content_length(self):
        body, ctype, want = self.payload()
        ref = self.s.post_body(body, ctype)
        self.assertRan(ref)
        self.assertEqual(ref.stdout, want)
        for sizes in ([len(body)], [1, 2, 3, 4093], [65536, 17]):
            x = raw_exchange(self.s.port, request_head(
                ctype, extra=["Transfer-Encoding: chunked", "Connection: close"])
                + chunked(body, sizes))
            self.assertEqual(len(x.responses), 1, x)
            r = x.responses[0].as_reply()
            self.assertRan(r)
            self.assertEqual(r.stdout, want, sizes)
            self.assertEqual(r.stderr, ref.stderr)
            self.assertEqual(r.files, {})

    def test_chunked_with_curl(self):
        body, ctype, want = self.payload()
        r = self.s.curl(["-X", "POST", "--data-binary", "@body", "-H", "Content-Type: " + ctype,
                         "-H", "Transfer-Encoding: chunked"], cwd_files={"body": body})
        self.assertRan(r)
        self.assertEqual(r.stdout, want)

    def test_chunked_error_same_as_content_length(self):
        body, ctype = harness.build_multipart([("files", "helper.py", b"x = 1\n", None)])
        x = raw_exchange(self.s.port, request_head(
            ctype, extra=["Transfer-Encoding: chunked", "Connection: close"])
            + chunked(body, [5]))
        self.assertEqual(len(x.responses), 1, x)
        doc = self.assertError(x.responses[0].as_reply(), 400)
        self.assertEqual(doc["error"], "missing_main")


# ================================================================ 7. HTTP/1.0

class Http10(EdgeCase):

    def setUp(self):
        super().setUp()
        self.s = self.server("main", **MAIN)

    def test_http10_run_then_close(self):
        body, ctype = harness.build_multipart([
            ("files", "main.py", script('''
                import os
                print("hello 1.0")
                open(os.path.join(os.environ["OUTPUT_DIR"], "out.txt"), "w").write("made\\n")
                '''), None)])
        x = raw_exchange(self.s.port, request_head(ctype, len(body), version="1.0", host=False)
                         + body, linger=5.0)
        self.assertEqual(len(x.responses), 1, x)
        self.assertTrue(x.closed, "the server kept an HTTP/1.0 connection open: %r" % x)
        self.assertEqual(x.rest, b"", x)
        resp = x.responses[0]
        self.assertNotEqual(resp.headers.get("Transfer-Encoding", "").lower(), "chunked",
                            "chunked reply to an HTTP/1.0 client")
        r = resp.as_reply()
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello 1.0\n")
        self.assertEqual(r.files["out.txt"].data, b"made\n")

    def test_http10_error_then_close(self):
        body, ctype = harness.build_multipart([("files", "helper.py", b"x = 1\n", None)])
        x = raw_exchange(self.s.port, request_head(ctype, len(body), version="1.0", host=False)
                         + body, linger=5.0)
        self.assertEqual(len(x.responses), 1, x)
        self.assertTrue(x.closed, x)
        doc = self.assertError(x.responses[0].as_reply(), 400)
        self.assertEqual(doc["error"], "missing_main")


if __name__ == "__main__":
    harness.main()
