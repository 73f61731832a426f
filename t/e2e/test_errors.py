"""End-to-end: every error reply (README, "Errors") through a real nginx, and hostile
file names that must never be written anywhere."""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import script  # noqa: E402

MISSING_MAIN = "main.py not found. Please upload a valid main.py file."
MAIN = dict(workers=2)
# pyexec's own limits below nginx's, so pyexec is the one that answers 413
LIMITS = dict(workers=2, max_upload="1M", client_max_body_size="3m",
              options=["max_files=5", "max_file_size=256K"])

HELLO = script('print("hello")\n')


class Errors(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        self.s = self.server("main", **MAIN)

    # ------------------------------------------------------------ 400

    def test_missing_main_py(self):
        r = self.s.post_execute({"helper.py": b"x = 1\n"})
        doc = self.assertError(r, 400)
        self.assertEqual(doc["detail"], MISSING_MAIN)

    def test_main_py_only_in_a_subdirectory(self):
        r = self.s.post_execute({"sub/main.py": HELLO})
        doc = self.assertError(r, 400)
        self.assertEqual(doc["detail"], MISSING_MAIN)

    def test_no_file_at_all(self):
        r = self.s.post_execute({}, stdin=b"input", raw=True)
        doc = self.assertError(r, 400)
        self.assertEqual(doc["detail"], MISSING_MAIN)

    def test_unknown_part_without_filename(self):
        r = self.s.post_execute({"main.py": HELLO},
                                extra_parts=[("colour", None, b"blue", None)])
        self.assertError(r, 400, "colour")

    def test_duplicate_file_name(self):
        body, ctype = harness.build_multipart([
            ("files", "main.py", HELLO, None),
            ("files", "util.py", b"", None),
            ("files", "util.py", b"x = 2\n", None),
        ])
        r = self.s.post_body(body, ctype)
        self.assertError(r, 400, "util.py")

    def test_unknown_query_parameter(self):
        r = self.s.post_execute({"main.py": HELLO}, query="colour=blue")
        self.assertError(r, 400, "colour")

    def test_malformed_timeout(self):
        for q in ("timeout=abc", "timeout=-1", "timeout=1e3", "timeout=", "timeout=1.2345"):
            r = self.s.post_execute({"main.py": HELLO}, query=q)
            self.assertError(r, 400, "timeout")

    def test_timeout_over_maximum(self):
        r = self.s.post_execute({"main.py": HELLO}, query="timeout=100000")
        self.assertError(r, 400, "timeout")

    def test_malformed_memory(self):
        for q in ("memory=lots", "memory=-5", "memory=12.5.1"):
            r = self.s.post_execute({"main.py": HELLO}, query=q)
            self.assertError(r, 400, "memory")

    def test_memory_over_maximum(self):
        r = self.s.post_execute({"main.py": HELLO}, query="memory=999999999")
        self.assertError(r, 400, "memory")

    def test_parameter_given_twice(self):
        r = self.s.post_execute({"main.py": HELLO}, query="timeout=1&timeout=2")
        self.assertError(r, 400, "timeout")

    def test_bad_percent_escape(self):
        r = self.s.post_execute({"main.py": HELLO}, query="timeout=%zz")
        self.assertError(r, 400)

    def test_good_parameters_accepted(self):
        r = self.s.post_execute({"main.py": HELLO}, query="timeout=2.5&memory=256&format=json")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["stdout"], "hello\n")
        r = self.s.post_execute({"main.py": HELLO}, query="time%6Fut=2")
        self.assertRan(r)

    def test_malformed_multipart_truncated(self):
        body, ctype = harness.build_multipart([("files", "main.py", HELLO, None)])
        r = self.s.post_body(body[:len(body) - 30], ctype)
        self.assertError(r, 400)

    def test_malformed_multipart_garbage(self):
        r = self.s.post_body(b"this is not multipart at all\r\n",
                             "multipart/form-data; boundary=xyzzy")
        self.assertError(r, 400)

    def test_multipart_without_boundary(self):
        body, _ = harness.build_multipart([("files", "main.py", HELLO, None)])
        r = self.s.post_body(body, "multipart/form-data")
        self.assertIn(r.status, (400, 415), r.describe())
        self.assertError(r, r.status)

    # ------------------------------------------------------------ hostile names

    def test_hostile_name_from_curl(self):
        """The way a user really sends one: curl -F 'files=@x;filename=../canary'."""
        r = self.s.post_execute({"main.py": HELLO, "../canary": b"pwned"})
        self.assertError(r, 400, "../canary")
        self.assertFalse(os.path.lexists(os.path.join(self.s.work_root, "canary")))

    def test_backslash_name_from_curl(self):
        """curl (like browsers, RFC 7578 §4.2) sends a backslash in a file
        name as it is, unescaped: filename="a\\b". The name has a backslash,
        so it is a 400 that names it, not a file silently renamed "ab"."""
        for name in ("a\\b.py", "C:\\Users\\me\\x.txt"):
            r = self.s.post_execute({"main.py": script('''
                import os
                print(sorted(os.listdir(".")))
                '''), name: b"x"})
            self.assertError(r, 400, harness.sanitize(name))

    def test_hostile_filename_star(self):
        """filename*= (RFC 2231) beside filename=: whichever the server
        reads, nothing lands outside the request's directory."""
        body = (b'--BB\r\nContent-Disposition: form-data; name="files"; filename="main.py"\r\n\r\n'
                + script('open("ran", "w").write("x")\n') + b'\r\n'
                b'--BB\r\nContent-Disposition: form-data; name="files"; filename="safe.txt"; '
                b"filename*=UTF-8''..%2F..%2Fcanary\r\n\r\npwned\r\n--BB--\r\n")
        r = self.s.post_body(body, "multipart/form-data; boundary=BB")
        self.assertIn(r.status, (200, 400), r.describe())
        for root, dirs, files in os.walk(self.s.tmp):
            for f in files + dirs:
                self.assertNotIn("canary", f, os.path.join(root, f))

    # generated below: one test per name

    def check_hostile(self, name, named=True):
        canaries = [os.path.join(self.s.work_root, "canary"),
                    os.path.join(self.s.outer, "canary"),
                    os.path.join(self.s.tmp, "canary")]
        body, ctype = harness.build_multipart([
            ("files", "main.py", script('open("ran", "w").write("main.py ran")\n'), None),
            ("files", name, b"pwned", "application/octet-stream"),
        ])
        r = self.s.post_body(body, ctype)
        doc = self.assertError(r, 400)
        if named:
            want = named if isinstance(named, str) else harness.sanitize(name)[:40]
            want = want.lower()
            self.assertIn(want, doc["detail"].lower(), "the detail does not name %r" % name)
        for c in canaries:
            self.assertFalse(os.path.lexists(c), c)
        # nothing written anywhere in the server's directory
        for root, dirs, files in os.walk(self.s.tmp):
            for f in files + dirs:
                self.assertNotIn("canary", f, os.path.join(root, f))
                self.assertNotEqual(f, "ran", "main.py ran despite the bad name")
        # tearDown checks that work_root is empty


HOSTILE = {
    "dotdot": (b"../canary", True),
    "dotdot_twice": (b"../../canary", True),
    "dotdot_inside": (b"a/../../canary", True),
    "dotdot_alone": (b"..", True),
    "absolute": (None, True),   # filled in with the server's own directory
    # sent as a\\b inside the quotes: a backslash whether or not the
    # server reads the quoted string's escapes
    "backslash": (b"a\\\\b.py", "b.py"),
    "backslash_dotdot": (b"..\\\\canary", "canary"),
    "dot": (b".", True),
    "dot_component": (b"./canary", True),
    "empty": (b"", False),
    "empty_component": (b"a//canary", True),
    "trailing_slash": (b"canary/", True),
    "component_256_bytes": (b"c" * 256, True),
    "depth_17": (b"d/" * 16 + b"canary", True),
    "nul": (b"ok.py\x00/../../canary", True),
    "control_char": (b"a\x01canary", True),
    "del_char": (b"a\x7fcanary", True),
    "invalid_utf8": (b"\xff\xfecanary", True),
    "overlong_utf8_slash": (b"..\xc0\xafcanary", True),
    "utf8_surrogate": (b"\xed\xa0\x80canary", True),
}


def _make_hostile_test(key, name, named):
    def test(self):
        n = name
        if n is None:
            n = os.path.join(self.s.outer, "canary").encode()
        self.check_hostile(n, named)
    test.__doc__ = "file name %r is a 400 and nothing is written" % (name,)
    return test


for _k, (_n, _named) in HOSTILE.items():
    setattr(Errors, "test_hostile_name_" + _k, _make_hostile_test(_k, _n, _named))


class NamesAccepted(harness.E2ETestCase):
    """The other side of the name rules: names at the limits are fine."""

    def test_names_at_the_limits(self):
        s = self.server("main", **MAIN)
        names = ["c" * 255, "/".join(["d"] * 15) + "/f.txt", "with space.txt", "-dash.txt",
                 ".hidden", "\u00fcn\u00efc\u00f8d\u00e9/\u2713.txt", "a..b.txt", "x/...",
                 "semi;colon.txt", "comma,name.txt"]
        files = {"main.py": script('''
            import os
            for root, dirs, files in os.walk("."):
                for f in files:
                    print(os.path.relpath(os.path.join(root, f), "."))
            ''')}
        for n in names:
            files[n] = b"x"
        body, ctype = harness.build_multipart([("files", n, d, None) for n, d in files.items()])
        r = s.post_body(body, ctype)
        self.assertRan(r)
        self.assertEqual(sorted(r.stdout.decode().splitlines()), sorted(list(files)))
        self.assertEqual(r.files, {})


class Routes(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        self.s = self.server("main", **MAIN)

    def test_unknown_route_404(self):
        routes = [("GET", "/nope"), ("POST", "/nope"), ("GET", "/execute/extra"),
                  ("GET", "/healthzz"), ("GET", "/index.html"), ("GET", "/playground.html")]
        if self.s.playground is None:
            routes.append(("GET", "/"))     # with the site file, / is the playground
        for method, path in routes:
            r = self.s.request(method, path)
            self.assertError(r, 404)

    def test_get_execute_405(self):
        r = self.s.request("GET", "/execute")
        self.assertError(r, 405)
        self.assertIn("POST", r.headers.get("Allow", ""), r.describe())

    def test_put_execute_405(self):
        r = self.s.request("PUT", "/execute", body=b"x")
        self.assertError(r, 405)
        self.assertIn("POST", r.headers.get("Allow", ""), r.describe())

    def test_post_healthz_405(self):
        r = self.s.request("POST", "/healthz", body=b"x",
                           headers={"Content-Type": "text/plain"})
        self.assertError(r, 405)
        self.assertIn("GET", r.headers.get("Allow", ""), r.describe())

    def test_delete_metrics_405(self):
        r = self.s.request("DELETE", "/metrics")
        self.assertError(r, 405)
        self.assertIn("GET", r.headers.get("Allow", ""), r.describe())

    def test_415_json_body(self):
        r = self.s.post_body(b'{"code": "print(1)"}', "application/json")
        self.assertError(r, 415)

    def test_415_urlencoded(self):
        r = self.s.post_body(b"files=main.py", "application/x-www-form-urlencoded")
        self.assertError(r, 415)

    def test_415_no_content_type(self):
        r = self.s.post_body(HELLO, None)
        self.assertError(r, 415)

    def test_errors_carry_request_id(self):
        r = self.s.post_execute({"helper.py": b""})
        self.assertError(r, 400)
        rid = r.headers.get("X-Request-Id")
        self.assertTrue(rid)
        found = harness.wait_for(lambda: ("id=%s " % rid) in self.s.log_since_mark()
                                 and "status=400" in self.s.log_since_mark(), 2.0)
        self.assertTrue(found, self.s.log_since_mark())

    def test_errors_json_even_when_multipart_accepted(self):
        r = self.s.post_execute({"helper.py": b""}, headers={"Accept": "multipart/form-data"})
        self.assertError(r, 400)


class Limits(harness.E2ETestCase):
    """A server with max_upload=1M (nginx allows 3m), max_files=5,
    max_file_size=256K."""

    def setUp(self):
        super().setUp()
        self.s = self.server("limits", **LIMITS)

    def test_413_body_over_max_upload(self):
        r = self.s.post_execute({"main.py": HELLO, "a.bin": os.urandom(600 << 10),
                                 "b.bin": os.urandom(600 << 10)})
        self.assertError(r, 413)

    def test_413_from_nginx_itself(self):
        r = self.s.post_execute({"main.py": HELLO, "big.bin": os.urandom(4 << 20)})
        self.assertStatus(r, 413)

    def test_413_too_many_files(self):
        files = {"main.py": HELLO}
        for i in range(5):
            files["f%d.txt" % i] = b"x"
        r = self.s.post_execute(files)
        self.assertError(r, 413)

    def test_413_one_file_over_limit(self):
        r = self.s.post_execute({"main.py": HELLO, "big.bin": os.urandom(300 << 10)})
        self.assertError(r, 413)

    def test_just_under_the_limits(self):
        files = {"main.py": HELLO}
        for i in range(3):
            files["f%d.bin" % i] = os.urandom(250 << 10)
        r = self.s.post_execute(files)
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")


class DiskFull(harness.E2ETestCase):
    """work_root on a 512 KiB tmpfs: with the rlimits layer, whose uploads
    are stored there, an upload that does not fit is a 507 that says so,
    nothing is left behind, and the next request that fits runs. The
    namespace layer writes uploads into the run's own disk (max_disk)
    instead: work_root's size does not bound them."""

    def setUp(self):
        super().setUp()
        if not harness.IS_ROOT:
            self.skipTest("mounting a small tmpfs as work_root needs root")

    def small_server(self, sandbox):
        self.mounts = []

        def mount_small(server):
            os.makedirs(server.work_root, exist_ok=True)
            r = harness.subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755",
                                        "pyexec-e2e", server.work_root],
                                       stderr=harness.subprocess.PIPE)
            if r.returncode != 0:
                raise harness.ServerError("mount tmpfs: " + r.stderr.decode(errors="replace"))
            self.mounts.append(server.work_root)

        def unmount():
            for m in self.mounts:
                harness.subprocess.run(["umount", "-l", m])
                harness.shutil.rmtree(os.path.dirname(os.path.dirname(m)), ignore_errors=True)
        self.addCleanup(unmount)
        try:
            self.s = self.private_server(name="diskfull-" + sandbox, sandbox=sandbox,
                                         before_start=mount_small)
        except harness.ServerError as e:
            self.skipTest("cannot mount a tmpfs here: %s" % e)

    def test_507_when_the_upload_does_not_fit(self):
        self.small_server("rlimits")
        r = self.s.post_execute({"main.py": HELLO, "big.bin": os.urandom(1 << 20)})
        doc = self.assertError(r, 507)
        self.assertEqual(doc["error"], "disk_full")
        self.assertIn("space", doc["detail"])
        # tearDown checks work_root is empty again; and space came back:
        r = self.s.post_execute({"main.py": HELLO, "small.bin": os.urandom(100 << 10)})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")

    def test_namespace_uploads_do_not_fill_work_root(self):
        self.small_server("namespaces")
        if self.s.request("GET", "/healthz").json()["sandbox"] != "namespaces":
            self.skipTest("no namespace sandbox here")
        r = self.s.post_execute({"main.py": script("import os\nprint(os.path.getsize('big.bin'))\n"),
                                 "big.bin": os.urandom(1 << 20)})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"%d\n" % (1 << 20))


if __name__ == "__main__":
    harness.main()
