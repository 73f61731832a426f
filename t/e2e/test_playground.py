"""End-to-end: the playground (playground/), served at / by the site file
conf/nginx/pyexec.conf in front of a real pyexec, and used from headless
Chromium.

The harness points the site file's playground root at the repository's
playground/. Without a browser: the page and its two assets are served with
their types and headers, every URL they name is local, and pyexec still
answers everything else. In the browser (t/playground/test_playground.mjs,
node + playwright-core driving Debian's chromium): a script with a second
file prints and saves a PNG; its stdout, status, exit code, times, the image
(rendered, at its width) and a download link are shown; a failing run shows
exit code 3 and its stderr; a refused request shows pyexec's detail; a
360 px window needs no horizontal scrolling. A screenshot is left in the
build directory, t/playground-screenshot.png.

The browser test is skipped, with the reason, when chromium, node or
playwright-core is missing: `apt-get install chromium` (and nodejs >= 20),
then `npm ci --prefix t/playground`. $CHROMIUM, $NODE and $PLAYWRIGHT_CORE
(the package's directory) override where they are looked for.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

PLAYGROUND = harness.PLAYGROUND_DIR
NODE_TEST = os.path.join(harness.TOP_SRCDIR, "t", "playground", "test_playground.mjs")
PACKAGE_JSON = os.path.join(harness.TOP_SRCDIR, "t", "playground", "package.json")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PYPY = "/usr/bin/pypy3"
PYTHON = os.environ.get("TEST_PYTHON", "/usr/bin/python3")
NODE_TIMEOUT = 300     # seconds for the whole browser test
ASSETS = {"/": ("index.html", "text/html"),
          "/playground.js": ("playground.js", "text/javascript"),
          "/playground.css": ("playground.css", "text/css")}


def build_dir():
    """Where test artifacts go: the build directory (make check's
    $TOP_BUILDDIR, or the one holding the pyexec-fcgi under test)."""
    if os.environ.get("TOP_BUILDDIR"):
        return os.environ["TOP_BUILDDIR"]
    return os.path.dirname(os.path.dirname(os.path.abspath(harness.pyexec_path())))


def playwright_core():
    """The playwright-core package directory, or None."""
    cands = [os.environ.get("PLAYWRIGHT_CORE"),
             os.path.join(harness.TOP_SRCDIR, "t", "playground", "node_modules", "playwright-core"),
             os.path.join(build_dir(), "node", "node_modules", "playwright-core"),
             os.path.join(harness.TOP_SRCDIR, "_build", "node", "node_modules", "playwright-core")]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "package.json")):
            return os.path.abspath(c)
    return None


def browser_missing():
    """Why the browser test cannot run here, or None."""
    why = []
    if not os.access(CHROMIUM, os.X_OK):
        why.append("no chromium at %s (Debian: apt-get install chromium)" % CHROMIUM)
    if not shutil.which(os.environ.get("NODE", "node")):
        why.append("no node (Debian: nodejs, version 20 or later)")
    if playwright_core() is None:
        why.append("no playwright-core (npm ci --prefix t/playground)")
    return "; ".join(why) or None


class Playground(harness.E2ETestCase):

    def setUp(self):
        super().setUp()
        # with PyPy, two interpreters: the page offers a choice
        self.pythons = ["python3", "pypy3"] if os.access(PYPY, os.X_OK) else []
        options = (["pythons=python3=%s,pypy3=%s" % (PYTHON, PYPY)]
                   if self.pythons else [])
        self.s = self.server("playground" if self.pythons else "main", workers=2,
                             options=options)
        if self.s.playground is None:
            self.skipTest("the site in front serves no playground (%s, %s)"
                          % (self.s.web, self.s.site_source))

    def test_page_and_assets_are_served(self):
        for path, (name, ctype) in ASSETS.items():
            r = self.s.request("GET", path)
            self.assertStatus(r, 200)
            with open(os.path.join(PLAYGROUND, name), "rb") as f:
                self.assertEqual(r.body, f.read(), path)
            self.assertEqual(r.content_type.split(";")[0], ctype, r.describe(200))
            self.assertIn("charset=utf-8", r.content_type, r.describe(200))
            self.assertEqual(r.headers.get("X-Content-Type-Options"), "nosniff", r.describe(200))
        csp = self.s.request("GET", "/").headers.get("Content-Security-Policy", "")
        self.assertIn("default-src 'self'", csp)
        # everything else is still pyexec's
        r = self.s.request("GET", "/healthz")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["status"], "ok")
        r = self.s.request("GET", "/index.html")
        self.assertError(r, 404)

    def test_in_chromium(self):
        why = browser_missing()
        if why:
            self.skipTest(why)
        shot = os.path.join(build_dir(), "t", "playground-screenshot.png")
        os.makedirs(os.path.dirname(shot), exist_ok=True)
        if os.path.exists(shot):
            os.unlink(shot)
        scratch = tempfile.mkdtemp(prefix="pyexec-playground-")
        self.addCleanup(shutil.rmtree, scratch, True)
        env = dict(os.environ, PLAYWRIGHT_CORE=playwright_core(), CHROMIUM=CHROMIUM,
                   HOME=scratch, TMPDIR=scratch,
                   PYEXEC_PLAYGROUND_PYTHONS=",".join(self.pythons))
        if not self.pythons:
            print("# no %s: the choice of interpreters is not tried (Debian's pypy3)" % PYPY)
        argv = [os.environ.get("NODE", "node"), NODE_TEST, self.s.url(""), shot]
        t0 = time.monotonic()
        p = subprocess.Popen(argv, cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            out, _ = p.communicate(timeout=NODE_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
            self.fail("the browser test took over %d s:\n%s"
                      % (NODE_TIMEOUT, out.decode("utf-8", "replace")))
        finally:
            try:
                os.killpg(p.pid, signal.SIGKILL)    # a browser left behind
            except ProcessLookupError:
                pass
        text = out.decode("utf-8", "replace")
        with open(os.path.join(playwright_core(), "package.json")) as f:
            version = json.load(f)["version"]
        print("# playwright-core %s, %s, %.1f s" % (version, CHROMIUM, time.monotonic() - t0))
        for line in text.splitlines():
            print("#   " + line)
        self.assertEqual(p.returncode, 0, "node %s:\n%s" % (" ".join(argv), text))
        self.assertNotIn("not ok", text)
        self.assertTrue(os.path.getsize(shot) > 0, shot)


class PageFiles(harness.E2ETestCase):

    def test_page_names_only_local_urls(self):
        page = open(os.path.join(PLAYGROUND, "index.html")).read()
        refs = re.findall(r'(?:src|href)="([^"]*)"', page)
        # openapi.json: relative, pyexec's own route, under any prefix
        self.assertEqual(sorted(refs), ["data:,", "openapi.json", "playground.css",
                                        "playground.js"])
        for name in os.listdir(PLAYGROUND):
            text = open(os.path.join(PLAYGROUND, name)).read()
            self.assertNotRegex(text, r"(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}",
                                "%s names an external URL" % name)
        js = open(os.path.join(PLAYGROUND, "playground.js")).read()
        self.assertIn("fetch('execute?'", js)     # relative: works under any prefix


if __name__ == "__main__":
    harness.main()
