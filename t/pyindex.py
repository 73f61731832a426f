"""A private Python package index on loopback, for the dependency tests and
the benchmark (the tests never reach the internet: PyPI is not needed).

Stdlib only. build_wheel() writes a pure-Python wheel (a zip holding the
package files and <name>-<version>.dist-info/{METADATA,WHEEL,RECORD}, tag
py3-none-any) from a dict of files. PackageIndex serves wheels with a
ThreadingHTTPServer on 127.0.0.1 in a background thread:

  /simple/                       PEP 503 root: one link per project
  /simple/<normalized-name>/     PEP 503 project page: links to the wheels
  /extra/simple/...              a second index (for pip_extra_index_url)
  /links/                        a flat page of links (for pip_find_links)
  /empty/simple/...              an index that has nothing (404 per project)
  /stall/...                     answers nothing for stall_seconds (an index
                                 that hangs, for pip_timeout)
  /files/<wheel>                 the wheel itself

Every request is recorded (path, in order), so a test can say how often pip
came, and for what. debian_wheels() lists the real wheels Debian ships in
/usr/share/python-wheels (pip, setuptools, ...).
"""

import atexit
import base64
import glob
import hashlib
import html
import http.server
import io
import os
import re
import shutil
import tempfile
import threading
import zipfile

DEBIAN_WHEELS = os.environ.get("PYEXEC_TEST_WHEELS", "/usr/share/python-wheels")


def normalize(name):
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_escape(name):
    """The distribution part of a wheel's file name (PEP 427)."""
    return re.sub(r"[-_.]+", "_", name)


def _record_hash(data):
    d = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def build_wheel(outdir, name, version, files, requires=(), summary=None):
    """Writes <outdir>/<name>-<version>-py3-none-any.whl holding files
    ({relative path: bytes or str}) and its dist-info; requires are
    Requires-Dist lines ("probe-a>=1.0"). Returns the wheel's path."""
    dist = dist_escape(name)
    info = "%s-%s.dist-info" % (dist, version)
    meta = ["Metadata-Version: 2.1", "Name: %s" % name, "Version: %s" % version,
            "Summary: %s" % (summary or "pyexec test package %s" % name)]
    meta += ["Requires-Dist: %s" % r for r in requires]
    entries = []
    for path, data in files.items():
        entries.append((path, data.encode() if isinstance(data, str) else data))
    entries.append((info + "/METADATA", ("\n".join(meta) + "\n").encode()))
    entries.append((info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: pyexec-tests\n"
                    b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    record = "".join("%s,%s,%d\n" % (p, _record_hash(d), len(d)) for p, d in entries)
    record += info + "/RECORD,,\n"
    entries.append((info + "/RECORD", record.encode()))
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "%s-%s-py3-none-any.whl" % (dist, version))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in entries:
            zi = zipfile.ZipInfo(p, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, d)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def module_wheel(outdir, name, version, body="", requires=(), extra_files=None):
    """A wheel of one package named like the project (probe-a -> probe_a)
    whose __init__ sets VERSION and then runs body."""
    mod = dist_escape(name).lower()
    files = {mod + "/__init__.py": "VERSION = %r\n%s" % (version, body)}
    files.update(extra_files or {})
    return build_wheel(outdir, name, version, files, requires)


def heavy_wheel(outdir, name, version, modules=300, body="", functions=70, methods=40):
    """A wheel whose import costs like a data package's: a package named
    like the project with `modules` submodules, each defining `functions`
    functions, a class of `methods` methods and tables, and importing
    another (module i imports i // 2); __init__ imports them all, then runs
    body."""
    pkg = dist_escape(name).lower()
    files = {}
    for i in range(modules):
        lines = ["from . import m%03d as _other" % (i // 2) if i else "_other = None",
                 "TABLE = {%s}" % ", ".join("'k%d': %d" % (k, k * i) for k in range(40)),
                 "NAMES = tuple('n%d_' + str(k) for k in range(40))" % i]
        for f in range(functions):
            lines.append("def f%d(x, y=%d):\n    return (x * %d + y) %% 97" % (f, f, i + f))
        lines.append("class C%d:\n    \"Module %d's class.\"\n    limit = %d\n" % (i, i, i)
                     + "".join("    def m%d(self, v):\n        return v + %d\n" % (k, k)
                               for k in range(methods)))
        files["%s/m%03d.py" % (pkg, i)] = "\n".join(lines) + "\n"
    files[pkg + "/__init__.py"] = ("VERSION = %r\n" % version
                                   + "".join("from . import m%03d\n" % i for i in range(modules))
                                   + body)
    return build_wheel(outdir, name, version, files)


def debian_wheels():
    """Paths of the real wheels Debian ships (may be empty)."""
    return sorted(glob.glob(os.path.join(DEBIAN_WHEELS, "*.whl")))


def wheel_project(path):
    """Normalised project name from a wheel's file name."""
    return normalize(os.path.basename(path).split("-", 1)[0])


def on_first_use(fill, **kwargs):
    """A function that returns a suite's one index: a PackageIndex(**kwargs)
    started and given its wheels by fill(ix) at the first call (stopped
    again when fill fails), the same index at every later call."""
    made = []

    def index():
        if not made:
            ix = PackageIndex(**kwargs).start()
            try:
                fill(ix)
            except BaseException:
                ix.stop()
                raise
            made.append(ix)
        return made[0]
    return index


class PackageIndex:
    """Wheels served over HTTP on 127.0.0.1 (see the module's docstring).

    add(path, where="simple"): where is "simple" (the main index),
    "extra" (the second index), or "links" (the flat find-links page only).
    """

    def __init__(self, stall_seconds=30.0):
        self.dir = tempfile.mkdtemp(prefix="pyexec-index-")
        os.chmod(self.dir, 0o755)
        self.stall_seconds = stall_seconds
        self._wheels = {"simple": {}, "extra": {}, "links": {}}  # where -> {file: sha256}
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.requests = []
        self.httpd = None
        self.thread = None

    # content
    def add(self, path, where="simple"):
        base = os.path.basename(path)
        dest = os.path.join(self.dir, base)
        if os.path.abspath(path) != os.path.abspath(dest):
            shutil.copyfile(path, dest)
        with open(dest, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        with self._lock:
            self._wheels[where][base] = digest
        return dest

    def add_module(self, name, version, where="simple", **kw):
        """Builds module_wheel() into the index and adds it."""
        return self.add(module_wheel(self.dir, name, version, **kw), where)

    def add_debian_wheels(self, where="simple"):
        return [self.add(p, where) for p in debian_wheels()]

    # urls
    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def simple_url(self):
        return self.url + "/simple/"

    @property
    def extra_url(self):
        return self.url + "/extra/simple/"

    @property
    def links_url(self):
        return self.url + "/links/"

    @property
    def empty_url(self):
        return self.url + "/empty/simple/"

    @property
    def stall_url(self):
        return self.url + "/stall/simple/"

    # what pip asked for
    def hits(self, pred=None):
        """Request paths so far (those for which pred(path) is true)."""
        with self._lock:
            return [p for p in self.requests if pred is None or pred(p)]

    def file_hits(self, project=None):
        """Wheel downloads so far (of one project when named)."""
        return self.hits(lambda p: p.startswith("/files/") and
                         (project is None or wheel_project(p[7:]) == normalize(project)))

    # serving
    def _page(self, where, project):
        with self._lock:
            wheels = dict(self._wheels[where])
        if project is None:
            names = sorted({wheel_project(w) for w in wheels})
            links = ['<a href="%s/">%s</a>' % (n, n) for n in names]
        else:
            links = ['<a href="/files/%s#sha256=%s">%s</a>' % (html.escape(w), h, html.escape(w))
                     for w, h in sorted(wheels.items()) if wheel_project(w) == project]
            if not links:
                return None
        return ("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" "
                "content=\"1.0\"><title>index</title></head><body>\n%s\n</body></html>\n"
                % "<br>\n".join(links)).encode()

    def _route(self, path):
        """(status, content type, body) for a GET of path."""
        path = path.split("?", 1)[0].split("#", 1)[0]
        m = re.match(r"^/(simple|extra/simple|empty/simple)/(?:([^/]+)/?)?$", path)
        if m:
            where = {"simple": "simple", "extra/simple": "extra"}.get(m.group(1))
            if where is None:
                return 404, "text/plain", b"not here\n"
            body = self._page(where, normalize(m.group(2)) if m.group(2) else None)
            if body is None:
                return 404, "text/plain", b"no such project\n"
            return 200, "text/html; charset=utf-8", body
        if path in ("/links", "/links/"):
            with self._lock:
                wheels = dict(self._wheels["links"])
            links = ['<a href="/files/%s#sha256=%s">%s</a>' % (w, h, w)
                     for w, h in sorted(wheels.items())]
            return 200, "text/html; charset=utf-8", ("<html><body>\n%s\n</body></html>\n"
                                                     % "<br>\n".join(links)).encode()
        m = re.match(r"^/files/([A-Za-z0-9_.+!-]+\.whl)$", path)
        if m:
            with self._lock:
                known = any(m.group(1) in w for w in self._wheels.values())
            if known:
                with open(os.path.join(self.dir, m.group(1)), "rb") as f:
                    return 200, "application/octet-stream", f.read()
        return 404, "text/plain", b"not found\n"

    def start(self):
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with index._lock:
                    index.requests.append(self.path)
                if self.path.startswith("/stall/"):
                    # An index that hangs: the connection stays open and
                    # silent until the test ends or stall_seconds pass.
                    index._released.wait(index.stall_seconds)
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    return
                status, ctype, body = index._route(self.path)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self):
                self.do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        # Whoever started it, it stops (and its wheels go) when the suite ends.
        atexit.register(self.stop)
        return self

    def stop(self):
        self._released.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        shutil.rmtree(self.dir, ignore_errors=True)
