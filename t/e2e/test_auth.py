"""End-to-end: bearer tokens (tokens_file) and reloading the configuration
with SIGHUP, through a real nginx.

With tokens_file set, POST execute needs "Authorization: Bearer <token>"
(401 with WWW-Authenticate otherwise), /metrics too unless auth_metrics =
no, /healthz never. SIGHUP rereads the configuration and the tokens: the
workers are replaced as they finish, no request in hand is lost, and a
broken file is refused with the running configuration kept.
"""

import os
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

TOKEN_A = "token-a-" + os.urandom(12).hex()
TOKEN_B = "token-b-" + os.urandom(12).hex()
HELLO = {"main.py": b"print('hello')\n"}


def bearer(token):
    return {"Authorization": "Bearer " + token}


class Auth(harness.E2ETestCase):

    def tokens(self, *lines):
        d = tempfile.mkdtemp(prefix="pyexec-e2e-tokens-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        path = os.path.join(d, "tokens")
        self.write_tokens(path, *lines)
        return path

    def write_tokens(self, path, *lines):
        tmp = path + ".new"
        with open(tmp, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)

    def server_with(self, path, **kw):
        kw.setdefault("workers", 2)
        return self.private_server(options=["tokens_file=" + path] + kw.pop("options", []),
                                   **kw)

    def assertUnauthorized(self, r, invalid):
        self.assertStatus(r, 401)
        self.assertEqual(r.json()["error"], "unauthorized", r.describe())
        want = 'Bearer realm="pyexec"' + (', error="invalid_token"' if invalid else "")
        self.assertEqual(r.headers.get("WWW-Authenticate"), want, r.describe())

    def test_execute_needs_a_known_token(self):
        s = self.server_with(self.tokens("# the graders", TOKEN_A))
        r = s.post_execute(HELLO)
        self.assertUnauthorized(r, invalid=False)
        self.assertIn("Authorization: Bearer", r.json()["detail"])
        self.assertUnauthorized(s.post_execute(HELLO, headers=bearer(TOKEN_B)), invalid=True)
        self.assertUnauthorized(s.post_execute(HELLO, headers={"Authorization": "Basic eDp5"}),
                                invalid=False)
        r = s.post_execute(HELLO, headers=bearer(TOKEN_A))
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hello\n")
        # the log names the refusals, never the token
        log = s.log_since_mark()
        self.assertIn("status=401", log)
        self.assertIn("error=unauthorized", log)
        self.assertNotIn(TOKEN_A, log)
        self.assertNotIn(TOKEN_B, log)

    def test_healthz_is_open_and_metrics_configurable(self):
        s = self.server_with(self.tokens(TOKEN_A))
        self.assertStatus(s.request("GET", "/healthz"), 200)
        self.assertUnauthorized(s.request("GET", "/metrics"), invalid=False)
        self.assertStatus(s.request("GET", "/metrics", headers=bearer(TOKEN_A)), 200)
        t = self.server_with(self.tokens(TOKEN_A), options=["auth_metrics=no"])
        self.assertStatus(t.request("GET", "/metrics"), 200)
        self.assertUnauthorized(t.post_execute(HELLO), invalid=False)

    def test_a_bad_tokens_file_stops_start_up(self):
        out, _ = self.start_fails(["-o", "tokens_file=/nonexistent/pyexec-tokens"])
        self.assertIn("/nonexistent/pyexec-tokens: No such file or directory", out)
        path = self.tokens("short")
        out, _ = self.start_fails(["-o", "tokens_file=" + path])
        self.assertIn("%s:1: a token must be 16 to 256 characters" % path, out)

    def test_sighup_rereads_the_tokens_without_losing_a_request(self):
        path = self.tokens(TOKEN_A)
        s = self.server_with(path)
        old = set(s.worker_pids())
        self.assertRan(s.post_execute(HELLO, headers=bearer(TOKEN_A)))
        # A run in hand when the reload comes is finished and answered.
        slow = {}

        def run_slow():
            slow["r"] = s.post_execute(
                {"main.py": b"import time\ntime.sleep(1.5)\nprint('slow done')\n"},
                headers=bearer(TOKEN_A))
        t = threading.Thread(target=run_slow)
        t.start()
        time.sleep(0.5)
        self.write_tokens(path, TOKEN_B)
        s.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_for(lambda: "reload: configuration reread" in
                                         s.log_since_mark(), 5), s.log_tail())
        # Requests keep being answered while the workers are replaced.
        for _ in range(5):
            self.assertRan(s.post_execute(HELLO, headers=bearer(TOKEN_B)))
        t.join(30)
        self.assertRan(slow["r"])
        self.assertEqual(slow["r"].stdout, b"slow done\n")
        self.assertUnauthorized(s.post_execute(HELLO, headers=bearer(TOKEN_A)), invalid=True)
        self.assertTrue(harness.wait_for(lambda: len(s.worker_pids()) == 2 and
                                         not (set(s.worker_pids()) & old), 10),
                        "old workers %r, now %r" % (old, s.worker_pids()))
        self.assertNotIn("exited with status", s.log_since_mark())

    def test_a_broken_reload_keeps_the_running_configuration(self):
        path = self.tokens(TOKEN_A)
        s = self.server_with(path, options=["timeout=7"])
        workers = set(s.worker_pids())
        with open(s.conf, "w") as f:
            f.write("timeout = soon\n")
        s.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_for(lambda: "reload refused" in s.log_since_mark(), 5),
                        s.log_tail())
        self.assertIn("%s:1: timeout: 'soon'" % s.conf, s.log_since_mark())
        self.assertEqual(set(s.worker_pids()), workers)
        self.assertRan(s.post_execute(HELLO, headers=bearer(TOKEN_A)))
        # A tokens file that turned bad is refused the same way.
        with open(s.conf, "w") as f:
            f.write("# fine again\n")
        self.write_tokens(path, "short")
        s.mark_log()
        s.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_for(lambda: "reload refused" in s.log_since_mark(), 5),
                        s.log_tail())
        self.assertRan(s.post_execute(HELLO, headers=bearer(TOKEN_A)))

    def test_reload_applies_limits_and_says_what_needs_a_restart(self):
        s = self.private_server(workers=1, options=["timeout=5"])
        with open(s.conf, "w") as f:
            f.write("timeout = 1\nmax_output = 4K\nnetwork = yes\n")
        # -o on the command line still wins over the file after a reload
        s.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_for(lambda: "reload: configuration reread" in
                                         s.log_since_mark(), 5), s.log_tail())
        self.assertIn("reload: network changed; it takes effect when pyexec is restarted",
                      s.log_since_mark())
        r = s.post_execute({"main.py": b"print('x' * 10000)\n"})
        self.assertRan(r)
        self.assertEqual(len(r.stdout), 4096)
        self.assertEqual(r.headers.get("X-Truncated"), "stdout")
        r = s.post_execute({"main.py": b"import time\ntime.sleep(3)\n"})
        self.assertRan(r, "ok")       # timeout=5 from -o, not 1 from the file


if __name__ == "__main__":
    harness.main()
