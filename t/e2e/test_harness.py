"""End-to-end: a test run that is killed takes its servers with it.

A harness run in a subprocess starts servers (nginx, lighttpd and Apache in
front of pyexec-fcgi) and waits; it is then killed the way a CI time limit
or Ctrl-C kills it (SIGTERM, SIGINT), or outright (SIGKILL), and no process
it started may be left: no web server, no pyexec master, worker or run,
nor the servers' directories.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

READY_TIMEOUT = 90.0    # seconds for the run to start its servers
GONE_TIMEOUT = harness.STOP_TIMEOUT + harness.KILL_GRACE + 5

# The run that is killed: one test that starts a server behind each web
# server given, says so in a file, and waits.
RUN = '''
import json, os, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, %(t)r)
import harness


class Held(harness.E2ETestCase):
    def test_hold(self):
        dirs = [self.server("held-" + web, web=web).tmp for web in %(webs)r]
        with open(%(ready)r + ".part", "w") as f:
            json.dump(dirs, f)
        os.rename(%(ready)r + ".part", %(ready)r)
        time.sleep(600)


harness.main()
'''


class KilledRun(harness.E2ETestCase):

    def killed(self, sig, webs):
        """Starts a run with a server behind each of webs, kills it with
        sig, and checks that nothing of it is left."""
        d = tempfile.mkdtemp(prefix="pyexec-e2e-killed-")
        self.addCleanup(shutil.rmtree, d, True)
        ready = os.path.join(d, "ready")
        run = os.path.join(d, "run.py")
        with open(run, "w") as f:
            f.write(RUN % {"t": harness.HERE, "webs": list(webs), "ready": ready})
        log = open(os.path.join(d, "run.log"), "wb")
        self.addCleanup(log.close)
        p = subprocess.Popen([sys.executable, run, "test_hold"], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, cwd=d,
                             start_new_session=True)
        tree = {}
        dirs = []
        try:
            if not harness.wait_for(lambda: os.path.exists(ready) or p.poll() is not None,
                                    READY_TIMEOUT, 0.1) or p.poll() is not None:
                self.fail("the run did not start its servers:\n" +
                          harness.Server.tail(os.path.join(d, "run.log"), 60))
            with open(ready) as f:
                dirs = json.load(f)
            table = harness.proc_table()
            tree = {pid: harness.proc_starttime(pid) for pid in harness.descendants(table, p.pid)}
            names = {os.path.basename(table[pid]["exe"] or "") for pid in tree if pid in table}
            want = {"pyexec-fcgi"} | {{"nginx": "nginx", "lighttpd": "lighttpd",
                                      "apache": "apache2"}[w] for w in webs}
            self.assertLessEqual(want, names, "the run's processes: %r" % sorted(names))
            os.kill(p.pid, sig)
            p.wait(GONE_TIMEOUT)

            def left():
                now = harness.proc_table()
                out = [(pid, now[pid]["cmdline"]) for pid, t in tree.items()
                       if pid in now and harness.proc_starttime(pid) == t]
                out += [(pid, i["cmdline"]) for pid, i in now.items()
                        if any(x in i["cmdline"] or (i["cwd"] or "").startswith(x)
                               for x in dirs)]
                return out
            harness.wait_for(lambda: not left(), GONE_TIMEOUT, 0.1)
            self.assertEqual(left(), [], "processes of the killed run are left")
            harness.wait_for(lambda: not any(os.path.exists(x) for x in dirs), GONE_TIMEOUT)
            self.assertEqual([x for x in dirs if os.path.exists(x)], [],
                             "directories of the killed run are left")
        finally:
            for pid, t in tree.items():
                if harness.proc_starttime(pid) == t:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            if p.poll() is None:
                p.kill()
                p.wait()
            for x in dirs:
                shutil.rmtree(x, ignore_errors=True)

    def test_sigterm_stops_every_web_server_and_pyexec(self):
        self.killed(signal.SIGTERM, ("nginx", "lighttpd", "apache"))

    def test_sigint_stops_the_servers(self):
        self.killed(signal.SIGINT, ("nginx",))

    def test_sigkill_takes_the_servers_too(self):
        self.killed(signal.SIGKILL, ("nginx", "lighttpd", "apache"))


if __name__ == "__main__":
    harness.main()
