"""End-to-end: the clients in examples/ against a real nginx + pyexec, and
what their users see.

examples/pyexec_client.py (standard library; run() and its command line),
examples/seed_client.py (requests + requests_toolbelt's MultipartDecoder,
the way the seed's users read its replies) and examples/pyexec.sh (curl).
One script prints, writes to stderr, saves a PNG it builds with zlib and
struct, and exits 3: each client must show its stdout, its stderr, exit code
3 and the PNG's exact bytes. Then a request without main.py (400, the seed's
detail), a run that times out (status timeout, exit status 124), and a
server with tokens_file (--token works; no token is the 401's detail).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import script  # noqa: E402

EXAMPLES = os.path.join(harness.TOP_SRCDIR, "examples")
sys.path.insert(0, EXAMPLES)
import pyexec_client  # noqa: E402

try:
    import seed_client   # needs requests and requests_toolbelt
    SEED_SKIP = None
except ImportError as e:
    seed_client = None
    SEED_SKIP = ("requests and requests_toolbelt are needed (Debian: python3-requests "
                 "python3-requests-toolbelt): %s" % e)

CLIENT = os.path.join(EXAMPLES, "pyexec_client.py")
SHELL = os.path.join(EXAMPLES, "pyexec.sh")
SEED = os.path.join(EXAMPLES, "seed_client.py")
PY = sys.executable

# The PNG is built by the script (harness.PNG_SRC); the test builds it with
# the same code.
PNG_SRC = harness.PNG_SRC
PNG = harness.png_bytes(5, 4)

MAIN = script(PNG_SRC + textwrap.dedent('''
    import os, sys
    import helper
    print(helper.greeting())
    print("stdin:", sys.stdin.read().strip())
    print("warning: exiting with 3", file=sys.stderr)
    with open(os.path.join(os.environ["OUTPUT_DIR"], "plot.png"), "wb") as f:
        f.write(make_png(5, 4))
    sys.exit(3)
    '''))
HELPER = b'def greeting():\n    return "hello from helper"\n'
STDOUT = b"hello from helper\nstdin: \n"
STDERR = b"warning: exiting with 3\n"
SLEEP = script("import time\ntime.sleep(30)\n")
MISSING_MAIN = "main.py not found. Please upload a valid main.py file."
TOKEN = "examples-token-" + os.urandom(12).hex()


class Examples(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        self.s = self.server("examples", workers=2)
        self.dir = tempfile.mkdtemp(prefix="pyexec-examples-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.write("main.py", MAIN)
        self.write("helper.py", HELPER)
        self.write("sleep.py", SLEEP)
        self.write("no_main.py", b"print('never run')\n")

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def command(self, argv, env=None, timeout=60):
        """Runs a client in self.dir (without $PYEXEC_URL and $PYEXEC_TOKEN but
        those in env); returns (exit status, stdout, stderr)."""
        e = {k: v for k, v in os.environ.items() if k not in ("PYEXEC_URL", "PYEXEC_TOKEN")}
        e.update(env or {})
        r = subprocess.run(argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=e, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def saved(self, *path):
        with open(os.path.join(self.dir, *path), "rb") as f:
            return f.read()

    def assertScriptResult(self, r):
        self.assertEqual(r.status, "error", r)
        self.assertEqual(r.exit_code, 3, r)
        self.assertIsNone(r.signal)
        self.assertEqual(r.stdout, STDOUT)
        self.assertEqual(r.stderr, STDERR)
        self.assertEqual(list(r.files), ["plot.png"])
        self.assertEqual(r.files["plot.png"], ("image/png", PNG))
        self.assertEqual(r.truncated, [])
        self.assertEqual(r.dependencies, "none")

    # ------------------------------------------------------ pyexec_client.run

    def test_python_client_run(self):
        helper = self.write("helper.py", HELPER)
        r = pyexec_client.run(self.s.url(), {"main.py": MAIN, "helper.py": helper})
        self.assertScriptResult(r)
        self.assertEqual((r.http_status, r.form), (200, "multipart"))
        self.assertTrue(r.request_id)
        self.assertIsInstance(r.times["wall"], float)
        self.assertIsInstance(r.times["cpu"], float)
        self.assertGreater(r.times["max_rss_kib"], 0)
        # the base URL works too, and stdin reaches the program
        r = pyexec_client.run(self.s.url("/"), {"main.py": MAIN, "helper.py": HELPER},
                              stdin=b"some input\n")
        self.assertEqual(r.stdout, b"hello from helper\nstdin: some input\n")

    ARGV_ENV = script('''
        import os, sys
        print(sys.argv[1:], os.environ.get("MODE"), os.environ.get("EMPTY"))
        ''')
    ARGV_ENV_OUT = b"['--rows', '10', 'caf\xc3\xa9 x=y', ''] fast=1 \n"

    def test_python_client_args_and_env(self):
        for json_mode in (False, True):
            r = pyexec_client.run(self.s.url(), {"main.py": self.ARGV_ENV},
                                  args=["--rows", "10", "caf\u00e9 x=y", ""],
                                  env={"MODE": "fast=1", "EMPTY": ""}, json_mode=json_mode)
            self.assertEqual((r.status, r.stdout), ("ok", self.ARGV_ENV_OUT), r)
        with self.assertRaises(pyexec_client.PyexecError) as cm:
            pyexec_client.run(self.s.url(), {"main.py": MAIN}, env={"PATH": "/x"})
        self.assertEqual((cm.exception.status, cm.exception.error), (400, "bad_field"))
        self.assertIn("env: 'PATH' is set by pyexec", cm.exception.detail)

    def test_python_client_live_output(self):
        pieces = []
        src = script('''
            import sys, time
            print("one", flush=True)
            print("err", file=sys.stderr, flush=True)
            time.sleep(0.5)
            sys.stdout.buffer.write(b"\\xff\\n")
            ''')
        r = pyexec_client.run(self.s.url(), {"main.py": src},
                              on_output=lambda name, data: pieces.append((name, data)))
        self.assertEqual((r.status, r.stdout, r.stderr), ("ok", b"one\n\xff\n", b"err\n"))
        self.assertEqual(b"".join(d for n, d in pieces if n == "stdout"), b"one\n\xff\n")
        self.assertEqual(b"".join(d for n, d in pieces if n == "stderr"), b"err\n")
        self.assertEqual(r.form, "json")
        self.assertScriptResult(pyexec_client.run(
            self.s.url(), {"main.py": MAIN, "helper.py": HELPER}, on_output=lambda n, d: None))
        # the command: --stream prints as it goes, the same bytes
        rc, out_b, err_b = self.command([PY, CLIENT, "-q", "--stream", "--url", self.s.url(),
                                         "main.py", "helper.py"])
        self.assertEqual((rc, out_b, err_b), (3, STDOUT, STDERR))

    def test_python_client_json_mode_gives_the_same(self):
        files = {"main.py": MAIN, "helper.py": HELPER}
        m = pyexec_client.run(self.s.url(), files)
        j = pyexec_client.run(self.s.url(), files, json_mode=True)
        self.assertScriptResult(j)
        self.assertEqual((m.form, j.form), ("multipart", "json"))
        for key in ("status", "exit_code", "signal", "stdout", "stderr", "files", "truncated",
                    "dependencies", "http_status"):
            self.assertEqual(getattr(j, key), getattr(m, key), key)
        self.assertTrue(j.request_id)
        self.assertEqual(sorted(j.times), sorted(m.times))

    def test_python_client_missing_main_raises(self):
        with self.assertRaises(pyexec_client.PyexecError) as cm:
            pyexec_client.run(self.s.url(), {"helper.py": HELPER})
        e = cm.exception
        self.assertEqual((e.status, e.error, e.detail), (400, "missing_main", MISSING_MAIN))
        self.assertTrue(e.request_id)
        self.assertIn(MISSING_MAIN, str(e))

    def test_python_client_timeout(self):
        for json_mode in (False, True):
            r = pyexec_client.run(self.s.url(), {"main.py": SLEEP}, timeout=0.5,
                                  json_mode=json_mode)
            self.assertEqual(r.status, "timeout", r)
            self.assertIsNone(r.exit_code)
            self.assertIn(b"time limit", r.stderr)
            self.assertEqual(pyexec_client.exit_status(r), 124)

    def test_python_client_unreachable(self):
        with self.assertRaises(pyexec_client.PyexecError) as cm:
            pyexec_client.run("http://127.0.0.1:%d/execute" % harness.free_port(),
                              {"main.py": b""})
        self.assertIsNone(cm.exception.status)

    # ------------------------------------------------- pyexec_client command

    def test_python_client_names_the_interpreter(self):
        """The server's one interpreter is called python3 (after its file):
        naming it runs as the default does; another name is a 400 that
        lists the names it has."""
        r = pyexec_client.run(self.s.url(), {"main.py": self.ARGV_ENV}, python="python3")
        self.assertEqual(r.status, "ok", r)
        with self.assertRaises(pyexec_client.PyexecError) as cm:
            pyexec_client.run(self.s.url(), {"main.py": MAIN}, python="pypy9")
        self.assertEqual((cm.exception.status, cm.exception.error), (400, "bad_parameter"))
        self.assertIn("python: 'pypy9' is not an interpreter of this server; it has python3 "
                      "(the default)", cm.exception.detail)
        self.write("argv.py", self.ARGV_ENV)
        for argv in ([PY, CLIENT, "--url", self.s.url(), "--python"],
                     ["sh", SHELL, "-u", self.s.url(), "-p"]):
            rc, out_b, err_b = self.command(argv + ["python3", "argv.py"])
            self.assertEqual(rc, 0, err_b)
            self.assertEqual(out_b, b"[] None None\n")
            rc, out_b, err_b = self.command(argv + ["pypy9", "argv.py"])
            self.assertEqual(rc, 125, err_b)
            self.assertIn(b"'pypy9' is not an interpreter of this server", err_b)

    def test_python_cli(self):
        for extra, out in (([], "pyexec-out"), (["--json", "--out", "json-out"], "json-out")):
            rc, out_b, err_b = self.command([PY, CLIENT, "--url", self.s.url()] + extra
                                            + ["main.py", "helper.py"])
            self.assertEqual(rc, 3, err_b)
            self.assertEqual(out_b, STDOUT)
            self.assertTrue(err_b.startswith(STDERR), err_b)
            self.assertIn(b"saved %s/plot.png" % out.encode(), err_b)
            self.assertEqual(self.saved(out, "plot.png"), PNG)
        # -q leaves the program's stderr alone; the first file is main.py
        rc, out_b, err_b = self.command([PY, CLIENT, "-q", "--url", self.s.url(), "--out", "q",
                                         self.write("prog.py", MAIN), "helper.py"])
        self.assertEqual((rc, out_b, err_b), (3, STDOUT, STDERR))
        self.assertEqual(self.saved("q", "plot.png"), PNG)

    def test_python_cli_args_and_env(self):
        self.write("argv.py", self.ARGV_ENV)
        rc, out_b, err_b = self.command([PY, CLIENT, "-q", "--url", self.s.url(),
                                         "--arg=--rows", "--arg", "10",
                                         "--arg", "caf\u00e9 x=y", "--arg", "",
                                         "--env", "MODE=fast=1", "--env", "EMPTY=", "argv.py"])
        self.assertEqual((rc, out_b, err_b), (0, self.ARGV_ENV_OUT, b""))
        rc, out_b, err_b = self.command([PY, CLIENT, "--url", self.s.url(), "--env", "NOEQ",
                                         "argv.py"])
        self.assertEqual(rc, 2, err_b)
        self.assertIn(b"give NAME=VALUE", err_b)

    def test_python_cli_errors_and_timeout(self):
        rc, out_b, err_b = self.command([PY, CLIENT, "--url", self.s.url(), "--timeout", "0.5",
                                         "sleep.py"])
        self.assertEqual(rc, 124, err_b)
        self.assertIn(b"time limit", err_b)
        self.assertIn(b"status timeout", err_b)
        # an error reply is exit status 125 with its detail (the command sends its
        # first file as main.py, so a bad parameter stands in for the 400)
        rc, out_b, err_b = self.command([PY, CLIENT, "--url", self.s.url(), "--timeout", "-1",
                                         "main.py"])
        self.assertEqual(rc, 125, err_b)
        self.assertIn(b"HTTP 400 (bad_parameter)", err_b)
        self.assertEqual(out_b, b"")

    # ------------------------------------------------------------ pyexec.sh

    def test_shell_client(self):
        rc, out_b, err_b = self.command(["sh", SHELL, "-u", self.s.url(), "-o", "sh-out",
                                         "main.py", "helper.py"])
        self.assertEqual((rc, out_b, err_b), (3, STDOUT, STDERR))
        self.assertEqual(self.saved("sh-out", "plot.png"), PNG)
        self.write("input.txt", b"from a file\n")
        rc, out_b, err_b = self.command(["sh", SHELL, "-u", self.s.url(), "-i", "input.txt",
                                         "main.py", "helper.py"])
        self.assertEqual((rc, out_b), (3, b"hello from helper\nstdin: from a file\n"))

    def test_shell_client_args_and_env(self):
        self.write("argv.py", self.ARGV_ENV)
        rc, out_b, err_b = self.command(["sh", SHELL, "-u", self.s.url(), "-a", "--rows",
                                         "-a", "10", "-a", "caf\u00e9 x=y", "-a", "",
                                         "-e", "MODE=fast=1", "-e", "EMPTY=", "argv.py"])
        self.assertEqual((rc, out_b, err_b), (0, self.ARGV_ENV_OUT, b""))
        rc, out_b, err_b = self.command(["sh", SHELL, "-u", self.s.url(), "-e", "LD_PRELOAD=x",
                                         "argv.py"])
        self.assertEqual(rc, 125, err_b)
        self.assertIn(b"HTTP 400 (bad_field)", err_b)
        self.assertIn(b"starts with LD_", err_b)

    def test_shell_client_errors_and_timeout(self):
        rc, out_b, err_b = self.command(["sh", SHELL, "-u", self.s.url(), "-s", "0.5",
                                         "sleep.py"])
        self.assertEqual(rc, 124, err_b)
        self.assertIn(b"time limit", err_b)
        rc, out_b, err_b = self.command(["sh", SHELL, "-u", self.s.url(), "-s", "-1", "main.py"])
        self.assertEqual(rc, 125, err_b)
        self.assertIn(b"HTTP 400 (bad_parameter)", err_b)

    # ---------------------------------------------------------- seed_client

    def test_seed_client(self):
        if SEED_SKIP:
            self.skipTest(SEED_SKIP)
        main, helper = os.path.join(self.dir, "main.py"), os.path.join(self.dir, "helper.py")
        parts = seed_client.execute(self.s.url(), [main, helper])
        self.assertEqual(parts, {"stdout": STDOUT, "stderr": STDERR, "plot.png": PNG})
        with self.assertRaises(RuntimeError) as cm:
            seed_client.execute(self.s.url(), [helper])
        self.assertEqual(str(cm.exception), "HTTP 400: " + MISSING_MAIN)
        # and as a command: the seed's files=@main.py, files=@helper.py
        rc, out_b, err_b = self.command([PY, SEED, "--url", self.s.url(), "main.py",
                                         "helper.py"])
        self.assertEqual(rc, 0, err_b)
        self.assertEqual(out_b, STDOUT)
        self.assertTrue(err_b.startswith(STDERR), err_b)
        self.assertEqual(self.saved("plot.png"), PNG)

    # ------------------------------------------------------------------ 424

    def test_dependency_error_is_a_result(self):
        """A 424 (pip could not install the set; here the package
        index is an empty directory) is a Result with status dependency_error
        and pip's output as stderr, not an exception; the command exits 125."""
        index = tempfile.mkdtemp(prefix="pyexec-e2e-index-")
        self.addCleanup(shutil.rmtree, index, True)
        os.chmod(index, 0o755)      # readable once pyexec has dropped to nobody
        d = self.private_server(name="noindex", workers=1, options=[
            "pip_index_url=file://%s/" % index, "pip_timeout=30"])
        for json_mode in (False, True):
            try:
                r = pyexec_client.run(d.url(), {"main.py": MAIN}, dependencies="probe-examples",
                                      json_mode=json_mode)
            except pyexec_client.PyexecError as e:
                if e.error == "dependencies_unavailable":
                    self.skipTest("the server's interpreter has no pip: " + e.detail)
                raise
            self.assertEqual((r.http_status, r.status, r.exit_code), (424, "dependency_error", None))
            self.assertIn(b"probe-examples", r.stderr)
            self.assertEqual(r.stdout, b"")
            self.assertEqual(pyexec_client.exit_status(r), 125)
        rc, out_b, err_b = self.command([PY, CLIENT, "--url", d.url(), "--deps", "probe-examples",
                                         "main.py"])
        self.assertEqual(rc, 125, err_b)
        self.assertIn(b"probe-examples", err_b)
        self.assertIn(b"status dependency_error", err_b)

    # ---------------------------------------------------------------- tokens

    def tokens_server(self):
        d = tempfile.mkdtemp(prefix="pyexec-e2e-tokens-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)      # readable once pyexec has dropped to nobody
        path = os.path.join(d, "tokens")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(path, 0o644)
        return self.private_server(workers=1, options=["tokens_file=" + path])

    def test_tokens(self):
        t = self.tokens_server()
        files = {"main.py": MAIN, "helper.py": HELPER}
        self.assertScriptResult(pyexec_client.run(t.url(), files, token=TOKEN))
        with self.assertRaises(pyexec_client.PyexecError) as cm:
            pyexec_client.run(t.url(), files)
        e = cm.exception
        self.assertEqual((e.status, e.error), (401, "unauthorized"))
        self.assertIn("Authorization: Bearer", e.detail)
        detail = e.detail.encode()
        # the command line: --token, or $PYEXEC_TOKEN; none is 125 with the detail
        rc, out_b, err_b = self.command([PY, CLIENT, "-q", "--url", t.url(), "--token", TOKEN,
                                         "main.py", "helper.py"])
        self.assertEqual((rc, out_b, err_b), (3, STDOUT, STDERR))
        rc, out_b, err_b = self.command([PY, CLIENT, "-q", "main.py", "helper.py"],
                                        env={"PYEXEC_URL": t.url(), "PYEXEC_TOKEN": TOKEN})
        self.assertEqual((rc, out_b, err_b), (3, STDOUT, STDERR))
        rc, out_b, err_b = self.command([PY, CLIENT, "--url", t.url(), "main.py", "helper.py"])
        self.assertEqual(rc, 125, err_b)
        self.assertIn(b"HTTP 401 (unauthorized): " + detail, err_b)
        # the shell client
        rc, out_b, err_b = self.command(["sh", SHELL, "-u", t.url(), "-t", TOKEN,
                                         "main.py", "helper.py"])
        self.assertEqual((rc, out_b, err_b), (3, STDOUT, STDERR))
        rc, out_b, err_b = self.command(["sh", SHELL, "main.py", "helper.py"],
                                        env={"PYEXEC_URL": t.url(), "PYEXEC_TOKEN": TOKEN})
        self.assertEqual((rc, out_b, err_b), (3, STDOUT, STDERR))
        rc, out_b, err_b = self.command(["sh", SHELL, "-u", t.url(), "main.py", "helper.py"])
        self.assertEqual(rc, 125, err_b)
        self.assertIn(b"HTTP 401 (unauthorized): " + detail, err_b)


if __name__ == "__main__":
    harness.main()
