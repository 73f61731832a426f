"""End-to-end: POST /execute and friends through a real nginx, as a client
of the seed (genezio-python-executor) sees them (README, "Using it").
Every reply this suite receives is checked against the OpenAPI document
(openapi/openapi.json, t/openapi_check.py): its status, headers and body;
without python3-jsonschema the check cannot run, and OpenApi says so."""

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import script  # noqa: E402

try:
    import openapi_check  # noqa: E402
    CHECKER = openapi_check.Checker()
    harness.REPLY_CHECKS.append(CHECKER.check)
    NO_CHECKER = None
except ImportError as e:        # no python3-jsonschema
    CHECKER, NO_CHECKER = None, "cannot check replies against openapi.json: %s" % e

SECRET_ENV = "env-s3cr3t-" + os.urandom(4).hex()
SECRET_HDR = "hdr-s3cr3t-" + os.urandom(4).hex()
SECRET_AUTH = "auth-s3cr3t-" + os.urandom(4).hex()

MAIN = dict(workers=4, env={"PYEXEC_TEST_SECRET": SECRET_ENV})
SMALL = dict(workers=2, options=["max_output=64K", "max_generated_files=3"])

HELLO = script('print("hello")\n')


class Api(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        self.s = self.server("main", **MAIN)

    def run_ok(self, files, **kw):
        r = self.s.post_execute(files, **kw)
        self.assertRan(r, "ok", 0)
        return r

    # ------------------------------------------------------------ the seed

    def test_readme_example(self):
        """curl -X POST .../execute -F "files=@main.py" -F "files=@helper.py",
        the seed's README example, verbatim."""
        main = script('''
            import os
            import helper
            print(helper.greet("world"))
            with open(os.path.join(os.environ["OUTPUT_DIR"], "output.txt"), "w") as f:
                f.write("This is the generated file content.")
            print("Execution completed successfully.")
            ''')
        helper = b'def greet(name):\n    return "Hello, %s!" % name\n'
        r = self.s.curl(["-X", "POST", "-F", "files=@main.py", "-F", "files=@helper.py"],
                        cwd_files={"main.py": main, "helper.py": helper})
        self.assertRan(r, "ok", 0)
        self.assertEqual([(p.name, p.filename) for p in r.parts],
                         [("stdout", None), ("stderr", None), ("output.txt", "output.txt")])
        self.assertEqual(r.stdout, b"Hello, world!\nExecution completed successfully.\n")
        self.assertEqual(r.stderr, b"")
        out = r.files["output.txt"]
        self.assertEqual(out.data, b"This is the generated file content.")
        self.assertTrue(out.content_type.startswith("text/plain"), out.content_type)
        # stdout and stderr are plain fields, as the seed sends them
        self.assertIsNone(r.parts[0].content_type)
        self.assertIsNone(r.parts[1].content_type)

    def test_result_headers(self):
        r = self.run_ok({"main.py": HELLO})
        h = r.headers
        self.assertRegex(h.get("X-Execution-Time", ""), r"^\d+\.\d{3}$")
        self.assertRegex(h.get("X-CPU-Time", ""), r"^\d+\.\d{3}$")
        self.assertRegex(h.get("X-Max-RSS", ""), r"^[1-9]\d*$")
        self.assertEqual(h.get("X-Dependencies"), "none")
        self.assertNotIn("X-Truncated", h)
        self.assertNotIn("X-Signal", h)
        self.assertLess(float(h["X-Execution-Time"]), 5.0)
        rid = h.get("X-Request-Id")
        self.assertTrue(rid and re.match(r"^[\x21-\x7e]+$", rid), rid)
        # the same id is in the server's log line for the request
        found = harness.wait_for(lambda: re.search(r"\bid=%s\b.*\bstatus=200\b" % re.escape(rid),
                                                   self.s.log_since_mark()), 2.0)
        self.assertTrue(found, "request id %s not in the log:\n%s" % (rid, self.s.log_since_mark()))

    def test_request_ids_differ(self):
        a = self.run_ok({"main.py": HELLO}).headers["X-Request-Id"]
        b = self.run_ok({"main.py": HELLO}).headers["X-Request-Id"]
        self.assertNotEqual(a, b)

    def test_boundary_is_random(self):
        a = self.run_ok({"main.py": HELLO}).content_type
        b = self.run_ok({"main.py": HELLO}).content_type
        self.assertNotEqual(a, b)

    def test_stdout_and_stderr(self):
        r = self.run_ok({"main.py": script('''
            import sys
            print("to stdout")
            print("to stderr", file=sys.stderr)
            sys.stdout.write("no newline")
            ''')})
        self.assertEqual(r.stdout, b"to stdout\nno newline")
        self.assertEqual(r.stderr, b"to stderr\n")
        self.assertEqual(r.files, {})

    def test_binary_stdout_kept_byte_for_byte(self):
        data = bytes(range(256)) * 4 + b"\r\n--\r\n\r\n"
        r = self.run_ok({"main.py": script('''
            import sys
            sys.stdout.buffer.write(bytes(range(256)) * 4 + b"\\r\\n--\\r\\n\\r\\n")
            ''')})
        self.assertEqual(r.stdout, data)

    def test_nonzero_exit(self):
        r = self.s.post_execute({"main.py": script('''
            import sys
            print("partial")
            sys.exit(3)
            ''')})
        self.assertRan(r, "error", 3)
        self.assertEqual(r.stdout, b"partial\n")

    def test_script_error(self):
        r = self.s.post_execute({"main.py": script('''
            print("before")
            def f():
                raise ValueError("boom")
            f()
            ''')})
        self.assertRan(r, "error", 1)
        self.assertEqual(r.stdout, b"before\n")
        err = r.stderr.decode()
        self.assertIn("Traceback (most recent call last):", err)
        self.assertIn("main.py", err)
        self.assertTrue(err.rstrip().endswith("ValueError: boom"), err)

    def test_syntax_error(self):
        r = self.s.post_execute({"main.py": script("def (:\n")})
        self.assertRan(r, "error", 1)
        self.assertIn(b"SyntaxError", r.stderr)

    def test_killed_by_signal(self):
        r = self.s.post_execute({"main.py": script('''
            import os, signal
            print("bye", flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            ''')})
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("X-Execution-Status"), "killed", r.describe())
        self.assertEqual(r.headers.get("X-Signal"), "SIGTERM", r.describe())
        self.assertNotIn("X-Exit-Code", r.headers)
        self.assertEqual(r.stdout, b"bye\n")

    # ------------------------------------------------------------ files

    def test_files_in_output_dir_and_cwd(self):
        r = self.run_ok({"main.py": script('''
            import os
            with open(os.path.join(os.environ["OUTPUT_DIR"], "a.txt"), "w") as f:
                f.write("from OUTPUT_DIR\\n")
            with open("b.txt", "w") as f:
                f.write("from cwd\\n")
            os.makedirs("sub/deeper")
            with open("sub/deeper/c.txt", "w") as f:
                f.write("nested\\n")
            os.mkdir("empty_dir")
            ''')})
        self.assertEqual([p.filename for p in r.parts[2:]], ["a.txt", "b.txt", "sub/deeper/c.txt"])
        self.assertEqual({k: v.data for k, v in r.files.items()},
                         {"a.txt": b"from OUTPUT_DIR\n", "b.txt": b"from cwd\n",
                          "sub/deeper/c.txt": b"nested\n"})
        for p in r.parts[2:]:
            self.assertEqual(p.name, p.filename)

    def test_output_dir_is_cwd(self):
        r = self.run_ok({"main.py": script('''
            import os
            print(os.path.samefile(os.environ["OUTPUT_DIR"], os.getcwd()))
            ''')})
        self.assertEqual(r.stdout, b"True\n")

    def test_content_type_by_content(self):
        png = harness.png_bytes()
        pdf = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
               b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
        r = self.run_ok({"main.py": script('''
            import sys
            png = sys.stdin.buffer.read()
            open("out.dat", "wb").write(png)
            open("plot.png", "wb").write(png)
            open("notes.png", "w").write("just some text, not an image\\n")
            open("doc.bin", "wb").write(%r)
            ''' % pdf)}, stdin=png)
        f = r.files
        self.assertEqual(sorted(f), ["doc.bin", "notes.png", "out.dat", "plot.png"])
        self.assertEqual(f["out.dat"].content_type, "image/png")
        self.assertEqual(f["out.dat"].data, png)
        self.assertEqual(f["plot.png"].content_type, "image/png")
        self.assertEqual(f["plot.png"].data, png)
        self.assertTrue(f["notes.png"].content_type.startswith("text/plain"), f["notes.png"].content_type)
        self.assertEqual(f["doc.bin"].content_type, "application/pdf")

    def test_changed_uploads_returned_unchanged_not(self):
        r = self.run_ok({
            "main.py": script('''
                import helper
                with open("data.txt", "a") as f:
                    f.write("appended\\n")
                print(open("keep.txt").read().strip(), helper.X)
                '''),
            "helper.py": b"X = 42\n",
            "data.txt": b"original\n",
            "keep.txt": b"read only\n",
        })
        self.assertEqual(r.stdout, b"read only 42\n")
        self.assertEqual({k: v.data for k, v in r.files.items()},
                         {"data.txt": b"original\nappended\n"})

    def test_replaced_upload_returned(self):
        r = self.run_ok({
            "main.py": script('''
                import os
                os.unlink("data.txt")
                open("data.txt", "w").write("new")
                '''),
            "data.txt": b"old",
        })
        self.assertEqual({k: v.data for k, v in r.files.items()}, {"data.txt": b"new"})

    def test_pycache_not_returned(self):
        r = self.run_ok({
            "main.py": script('''
                import os, sys
                sys.dont_write_bytecode = False
                import pkg.util
                os.makedirs("__pycache__", exist_ok=True)
                open("__pycache__/x.cpython-311.pyc", "wb").write(b"junk")
                os.makedirs("pkg/__pycache__", exist_ok=True)
                open("pkg/__pycache__/y.pyc", "wb").write(b"junk")
                open("real.txt", "w").write("kept")
                print(pkg.util.VALUE)
                '''),
            "pkg/__init__.py": b"",
            "pkg/util.py": b"VALUE = 'v'\n",
        })
        self.assertEqual(r.stdout, b"v\n")
        self.assertEqual(sorted(r.files), ["real.txt"])

    def test_subdirectory_uploads_importable(self):
        r = self.run_ok({
            "main.py": script('''
                from pkg import util
                from pkg.sub.deep import twice
                print(util.hello(), twice(21), open("data/in/deep.txt").read())
                '''),
            "pkg/__init__.py": b"",
            "pkg/util.py": b"def hello():\n    return 'hello from pkg'\n",
            "pkg/sub/__init__.py": b"",
            "pkg/sub/deep.py": b"def twice(x):\n    return 2 * x\n",
            "data/in/deep.txt": b"deep data",
        })
        self.assertEqual(r.stdout, b"hello from pkg 42 deep data\n")
        self.assertEqual(r.files, {})

    def test_non_ascii_generated_name(self):
        r = self.run_ok({"main.py": script('''
            open("r\\u00e9sum\\u00e9 \\u2713.txt", "w").write("ok")
            ''')})
        self.assertEqual(sorted(r.files), ["r\u00e9sum\u00e9 \u2713.txt"])

    def test_non_ascii_upload_name(self):
        r = self.run_ok({
            "main.py": script('''
                import os
                print(sorted(os.listdir("d\\u00efr")))
                print(open("d\\u00efr/\\u00e7a va.txt").read())
                '''),
            "d\u00efr/\u00e7a va.txt": "d\u00e9j\u00e0".encode(),
        })
        self.assertEqual(r.stdout.decode(), "['\u00e7a va.txt']\nd\u00e9j\u00e0\n")

    def test_symlinks_and_fifos_not_followed(self):
        r = self.run_ok({"main.py": script('''
            import os
            os.symlink("/etc/passwd", "passwd_link")
            os.symlink("../..", "up")
            os.mkfifo("pipe")
            os.mkdir("d")
            os.symlink("/etc", "d/etc_link")
            open("real.txt", "w").write("real")
            ''')}, timeout=20)
        self.assertLess(r.elapsed, 8)
        self.assertEqual(sorted(r.files), ["real.txt"])
        self.assertNotIn(b"root:x:0:0", r.body)

    def test_unreadable_leftovers_cleaned(self):
        r = self.run_ok({"main.py": script('''
            import os
            os.makedirs("locked/inner")
            open("locked/inner/f.txt", "w").write("x")
            os.chmod("locked/inner", 0)
            os.chmod("locked", 0)
            open("secret.txt", "w").write("y")
            os.chmod("secret.txt", 0)
            open("visible.txt", "w").write("z")
            ''')})
        self.assertEqual(r.files["visible.txt"].data, b"z")
        # tearDown checks that the work directory is gone

    def test_large_upload(self):
        blob = os.urandom(8 << 20)
        r = self.run_ok({
            "main.py": script('''
                import hashlib
                print(hashlib.sha256(open("blob.bin", "rb").read()).hexdigest())
                '''),
            "blob.bin": blob,
        })
        self.assertEqual(r.stdout.decode().strip(), hashlib.sha256(blob).hexdigest())
        self.assertEqual(r.files, {})

    def test_large_generated_file(self):
        r = self.run_ok({"main.py": script('''
            import hashlib, os
            # a fixed head so that no magic number matches by chance
            data = b"\\xff\\x00\\xfe\\x01pyexec" + os.urandom(8 << 20)
            open("big.bin", "wb").write(data)
            print(hashlib.sha256(data).hexdigest())
            ''')})
        big = r.files["big.bin"].data
        self.assertEqual(len(big), (8 << 20) + 10)
        self.assertEqual(hashlib.sha256(big).hexdigest(), r.stdout.decode().strip())
        self.assertEqual(r.files["big.bin"].content_type, "application/octet-stream")

    def test_large_output_both_pipes(self):
        """Much on both pipes at once (under the cap): no deadlock, all kept."""
        r = self.run_ok({"main.py": script('''
            import sys
            for i in range(150):
                sys.stdout.write(("o%04d" % i) * 800)
                sys.stderr.write(("e%04d" % i) * 800)
            ''')})
        self.assertEqual(r.stdout, b"".join(b"o%04d" % i * 800 for i in range(150)))
        self.assertEqual(r.stderr, b"".join(b"e%04d" % i * 800 for i in range(150)))
        self.assertNotIn("X-Truncated", r.headers)

    # ------------------------------------------------------------ stdin

    def test_stdin_part(self):
        data = b"hello\nworld\n\x00\xff\xfe\r\n"
        r = self.run_ok({"main.py": script('''
            import sys
            data = sys.stdin.buffer.read()
            sys.stdout.buffer.write(data.upper())
            ''')}, stdin=data)
        self.assertEqual(r.stdout, data.upper())
        self.assertEqual(r.files, {})

    def test_no_stdin_reads_empty(self):
        r = self.run_ok({"main.py": script('''
            import sys
            print(repr(sys.stdin.read()))
            ''')}, timeout=20)
        self.assertEqual(r.stdout, b"''\n")
        self.assertLess(r.elapsed, 5)

    # ------------------------------------------------------------ args and env

    ARGS_ENV_PROBE = script('''
        import json, os, sys
        own = {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
               "MPLBACKEND", "OUTPUT_DIR", "PYTHONPATH"}
        print(json.dumps({"argv": sys.argv, "env": {k: v for k, v in os.environ.items()
                                                     if k not in own},
                          "order": [k for k in os.environ if k not in own],
                          "PATH": os.environ["PATH"], "LANG": os.environ["LANG"]}))
        ''')

    def run_args_env(self, args=None, env=None, raw_args=None, raw_env=None):
        parts = []
        if args is not None or raw_args is not None:
            parts.append(("args", None, raw_args if raw_args is not None
                          else json.dumps(args).encode(), None))
        if env is not None or raw_env is not None:
            parts.append(("env", None, raw_env if raw_env is not None
                          else json.dumps(env).encode(), None))
        return self.s.post_execute({"main.py": self.ARGS_ENV_PROBE}, extra_parts=parts)

    def test_args_and_env_reach_the_program_exactly(self):
        args = ["plain", "", "x=y=z", "caf\u00e9 \u2603 \U0001f600", "  spaces  ", "-c",
                "--flag=1", "$HOME", "a\nb", "\\"]
        env = {"GREETING": "caf\u00e9 \u2603", "EMPTY": "", "EQ": "a=b=c", "LC_ALL": "C.UTF-8",
               "lower_case": "1", "_X9": "multi\nline", "A": "last"}
        r = self.run_args_env(args, env)
        self.assertRan(r, "ok", 0)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["argv"], ["main.py"] + args)
        self.assertEqual(doc["env"], env)
        self.assertEqual(doc["order"], list(env), "the variables in the order given")
        # pyexec's own are still pyexec's
        self.assertEqual((doc["PATH"], doc["LANG"]), ("/usr/local/bin:/usr/bin:/bin", "C.UTF-8"))

    def test_args_alone_env_alone_and_empty(self):
        for kw, argv, env in ((dict(args=["one"]), ["main.py", "one"], {}),
                              (dict(env={"ONE": "1"}), ["main.py"], {"ONE": "1"}),
                              (dict(args=[], env={}), ["main.py"], {})):
            with self.subTest(**kw):
                r = self.run_args_env(**kw)
                self.assertRan(r, "ok", 0)
                doc = json.loads(r.stdout)
                self.assertEqual((doc["argv"], doc["env"]), (argv, env))

    def test_args_and_env_refused(self):
        """Each refusal is a 400 bad_field whose detail starts with the
        field's name and says why; the program does not run."""
        many = json.dumps(["a"] * 129).encode()
        cases = [
            ("args", dict(raw_args=b'"a b"'), "args: must be a JSON array of strings"),
            ("args", dict(raw_args=b'["a", 1]'), "args: item 1 is not a string"),
            ("args", dict(raw_args=b'["a\\u0000b"]'), "args: item 0 holds a NUL character"),
            ("args", dict(raw_args=b'["a"'), "args: not valid JSON"),
            ("args", dict(raw_args=b'["\xff"]'), "args: not valid JSON"),
            ("args", dict(raw_args=many), "args: more than 128 strings"),
            ("args", dict(raw_args=b"[" + b" " * 65536 + b"]"), "args: over 65536 bytes"),
            ("args", dict(args=["x" * 40000]), "args: the arguments and environment given "
                                               "are over 32768 bytes"),
            ("env", dict(raw_env=b'["A=1"]'), "env: must be a JSON object of names to strings"),
            ("env", dict(env={"A": 1}), "env: the value of 'A' is not a string"),
            ("env", dict(raw_env=b'{"A": "1", "A": "2"}'), "env: not valid JSON"),
            ("env", dict(env={"1A": "x"}), "env: '1A' is not a variable name"),
            ("env", dict(env={"A-B": "x"}), "env: 'A-B' is not a variable name"),
            ("env", dict(env={"A=B": "x"}), "env: 'A=B' is not a variable name"),
            ("env", dict(env={"": "x"}), "env: '' is not a variable name"),
        ] + [("env", dict(env={n: "x"}), "env: '%s' is set by pyexec" % n)
             for n in ("PATH", "HOME", "TMPDIR", "OUTPUT_DIR", "LANG", "MPLBACKEND")] + [
            ("env", dict(env={"PYTHONSTARTUP": "/x"}), "env: 'PYTHONSTARTUP' starts with PYTHON"),
            ("env", dict(env={"PYTHONPATH": "/x"}), "env: 'PYTHONPATH' starts with PYTHON"),
            ("env", dict(env={"LD_PRELOAD": "/x.so"}), "env: 'LD_PRELOAD' starts with LD_"),
            ("env", dict(env={"V%d" % i: "" for i in range(65)}), "env: more than 64 variables"),
        ]
        for field, kw, detail in cases:
            with self.subTest(field=field, detail=detail):
                r = self.run_args_env(**kw)
                doc = self.assertError(r, 400, detail)
                self.assertEqual(doc["error"], "bad_field", r.describe())
                self.assertTrue(doc["detail"].startswith(field + ": "), doc)

    def test_args_or_env_given_twice(self):
        for field, value in (("args", b'["a"]'), ("env", b'{"A": "1"}')):
            with self.subTest(field=field):
                r = self.s.post_execute({"main.py": HELLO}, raw=True, extra_parts=[
                    (field, None, value, None), (field, None, value, None)])
                doc = self.assertError(r, 400, field + ": given twice")
                self.assertEqual(doc["error"], "bad_field")

    # ------------------------------------------------------------ limits

    def test_timeout_keeps_partial_output(self):
        r = self.s.post_execute({"main.py": script('''
            import subprocess, sys, time
            print("started")
            sys.stderr.write("working\\n")
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "%s"])
            time.sleep(30)
            print("never")
            ''' % harness.MARKER)}, query="timeout=1")
        self.assertStatus(r, 200)
        self.assertLess(r.elapsed, 2.0, "took %.2f s with timeout=1" % r.elapsed)
        self.assertEqual(r.headers.get("X-Execution-Status"), "timeout", r.describe())
        self.assertNotIn("X-Exit-Code", r.headers)
        self.assertEqual(r.headers.get("X-Signal"), "SIGKILL")
        self.assertEqual(r.stdout, b"started\n")
        err = r.stderr.decode()
        self.assertTrue(err.startswith("working\n"), err)
        # one line at the end that says which limit ended the run
        note = err[len("working\n"):]
        self.assertTrue(note.endswith("\n") and note.count("\n") == 1, repr(err))
        self.assertRegex(note, r"(?i)\btime\b.*\b1\b", "stderr does not say which limit: %r" % err)
        self.assertGreaterEqual(float(r.headers["X-Execution-Time"]), 0.9)
        self.assertLess(float(r.headers["X-Execution-Time"]), 1.8)
        # tearDown: the sleeping child is gone too

    def test_memory_limit(self):
        r = self.s.post_execute({"main.py": script('''
            print("allocating", flush=True)
            x = bytearray(2000 << 20)
            print("never")
            ''')}, query="memory=100")
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("X-Execution-Status"), "memory", r.describe())
        self.assertEqual(r.stdout, b"allocating\n")
        # An address-space limit refuses the allocation; a cgroup's limit
        # is met as the pages are touched, and the OOM killer ends the run.
        if self.s.request("GET", "/healthz").json()["enforced"]["memory"] == "RLIMIT_AS":
            self.assertIn(b"MemoryError", r.stderr)
        else:
            self.assertIn(b"pyexec: memory limit of 100 MiB reached", r.stderr)

    def test_decimal_timeout(self):
        r = self.s.post_execute({"main.py": script('''
            import time
            time.sleep(10)
            ''')}, query="timeout=0.5")
        self.assertEqual(r.headers.get("X-Execution-Status"), "timeout", r.describe())
        self.assertLess(r.elapsed, 1.5)

    def test_escaped_daemon_does_not_hold_reply(self):
        """A child that starts its own session and keeps stdout open: the
        reply comes when main.py ends, and the child is killed."""
        r = self.s.post_execute({"main.py": script('''
            import subprocess, sys
            subprocess.Popen([sys.executable, "-c",
                              "import os, time\\nif os.fork(): os._exit(0)\\ntime.sleep(60)", "%s"],
                             start_new_session=True)
            print("main done")
            ''' % harness.MARKER)}, timeout=30)
        self.assertRan(r, "ok", 0)
        self.assertEqual(r.stdout, b"main done\n")
        self.assertLess(r.elapsed, 5, "the reply waited for the daemon")

    def test_fork_bomb_contained(self):
        s = self.s
        if s.nproc_room:
            # the default max_processes, not the room for other suites'
            # processes of nobody: forks may fail from the first one
            s = self.private_server(name="fork-bomb", workers=1, options=["max_processes=64"])
        r = s.post_execute({"main.py": script('''
            import os, time
            n = 0
            try:
                for _ in range(2000):
                    if os.fork() == 0:
                        time.sleep(30)
                        os._exit(0)
                    n += 1
            except OSError as e:
                print("fork failed after", n)
            ''')}, query="timeout=3", timeout=30)
        self.assertStatus(r, 200)
        self.assertLess(r.elapsed, 5)
        # tearDown: every child is gone

    # ------------------------------------------------------------ isolation

    def test_environment_is_fresh(self):
        r = self.run_ok({"main.py": script('''
            import json, os
            env = dict(os.environ)
            raw = open("/proc/self/environ", "rb").read().decode("utf-8", "replace")
            print(json.dumps({"env": env, "raw": raw, "cwd": os.getcwd()}))
            ''')}, headers={"X-Secret": SECRET_HDR, "Authorization": "Bearer " + SECRET_AUTH,
                            "Cookie": "session=" + SECRET_HDR})
        for secret in (SECRET_ENV, SECRET_HDR, SECRET_AUTH):
            self.assertNotIn(secret.encode(), r.body)
        doc = json.loads(r.stdout)
        env = doc["env"]
        raw = dict(kv.split("=", 1) for kv in doc["raw"].split("\0") if kv)
        self.assertEqual(env, raw)
        want = {"PATH": "/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
                "MPLBACKEND": "module://pyexec_figures"}
        for k, v in want.items():
            self.assertEqual(env.get(k), v, k)
        # pyexec's own modules (plt.show()'s backend): in deps_cache, bound
        # at /pyexec in a namespace sandbox
        self.assertEqual(env.get("PYTHONPATH"), "/pyexec" if env["OUTPUT_DIR"] == "/work"
                         else os.path.join(self.s.tmp, "deps", ".python"))
        self.assertIn("OUTPUT_DIR", env)
        # /work inside a namespace sandbox, the work directory itself otherwise
        self.assertIn(env["OUTPUT_DIR"], ("/work", doc["cwd"]))
        # HOME and TMPDIR: /tmp inside a namespace sandbox (a private tmpfs);
        # with rlimits only, a short private directory of the request's own
        self.assertEqual(env.get("HOME"), env.get("TMPDIR"))
        if env["TMPDIR"] != "/tmp":
            self.assertRegex(env["TMPDIR"], r"^/tmp/pyexec-[A-Za-z0-9]{6}$")
        extra = set(env) - set(want) - {"OUTPUT_DIR", "PYTHONPATH", "HOME", "TMPDIR"}
        self.assertEqual(extra, set(), "variables the spec does not list: %r" % env)
        for k in env:
            self.assertFalse(k.startswith("HTTP_") or k in ("CONTENT_TYPE", "REQUEST_METHOD",
                             "QUERY_STRING", "PYEXEC_TEST_SECRET"), k)

    def test_tmpdir_files_not_returned(self):
        r = self.run_ok({"main.py": script("""
            import os, tempfile
            with tempfile.NamedTemporaryFile(delete=False) as f:
                f.write(b"scratch")
            os.makedirs(os.path.join(os.environ["HOME"], ".cache", "x"), exist_ok=True)
            open(os.path.join(os.environ["HOME"], ".cache", "x", "c"), "w").write("c")
            print(open(f.name).read())
            """)})
        self.assertEqual(r.stdout, b"scratch\n")
        self.assertEqual(r.files, {})
        # tearDown: the scratch files went with the request

    @harness.unittest.skipUnless(harness.IS_ROOT, "the server drops privileges only when started as root")
    def test_runs_unprivileged(self):
        r = self.run_ok({"main.py": script('''
            import os
            print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups()))
            ''')})
        uid, euid, gid, egid, groups = r.stdout.decode().split(" ", 4)
        self.assertNotEqual(int(uid), 0)
        self.assertNotEqual(int(euid), 0)
        self.assertNotEqual(int(gid), 0)
        self.assertNotEqual(int(egid), 0)
        self.assertNotIn(0, eval(groups))

    def test_cannot_write_outside_work_dir(self):
        if self.s.request("GET", "/healthz").json().get("sandbox") != "namespaces":
            # only a run forced to the weaker layer may skip: a silent
            # fallback of sandbox = auto is a failure here
            if os.environ.get("PYEXEC_TEST_SANDBOX") == "rlimits":
                self.skipTest("rlimits layer: the script may write where its user may")
            self.fail("sandbox = auto fell back to the rlimits layer:\n" + self.s.log_tail())
        canary = os.path.join(self.s.outer, "script_canary")
        r = self.run_ok({"main.py": script('''
            for p in ["../escape.txt", "../../escape.txt", %r]:
                try:
                    open(p, "w").write("x")
                    print("wrote", p)
                except OSError as e:
                    print("denied", p)
            ''' % canary)})
        self.assertNotIn(b"wrote", r.stdout)
        self.assertFalse(os.path.exists(canary))

    # ------------------------------------------------------------ concurrency

    def test_24_concurrent_requests(self):
        n = 24
        tokens = ["tok%02d-%s" % (i, os.urandom(6).hex()) for i in range(n)]
        results = [None] * n

        def one(i):
            try:
                results[i] = self.s.post_execute({
                    "main.py": script('''
                        import sys, time
                        token = open("token.txt").read()
                        print(token)
                        time.sleep(0.3)
                        open("out.txt", "w").write(token)
                        sys.stderr.write("err " + token)
                        '''),
                    "token.txt": tokens[i].encode(),
                }, timeout=60)
            except Exception as e:  # noqa: BLE001
                results[i] = e

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        for i, r in enumerate(results):
            self.assertIsInstance(r, harness.Reply, "request %d: %r" % (i, r))
            self.assertRan(r, "ok", 0)
            self.assertEqual(r.stdout, tokens[i].encode() + b"\n")
            self.assertEqual(r.stderr, b"err " + tokens[i].encode())
            self.assertEqual({k: v.data for k, v in r.files.items()},
                             {"out.txt": tokens[i].encode()})
        self.assertEqual(len({r.headers["X-Request-Id"] for r in results}), n)

    # ------------------------------------------------------------ JSON

    def test_json_mode_accept_header(self):
        png = harness.png_bytes()
        r = self.s.post_execute({"main.py": script('''
            import sys
            print("hi")
            print("warn", file=sys.stderr)
            open("text.txt", "w", encoding="utf-8").write("h\\u00e9llo \\u2713\\n")
            open("img.png", "wb").write(sys.stdin.buffer.read())
            ''')}, stdin=png, headers={"Accept": "application/json"})
        self.assertStatus(r, 200)
        self.assertTrue(r.content_type.startswith("application/json"), r.describe())
        self.assertEqual(r.headers.get("X-Execution-Status"), "ok")
        doc = r.json()
        self.assertEqual(doc["status"], "ok")
        self.assertEqual(doc["exit_code"], 0)
        self.assertIsNone(doc["signal"])
        self.assertEqual(doc["stdout"], "hi\n")
        self.assertEqual(doc["stderr"], "warn\n")
        self.assertIsInstance(doc["time"]["wall"], (int, float))
        self.assertIsInstance(doc["time"]["cpu"], (int, float))
        self.assertGreater(doc["time"]["wall"], 0)
        self.assertIsInstance(doc["max_rss_kib"], int)
        self.assertGreater(doc["max_rss_kib"], 0)
        self.assertEqual(doc["truncated"], [])
        self.assertEqual(doc["dependencies"], "none")
        files = {f["name"]: f for f in doc["files"]}
        self.assertEqual([f["name"] for f in doc["files"]], ["img.png", "text.txt"])
        t = files["text.txt"]
        self.assertEqual(t["encoding"], "utf-8")
        self.assertEqual(t["content"], "h\u00e9llo \u2713\n")
        self.assertEqual(t["size"], len("h\u00e9llo \u2713\n".encode()))
        self.assertTrue(t["content_type"].startswith("text/plain"), t["content_type"])
        i = files["img.png"]
        self.assertEqual(i["encoding"], "base64")
        self.assertEqual(base64.b64decode(i["content"]), png)
        self.assertEqual(i["size"], len(png))
        self.assertEqual(i["content_type"], "image/png")

    def test_json_mode_query_param(self):
        r = self.s.post_execute({"main.py": script('''
            import sys
            sys.stdout.buffer.write(b"bad utf-8: \\xff\\n")
            sys.exit(2)
            ''')}, query="format=json")
        self.assertStatus(r, 200)
        self.assertTrue(r.content_type.startswith("application/json"), r.describe())
        doc = r.json()
        self.assertEqual(doc["status"], "error")
        self.assertEqual(doc["exit_code"], 2)
        # not UTF-8: sent whole, as base64
        self.assertEqual(doc["stdout_encoding"], "base64")
        self.assertEqual(base64.b64decode(doc["stdout"]), b"bad utf-8: \xff\n")
        self.assertEqual(doc["files"], [])

    def test_json_mode_timeout(self):
        r = self.s.post_execute({"main.py": script('''
            import time
            print("tick", flush=True)
            time.sleep(20)
            ''')}, query="format=json&timeout=1")
        doc = r.json()
        self.assertEqual(doc["status"], "timeout")
        self.assertIsNone(doc["exit_code"])
        self.assertIsInstance(doc["signal"], str)
        self.assertEqual(doc["stdout"], "tick\n")

    # ------------------------------------------------------------ other routes

    def test_healthz(self):
        r = self.s.request("GET", "/healthz")
        self.assertStatus(r, 200)
        self.assertTrue(r.content_type.startswith("application/json"), r.describe())
        doc = r.json()
        self.assertEqual(doc["status"], "ok")
        self.assertIn(doc["sandbox"], ("namespaces", "rlimits"))
        want = os.environ.get("PYEXEC_TEST_SANDBOX")
        if want:
            self.assertEqual(doc["sandbox"], want)

    def test_routes_under_a_prefix(self):
        r = self.s.request("GET", "/api/v1/healthz")
        self.assertStatus(r, 200)
        r = self.s.post_execute({"main.py": HELLO}, path="/api/v1/execute")
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")

    def test_accept_negotiation(self):
        hello = {"main.py": HELLO}
        for accept, json_form in (("application/json", True),
                                  ("multipart/form-data, application/json", False),
                                  ("application/json;q=0", False),
                                  ("application/json, */*;q=0.5", True),
                                  ("*/*", False)):
            r = self.s.post_execute(hello, headers={"Accept": accept})
            self.assertStatus(r, 200)
            self.assertEqual(r.content_type.startswith("application/json"), json_form,
                             "Accept: %s\n%s" % (accept, r.describe()))

    def test_metrics(self):
        self.run_ok({"main.py": HELLO})
        r = self.s.request("GET", "/metrics")
        self.assertStatus(r, 200)
        self.assertTrue(r.content_type.startswith("text/plain"), r.describe())
        lines = [l for l in r.body.decode().splitlines() if l and not l.startswith("#")]
        self.assertTrue(lines, r.describe())
        for l in lines:
            self.assertRegex(l, r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEinfNa]+$")


class OpenApi(harness.E2ETestCase):
    """The document itself, served at openapi.json (any prefix), and the
    check of every reply, which must see replies and find departures."""

    def setUp(self):
        super().setUp()
        if NO_CHECKER:
            self.skipTest(NO_CHECKER)
        self.s = self.server("main", **MAIN)

    def test_served_document_is_the_file(self):
        for path in ("/openapi.json", "/api/v1/openapi.json"):
            r = self.s.request("GET", path)
            self.assertStatus(r, 200)
            self.assertEqual(r.content_type, "application/json")
            self.assertEqual(r.body, CHECKER.raw)
        self.assertEqual(json.loads(CHECKER.raw)["openapi"], "3.1.0")
        r = self.s.request("POST", "/openapi.json", body=b"")
        self.assertError(r, 405, "Use GET")

    def test_every_route_and_form_is_described(self):
        before = CHECKER.checked
        for method, path in (("GET", "/healthz"), ("HEAD", "/healthz"), ("GET", "/metrics"),
                             ("GET", "/openapi.json")):
            self.assertStatus(self.s.request(method, path), 200)
        for query in (None, "format=json", "stream=1", "dependencies=no%20such"):
            self.s.post_execute({"main.py": HELLO}, query=query)
        self.s.post_execute({"helper.py": HELLO})
        self.s.request("GET", "/execute")
        self.s.request("GET", "/nowhere")
        # every one but the 404, which has no operation to check it against
        self.assertEqual(CHECKER.checked - before, 10)

    def test_departures_are_seen(self):
        r = self.s.post_execute({"main.py": HELLO}, query="format=json")
        self.assertEqual(CHECKER.check("POST", "/execute", r), [])
        doc = r.json()
        bad = [("status", 404, None), ("header", "X-Execution-Status", "fine"),
               ("header", "X-Request-Id", None), ("body", "exit_code", "0"),
               ("body", "surprise", 1), ("body", "start", "lukewarm"),
               ("type", "text/html", None)]
        for kind, key, value in bad:
            with self.subTest(kind=kind, key=key):
                copy = harness.Reply(r.status, harness.Headers(list(r.headers.pairs)),
                                     r.body, 0)
                if kind == "status":
                    copy.status = key
                elif kind == "header" and value is None:
                    copy.headers = harness.Headers([(k, v) for k, v in r.headers.pairs
                                                    if k.lower() != key.lower()])
                    self.assertEqual(CHECKER.check("POST", "/execute", copy), [])
                    continue     # no X-Request-Id: the web server's own reply
                elif kind == "header":
                    copy.headers = harness.Headers([(k, value if k == key else v)
                                                    for k, v in r.headers.pairs])
                elif kind == "body":
                    copy.body = json.dumps(dict(doc, **{key: value})).encode()
                else:
                    copy.headers = harness.Headers([(k, key if k == "Content-Type" else v)
                                                    for k, v in r.headers.pairs])
                self.assertNotEqual(CHECKER.check("POST", "/execute", copy), [])


class Truncation(harness.E2ETestCase):
    """A server with max_output=64K and max_generated_files=3."""

    def setUp(self):
        super().setUp()
        self.s = self.server("small", **SMALL)

    def test_stdout_over_cap(self):
        r = self.s.post_execute({"main.py": script('''
            import sys
            for i in range(20000):
                sys.stdout.write("%06d\\n" % i)
            open("after.txt", "w").write("the program went on")
            ''')})
        self.assertRan(r, "ok", 0)
        full = b"".join(b"%06d\n" % i for i in range(20000))
        self.assertEqual(r.stdout, full[:64 * 1024])
        self.assertEqual(r.headers.get("X-Truncated"), "stdout")
        self.assertEqual(r.stderr, b"")

    def test_stdout_and_stderr_over_cap(self):
        r = self.s.post_execute({"main.py": script('''
            import sys
            sys.stdout.write("o" * 200000)
            sys.stderr.write("e" * 200000)
            ''')})
        self.assertStatus(r, 200)
        self.assertEqual(r.stdout, b"o" * 65536)
        self.assertTrue(r.stderr.startswith(b"e" * 65536), r.stderr[:100])
        self.assertEqual(r.headers.get("X-Truncated"), "stdout,stderr")

    def test_endless_output_ends_at_timeout(self):
        r = self.s.post_execute({"main.py": script('''
            import sys
            while True:
                sys.stdout.write("x" * 4096)
            ''')}, query="timeout=1")
        self.assertStatus(r, 200)
        self.assertLess(r.elapsed, 2.5)
        self.assertEqual(r.stdout, b"x" * 65536)
        self.assertIn("stdout", r.headers.get("X-Truncated", ""))

    def test_generated_files_over_cap(self):
        r = self.s.post_execute({"main.py": script('''
            for i in range(5):
                open("f%d.txt" % i, "w").write(str(i))
            ''')})
        self.assertRan(r, "ok", 0)
        self.assertEqual(len(r.files), 3)
        self.assertEqual(r.headers.get("X-Truncated"), "files")

    def test_truncation_in_json(self):
        r = self.s.post_execute({"main.py": script('''
            print("y" * 100000)
            ''')}, query="format=json")
        doc = r.json()
        self.assertEqual(doc["truncated"], ["stdout"])
        self.assertEqual(doc["stdout"], "y" * 65536)


# ================================================================ reply bounds

MiB = 1 << 20
REPLY_CAP = dict(workers=2, options=["max_reply=16M"])

SPARSE = script('''
    print("made them")
    with open("sparse.bin", "wb") as f:     # 64 MiB that take no disk
        f.truncate(64 << 20)
    open("small.txt", "w").write("still here\\n")
    ''')


class ReplyBounds(harness.E2ETestCase):
    """A server with max_reply=16M: what a program's files cost the reply is
    what the caps say, whatever they hold (a 64 MiB sparse file costs no
    disk), and no reply passes max_reply."""

    def setUp(self):
        super().setUp()
        self.s = self.server("replycap", **REPLY_CAP)

    def test_sparse_file_json(self):
        r = self.s.post_execute({"main.py": SPARSE}, query="format=json", timeout=30)
        self.assertStatus(r, 200)
        self.assertLessEqual(len(r.body), 16 * MiB)
        self.assertLess(r.elapsed, 5, "the reply took %.1f s" % r.elapsed)
        self.assertEqual(r.headers.get("X-Truncated"), "files,reply")
        doc = r.json()
        self.assertEqual(doc["truncated"], ["files", "reply"])
        self.assertEqual(doc["stdout"], "made them\n")
        self.assertEqual([f["name"] for f in doc["files"]], ["small.txt"])
        self.assertEqual(doc["files"][0]["content"], "still here\n")

    def test_sparse_file_multipart(self):
        r = self.s.post_execute({"main.py": SPARSE}, timeout=30)
        self.assertRan(r, "ok", 0)
        self.assertLessEqual(len(r.body), 16 * MiB)
        self.assertLess(r.elapsed, 5, "the reply took %.1f s" % r.elapsed)
        self.assertEqual(r.headers.get("X-Truncated"), "files,reply")
        self.assertEqual(r.stdout, b"made them\n")
        self.assertEqual(sorted(r.files), ["small.txt"])
        self.assertEqual(r.files["small.txt"].data, b"still here\n")

    def test_sparse_file_that_fits_is_base64(self):
        """9 MiB of NULs: 12 MiB of base64 in JSON (as a \\u0000 each it
        would have been 54 MiB)."""
        r = self.s.post_execute({"main.py": script('''
            with open("zeros.bin", "wb") as f:
                f.truncate(9 << 20)
            ''')}, query="format=json", timeout=30)
        self.assertStatus(r, 200)
        self.assertIsNone(r.headers.get("X-Truncated"))
        self.assertLessEqual(len(r.body), 12 * MiB + 4096)
        f = r.json()["files"][0]
        self.assertEqual((f["name"], f["size"], f["encoding"]), ("zeros.bin", 9 << 20, "base64"))
        self.assertEqual(base64.b64decode(f["content"]), bytes(9 << 20))

    def test_control_bytes_in_stdout_are_base64(self):
        """stdout of NULs and escapes comes back exactly, as base64, at 4/3
        its size; printable stderr stays text."""
        r = self.s.post_execute({"main.py": script('''
            import sys
            sys.stdout.buffer.write(b"\\0" * 300000 + b"\\x1b[0m\\xff")
            print("plain \\u00e9\\t\\"text\\"", file=sys.stderr)
            ''')}, query="format=json")
        self.assertStatus(r, 200)
        doc = r.json()
        self.assertEqual(doc["stdout_encoding"], "base64")
        self.assertEqual(base64.b64decode(doc["stdout"]), b"\0" * 300000 + b"\x1b[0m\xff")
        self.assertEqual(doc["stderr_encoding"], "utf-8")
        self.assertEqual(doc["stderr"], "plain \u00e9\t\"text\"\n")
        self.assertLess(len(r.body), 300000 * 4 // 3 + 4096)


# ===================================================================== names

EXAMPLES = os.path.join(harness.TOP_SRCDIR, "examples")

FORGER = script('''
    import sys
    print("the real stdout")
    print("the real stderr", file=sys.stderr)
    for name, text in [("stdout", "forged stdout\\n"), ("stderr", "forged stderr\\n"),
                       ('a"b', "quote\\n"), ("a%22b", "percent\\n")]:
        open(name, "w").write(text)
    ''')

NON_UTF8 = [b"x\xff.bin", b"x\xfe.bin", b"caf\xe9.txt"]


class ReplyNames(harness.E2ETestCase):
    """No generated file's name can pass for another's, or for stdout."""

    def setUp(self):
        super().setUp()
        self.s = self.server("main", **MAIN)
        self.dir = tempfile.mkdtemp(prefix="pyexec-names-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.write_main(FORGER)

    def write_main(self, data):
        with open(os.path.join(self.dir, "main.py"), "wb") as f:
            f.write(data)

    def client(self, name, *argv):
        r = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), "--url",
                            self.s.url()] + list(argv), cwd=self.dir, timeout=60,
                           stdin=subprocess.DEVNULL, capture_output=True)
        return r.returncode, r.stdout, r.stderr

    def saved(self, out):
        """{name (bytes): content} of what a client saved under out."""
        found = {}
        for n in os.listdir(os.fsencode(out)):
            with open(os.path.join(os.fsencode(out), n), "rb") as f:
                found[n] = f.read()
        return found

    def test_multipart_names(self):
        r = self.s.post_execute({"main.py": FORGER})
        self.assertRan(r, "ok", 0)
        self.assertEqual(r.stdout, b"the real stdout\n")
        self.assertEqual(r.stderr, b"the real stderr\n")
        # filename= as sent: '"' is %22 and '%' is %25
        self.assertEqual({n: p.data for n, p in r.files.items()},
                         {"a%22b": b"quote\n", "a%2522b": b"percent\n",
                          "stdout": b"forged stdout\n", "stderr": b"forged stderr\n"})
        names = [p.name for p in r.parts]
        self.assertEqual(names[:2], ["stdout", "stderr"])
        self.assertEqual(names.count("stdout"), 1)
        self.assertEqual(names.count("stderr"), 1)
        self.assertIn("%73tdout", names)

    def test_json_names(self):
        r = self.s.post_execute({"main.py": FORGER}, query="format=json")
        doc = r.json()
        self.assertEqual(doc["stdout"], "the real stdout\n")
        self.assertEqual({f["name"]: f["content"] for f in doc["files"]},
                         {'a"b': "quote\n", "a%22b": "percent\n",
                          "stdout": "forged stdout\n", "stderr": "forged stderr\n"})

    def test_seed_client_prints_the_real_stdout(self):
        try:
            import requests_toolbelt  # noqa: F401
        except ImportError as e:
            self.skipTest("requests_toolbelt is needed (Debian: python3-requests-toolbelt): %s"
                          % e)
        rc, out, err = self.client("seed_client.py", "main.py")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, b"the real stdout\n")
        self.assertIn(b"the real stderr\n", err)
        with open(os.path.join(self.dir, "%73tdout"), "rb") as f:
            self.assertEqual(f.read(), b"forged stdout\n")

    def test_pyexec_client_keeps_every_file(self):
        for form in ([], ["--json"]):
            out = os.path.join(self.dir, "out" + "".join(form))
            rc, stdout, err = self.client("pyexec_client.py", "--out", out, *form, "main.py")
            self.assertEqual(rc, 0, err)
            self.assertEqual(stdout, b"the real stdout\n")
            self.assertEqual(self.saved(out), {b'a"b': b"quote\n", b"a%22b": b"percent\n",
                                               b"stdout": b"forged stdout\n",
                                               b"stderr": b"forged stderr\n"}, form)

    def test_non_utf8_names_round_trip(self):
        main = script('''
            for i, name in enumerate(%r):
                open(name, "wb").write(b"%%d" %% i)
            ''' % (NON_UTF8,))
        want = {n: b"%d" % i for i, n in enumerate(NON_UTF8)}
        r = self.s.post_execute({"main.py": main}, query="format=json")
        self.assertStatus(r, 200)
        files = r.json()["files"]
        self.assertEqual({base64.b64decode(f["name_b64"]): f["content"].encode() for f in files},
                         want)
        self.write_main(main)
        for form in ([], ["--json"]):
            out = os.path.join(self.dir, "out" + "".join(form))
            rc, _, err = self.client("pyexec_client.py", "--out", out, *form, "main.py")
            self.assertEqual(rc, 0, err)
            self.assertEqual(self.saved(out), want, form)
        out = os.path.join(self.dir, "out-sh")
        r = subprocess.run(["sh", os.path.join(EXAMPLES, "pyexec.sh"), "-u", self.s.url(),
                            "-o", out, "main.py"], cwd=self.dir, timeout=60,
                           stdin=subprocess.DEVNULL, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.saved(out), want, "pyexec.sh")


@harness.unittest.skipUnless(harness.DEFAULT_WEB == "apache",
                             "Apache's mod_fcgid starts pyexec only with PYEXEC_TEST_WEB=apache")
class UnderApache(harness.E2ETestCase):
    """mod_fcgid starts pyexec-fcgi itself, with the socket on fd 0, and
    sends each process one request at a time."""

    def test_one_process_serves_without_workers(self):
        s = self.server("main", **MAIN)
        r = s.request("GET", "/healthz")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["workers"], 1, r.describe())
        log = (harness._read(s.pyexec_log) or b"").decode("utf-8", "replace")
        self.assertIn("started by Apache httpd (mod_fcgid), which sends one request at a "
                      "time to each process: serving in this process, without workers", log)
        table = harness.proc_table()
        masters = s.master_pids(table)
        self.assertTrue(masters)
        for m in masters:
            self.assertEqual(table[m]["uid"], 65534 if harness.IS_ROOT else os.getuid())
            # no pre-fork: nothing of pyexec's below it between requests
            self.assertEqual(harness.descendants(table, m), [], "process %d" % m)
        self.assertRan(s.post_execute({"main.py": HELLO}))

    def test_processes_share_work_root(self):
        """Concurrent requests go to several pyexec processes sharing one
        work_root: one that starts while another runs a program (in the
        host's directory, rlimits layer) leaves that program's directory."""
        s = self.private_server(name="fcgid-share", workers=2, sandbox="rlimits")
        replies = {}

        def post(i):
            replies[i] = s.post_execute({"main.py": script('''
                import time
                time.sleep(2)
                open("done.txt", "w").write("done")
                ''')}, query="timeout=20", timeout=60)
        threads = [threading.Thread(target=post, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        seen = set()
        harness.wait_for(lambda: seen.update(s.master_pids()) or len(seen) >= 2, 10)
        for t in threads:
            t.join(70)
        self.assertGreaterEqual(len(seen), 2, "mod_fcgid started one process only")
        for i in range(3):
            self.assertRan(replies[i], "ok", 0)
            self.assertEqual(replies[i].files["done.txt"].data, b"done")


if __name__ == "__main__":
    harness.main()
