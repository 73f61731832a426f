"""End-to-end: one nginx balancing over several pyexec back ends
(conf/nginx/pyexec-upstream.conf), each its own process tree on its own
socket, as they would be on their own hosts.

Requests spread over every back end; when one is killed (SIGKILL of its
master: its workers and runs go with it), no request that had not started
running on it is lost: nginx passes it to the next back end.
"""

import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

UPSTREAM_CONF = os.path.join(harness.TOP_SRCDIR, "conf", "nginx", "pyexec-upstream.conf")
BACKENDS = 3
HELLO = {"main.py": b"print('hello')\n"}


def http_request(port, method, path, body=None, headers=None, timeout=30):
    """(status, headers as a dict, body) of one request to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def pid_alive(pid):
    """Running, not gone nor a zombie waiting for its parent."""
    stat = harness._read("/proc/%d/stat" % pid)
    return stat is not None and b") Z " not in stat


class Balancer:
    """nginx from conf/nginx/pyexec-upstream.conf, with the back ends'
    sockets, a free port and the system's fastcgi_params put in."""

    def __init__(self, sockets):
        self.tmp = harness.own_dir(tempfile.mkdtemp(prefix="pyexec-e2e-balancer-"))
        os.chmod(self.tmp, 0o755)
        os.mkdir(os.path.join(self.tmp, "nginx-tmp"))
        self.port = harness.free_port()
        text = harness._read(UPSTREAM_CONF, "r")
        servers = "".join("    server unix:%s max_fails=1 fail_timeout=10s;\n" % s
                          for s in sockets)
        text, n = re.subn(r"(?m)^\s*server\s+unix:[^;]*;\n", "", text)
        assert n == 3, "conf/nginx/pyexec-upstream.conf changed shape"
        text = text.replace("upstream pyexec {\n", "upstream pyexec {\n" + servers, 1)
        for pat, rep in ((r"(?m)^(\s*)listen\s+[^;]*;", r"\g<1>listen 127.0.0.1:%d;" % self.port),
                         (r"(?m)^(\s*)include\s+fastcgi_params;",
                          r"\g<1>include %s;" % harness.FASTCGI_PARAMS)):
            text, n = re.subn(pat, rep, text)
            assert n == 1, pat
        t = self.tmp
        conf = os.path.join(t, "nginx.conf")
        with open(conf, "w") as f:
            f.write("daemon off;\nworker_processes 1;\n%spid %s/nginx.pid;\n"
                    "error_log %s/nginx-error.log warn;\nevents { worker_connections 256; }\n"
                    "http {\n access_log %s/access.log;\n client_body_temp_path %s/nginx-tmp/b;\n"
                    " fastcgi_temp_path %s/nginx-tmp/f;\n proxy_temp_path %s/nginx-tmp/p;\n"
                    " uwsgi_temp_path %s/nginx-tmp/u;\n scgi_temp_path %s/nginx-tmp/s;\n%s}\n"
                    % ("user nobody nogroup;\n" if harness.IS_ROOT else "", t, t, t, t, t, t,
                       t, t, text))
        self.proc = harness.spawn([harness.NGINX, "-p", t, "-c", conf, "-e",
                                   os.path.join(t, "nginx-error.log")],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        ok = harness.wait_for(lambda: self.get_healthz() == 200, 10)
        assert ok, "the balancing nginx did not start"

    def get_healthz(self):
        try:
            return http_request(self.port, "GET", "/healthz", timeout=5)[0]
        except OSError:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        harness.shutil.rmtree(self.tmp, ignore_errors=True)


class ScaleOut(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        self.backends = [self.private_server(name="backend%d" % i, workers=2)
                         for i in range(BACKENDS)]
        self.lb = Balancer([s.listen[len("unix:"):] for s in self.backends])
        self.addCleanup(self.lb.stop)

    def post(self):
        """One hello through the balancer: (HTTP status, request id)."""
        body, ctype = harness.build_multipart([("files", "main.py", HELLO["main.py"], None)])
        status, headers, data = http_request(self.lb.port, "POST", "/execute", body,
                                             {"Content-Type": ctype})
        return status, headers.get("X-Request-Id"), data

    def served_by(self, request_id):
        for i, s in enumerate(self.backends):
            if request_id and ("request id=%s " % request_id) in (s.log_since_mark() or ""):
                return i
        return None

    def test_requests_spread_over_every_back_end(self):
        counts = [0] * BACKENDS
        for _ in range(30):
            status, rid, data = self.post()
            self.assertEqual(status, 200, data[:300])
            self.assertIn(b"hello", data)
            who = harness.wait_for(lambda: self.served_by(rid), 2)
            self.assertIsNotNone(who, "no back end logged request %s" % rid)
            counts[who] += 1
        self.assertTrue(all(c >= 5 for c in counts), counts)

    def test_a_killed_back_end_loses_no_request_it_had_not_started(self):
        victim = self.backends[1]
        results = []
        lock = threading.Lock()
        killed_at = []

        def client():
            for _ in range(15):
                t0 = time.monotonic()
                try:
                    status, rid, data = self.post()
                except OSError as e:
                    status, rid, data = None, None, str(e).encode()
                with lock:
                    results.append((t0, status, rid, data[:200]))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        pids = [victim.proc.pid] + victim.worker_pids()
        killed_at.append(time.monotonic())
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(5)
        # its workers follow their master (parent-death signal)
        self.assertTrue(harness.wait_for(lambda: not [p for p in pids if pid_alive(p)], 5),
                        "the killed back end's processes live on")
        gone_at = time.monotonic()
        for t in threads:
            t.join(120)
        self.assertEqual(len(results), 60)
        failed = [r for r in results if r[1] != 200]
        # What the victim held when it died may fail: the runs in its workers
        # and what sat in its socket's queue, at most one per client, all
        # sent before it was gone. Nothing sent after that may fail.
        self.assertLessEqual(len(failed), 4, failed)
        for t0, status, _, data in failed:
            self.assertLess(t0, gone_at, "a request sent after the back end was gone "
                            "failed: %r" % ((status, data),))
        after = [r for r in results if r[0] > gone_at]
        self.assertTrue(after, "no request was sent after the back end was gone")
        self.assertEqual([r for r in after if r[1] != 200], [])
        # and the survivors keep serving
        for _ in range(6):
            self.assertEqual(self.post()[0], 200)


if __name__ == "__main__":
    harness.main()
