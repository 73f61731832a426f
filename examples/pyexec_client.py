#!/usr/bin/env python3
"""A client for pyexec (POST /execute), with the Python standard library only.

As a module:

    from pyexec_client import run, PyexecError

    r = run("http://127.0.0.1:8000/execute",
            {"main.py": b"print('hello')\\n", "helper.py": "path/to/helper.py"},
            dependencies=["requests"], timeout=5, python="pypy3",
            args=["--rows", "10"], env={"MODE": "fast"})
    print(r.status, r.exit_code, r.stdout.decode())
    for name, (content_type, data) in r.files.items():
        ...

    # live output: on_output(name, data) is called as the program writes
    r = run(url, {"main.py": b"print('hello')\\n"},
            on_output=lambda name, data: print(name, data))

run() returns a Result whenever the program ran, whatever it did (status
"ok", "error", "timeout", "memory", "killed"), and for a 424 (status
"dependency_error", pip's output in stderr). Any other error reply (4xx,
5xx) raises PyexecError with the server's `detail` and `error`; a server
that cannot be reached raises PyexecError with status None.

As a command:

    python3 pyexec_client.py [--url URL] [--token T] [--deps a,b] [--timeout S]
                             [--memory MiB] [--python NAME] [--stdin FILE] [--arg A ...]
                             [--env NAME=VALUE ...] [--json | --stream] [--out DIR]
                             main.py [helper.py ...]

prints the program's stdout and stderr, saves its generated files under
--out (default ./pyexec-out), and exits with the program's exit status; see
--help for the exit statuses it uses otherwise (124 on a timeout, as
timeout(1) does).
"""

import argparse
import base64
import email.parser
import email.policy
import email.utils
import json
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

DEFAULT_URL = "http://127.0.0.1:8000/execute"

# Exit statuses of the command besides the program's own.
EXIT_TIMEOUT = 124      # the run hit its time limit (as timeout(1))
EXIT_FAILED = 125       # pyexec did not run the program: an error reply,
                        # a failed dependency install, no connection


class PyexecError(Exception):
    """An error reply (or no reply at all).

    status: the HTTP status, or None when the server could not be reached;
    detail: the server's sentence (what the seed's clients read);
    error: its stable code ("missing_main", "unauthorized", ...), or None when
    the reply was not pyexec's JSON (a page from nginx, say);
    request_id: X-Request-Id, for the server's log."""

    def __init__(self, status, detail, error=None, request_id=None, headers=None):
        self.status = status
        self.detail = detail
        self.error = error
        self.request_id = request_id
        self.headers = headers or {}
        where = "HTTP %s" % status if status is not None else "no reply"
        super().__init__("%s%s: %s" % (where, " (%s)" % error if error else "", detail))


class Result:
    """What a run gave.

    status: "ok", "error", "timeout", "memory", "killed" or "dependency_error";
    exit_code: int or None (None when a signal ended it, or it never ran);
    signal: e.g. "SIGKILL", or None;
    stdout, stderr: bytes, exactly as the program wrote them (both forms);
    files: {name: (content_type, bytes)} of the generated files, in order;
    a name that is not UTF-8 holds its bytes as surrogates (surrogateescape,
    as os.fsdecode), so saving it writes the name the program made;
    truncated: what hit a cap, a subset of ["stdout", "stderr", "files",
    "reply"] ("reply": files left out to keep the reply under max_reply);
    dependencies: "none", "cached" or "installed" (None if not said);
    request_id: X-Request-Id;
    times: {"wall": s, "cpu": s, "max_rss_kib": KiB} (values None when unknown);
    http_status: 200, or 424 for a failed dependency install;
    form: "multipart" or "json", the form the reply came in."""

    def __init__(self, status, exit_code, signal, stdout, stderr, files, truncated,
                 dependencies, request_id, times, http_status, form):
        self.status = status
        self.exit_code = exit_code
        self.signal = signal
        self.stdout = stdout
        self.stderr = stderr
        self.files = files
        self.truncated = truncated
        self.dependencies = dependencies
        self.request_id = request_id
        self.times = times
        self.http_status = http_status
        self.form = form

    @property
    def ok(self):
        return self.status == "ok"

    def __repr__(self):
        return ("Result(status=%r, exit_code=%r, signal=%r, stdout=%d bytes, stderr=%d bytes, "
                "files=%r, truncated=%r)" % (self.status, self.exit_code, self.signal,
                                             len(self.stdout), len(self.stderr),
                                             list(self.files), self.truncated))


# ---------------------------------------------------------------- request

def execute_url(url):
    """url as given when its last path segment is "execute" (pyexec routes by
    it, so any prefix works), else with "/execute" appended."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path
    if path.rstrip("/").rsplit("/", 1)[-1] != "execute":
        path = path.rstrip("/") + "/execute"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _quoted(value):
    """value (str) as a quoted-string for Content-Disposition: '"' and '\\'
    escaped with a backslash, as pyexec's parser and the seed's read them.
    CR, LF and NUL cannot be sent (and are no valid names anyway)."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError("a file name cannot hold CR, LF or NUL: %r" % value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read_input(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (str, os.PathLike)):
        with open(value, "rb") as f:
            return f.read()
    if hasattr(value, "read"):
        data = value.read()
        return data.encode("utf-8") if isinstance(data, str) else data
    raise TypeError("expected bytes, a path or a file object, not %s" % type(value).__name__)


def encode_multipart(files, stdin=None, args=None, env=None):
    """(body, content_type) of a multipart/form-data request: one part
    "files" per file (the name the seed's clients use), then "stdin",
    "args" and "env" (JSON) when given."""
    fields = []
    for name, value in files.items():
        if not isinstance(name, str):
            raise TypeError("file names are str, not %s" % type(name).__name__)
        fields.append(("files", name, _read_input(value)))
    if stdin is not None:
        fields.append(("stdin", None, _read_input(stdin)))
    if args is not None:
        if isinstance(args, str) or not all(isinstance(a, str) for a in args):
            raise TypeError("args is a list of str")
        fields.append(("args", None, json.dumps(list(args)).encode("utf-8")))
    if env is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise TypeError("env maps str to str")
        fields.append(("env", None, json.dumps(dict(env)).encode("utf-8")))
    while True:
        boundary = "pyexec-" + uuid.uuid4().hex
        b = boundary.encode("ascii")
        if not any(b in data for _, _, data in fields):
            break
    out = []
    for field, filename, data in fields:
        head = "Content-Disposition: form-data; name=%s" % _quoted(field)
        if filename is not None:
            head += "; filename=%s\r\nContent-Type: application/octet-stream" % _quoted(filename)
        out += [b"--", b, b"\r\n", head.encode("utf-8"), b"\r\n\r\n", data, b"\r\n"]
    out += [b"--", b, b"--\r\n"]
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def run(url, files, stdin=None, dependencies=(), timeout=None, memory=None, token=None,
        json_mode=False, http_timeout=600, args=None, env=None, on_output=None,
        python=None):
    """POSTs files to pyexec and returns a Result.

    url: the execute URL (or the service's base URL: "/execute" is added);
    files: {name in the work directory: bytes, a path or a file object};
    "main.py" is the one run; names may have directories ("pkg/util.py");
    stdin: bytes, a path or a file object for the program's standard input;
    args: the program's arguments (sys.argv[1:]), a list of str;
    env: variables added to the program's environment, {name: value};
    dependencies: pip requirements, a list or a comma-separated str;
    timeout: wall-clock seconds; memory: MiB; token: the bearer token;
    python: the interpreter, by its name on the server (its /healthz
    lists them as "pythons"); None: the server's default;
    json_mode: ask for the JSON form instead of multipart (same Result);
    on_output: live output: called as on_output("stdout" or "stderr", bytes)
    as the program writes (the reply is Server-Sent Events; same Result);
    http_timeout: seconds this call waits for the server's reply (a first
    install of dependencies happens before the reply starts).

    Raises PyexecError for an error reply other than 424, and when the
    server cannot be reached."""
    query = []
    if isinstance(dependencies, str):
        dependencies = dependencies.split(",")
    dependencies = [d.strip() for d in dependencies if d and d.strip()]
    if dependencies:
        query.append(("dependencies", ",".join(dependencies)))
    if timeout is not None:
        query.append(("timeout", str(timeout)))
    if memory is not None:
        query.append(("memory", str(memory)))
    if python is not None:
        query.append(("python", python))
    if on_output is not None:
        query.append(("stream", "1"))
    elif json_mode:
        query.append(("format", "json"))
    target = execute_url(url)
    if query:
        target += "?" + urllib.parse.urlencode(query, safe=",", quote_via=urllib.parse.quote)
    body, ctype = encode_multipart(files, stdin, args, env)
    headers = {"Content-Type": ctype, "User-Agent": "pyexec-client/1"}
    # pyexec answers JSON when Accept names application/json at all
    headers["Accept"] = ("text/event-stream" if on_output is not None
                         else "application/json" if json_mode else "multipart/form-data")
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(target, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=http_timeout) as resp:
            if resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                return _result_events(resp, on_output)
            return _result(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        data = e.read()
        if e.code == 424 and e.headers.get("X-Execution-Status") == "dependency_error":
            return _result(e.code, e.headers, data)
        raise _error(e.code, e.headers, data) from None
    except urllib.error.URLError as e:
        raise PyexecError(None, "cannot reach %s: %s" % (target, e.reason)) from None
    except OSError as e:        # a timeout or a connection cut mid-reply
        raise PyexecError(None, "no complete reply from %s: %s" % (target, e)) from None


# ---------------------------------------------------------------- reply

def _error(status, headers, data):
    rid = headers.get("X-Request-Id")
    try:
        doc = json.loads(data.decode("utf-8"))
        detail = doc["detail"]
        if not isinstance(detail, str):     # FastAPI's 422 shape, should one appear
            detail = json.dumps(detail)
        return PyexecError(status, detail, doc.get("error"), rid, headers)
    except (ValueError, KeyError, TypeError, AttributeError):
        text = data.decode("utf-8", "replace").strip()
        return PyexecError(status, text[:500] or "(empty reply)", None, rid, headers)


def _float(v):
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def _int(v):
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def _result(http_status, headers, data):
    ctype = headers.get("Content-Type", "")
    if ctype.startswith("application/json"):
        return _result_json(http_status, headers, data)
    if ctype.startswith("multipart/"):
        return _result_multipart(http_status, headers, data)
    raise PyexecError(http_status, "unexpected reply of type %r" % ctype, None,
                      headers.get("X-Request-Id"), headers)


def _decoded(text, encoding):
    """The bytes of a JSON string sent as "utf-8" text or as "base64"."""
    text = text or ""
    return base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")


def _result_json(http_status, headers, data):
    doc = json.loads(data.decode("utf-8"))
    files = {}
    for f in doc.get("files") or []:
        raw = _decoded(f.get("content"), f.get("encoding"))
        # a name that is not UTF-8 is "name" with U+FFFD, and whole in "name_b64"
        name = (base64.b64decode(f["name_b64"]).decode("utf-8", "surrogateescape")
                if "name_b64" in f else f["name"])
        files[name] = (f.get("content_type"), raw)
    t = doc.get("time") or {}
    return Result(status=doc.get("status"), exit_code=doc.get("exit_code"),
                  signal=doc.get("signal"),
                  stdout=_decoded(doc.get("stdout"), doc.get("stdout_encoding")),
                  stderr=_decoded(doc.get("stderr"), doc.get("stderr_encoding")),
                  files=files, truncated=list(doc.get("truncated") or []),
                  dependencies=doc.get("dependencies"),
                  request_id=headers.get("X-Request-Id"),
                  times={"wall": t.get("wall"), "cpu": t.get("cpu"),
                         "max_rss_kib": doc.get("max_rss_kib")},
                  http_status=http_status, form="json")


def _result_events(resp, on_output):
    """Reads Server-Sent Events to the end: stdout and stderr events go to
    on_output as they come; the result event is the JSON form's body."""
    name, data = None, []
    for line in resp:
        line = line.rstrip(b"\r\n")
        if line:
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"event":
                name = value.decode("utf-8", "replace")
            elif field == b"data":
                data.append(value)
            continue
        if data:
            body = b"\n".join(data)
            if name in ("stdout", "stderr"):
                doc = json.loads(body.decode("utf-8"))
                on_output(name, _decoded(doc.get("data"), doc.get("encoding")))
            elif name == "result":
                return _result_json(200, resp.headers, body)
            elif name == "error":
                raise _error(500, resp.headers, body)
        name, data = None, []
    raise PyexecError(None, "the event stream ended without a result", None,
                      resp.headers.get("X-Request-Id"), resp.headers)


def _file_name(s):
    """A filename parameter as pyexec writes it (the email parser read it as
    ASCII with surrogateescape): '%XX' decoded (pyexec writes '%', '"', '\\'
    and control bytes so, and nothing else), then the bytes read as UTF-8,
    with surrogates for bytes that are not."""
    try:
        raw = s.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        raw = s.encode("utf-8", "surrogateescape")
    return urllib.parse.unquote_to_bytes(raw).decode("utf-8", "surrogateescape")


def _result_multipart(http_status, headers, data):
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + headers["Content-Type"].encode("latin-1") + b"\r\n\r\n" + data)
    if not msg.is_multipart():
        raise PyexecError(http_status, "a multipart reply that does not parse")
    out = {"stdout": b"", "stderr": b""}
    files = {}
    for part in msg.iter_parts():
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            name = _file_name(filename)
            ct = part.get("Content-Type")
            files[name] = (str(ct) if ct is not None else None, payload)
        else:
            name = part.get_param("name", header="content-disposition")
            if name is not None:
                name = email.utils.collapse_rfc2231_value(name)
            if name in out:
                out[name] = payload
    h = headers
    truncated = [t for t in (h.get("X-Truncated") or "").split(",") if t]
    return Result(status=h.get("X-Execution-Status"), exit_code=_int(h.get("X-Exit-Code")),
                  signal=h.get("X-Signal"), stdout=out["stdout"], stderr=out["stderr"],
                  files=files, truncated=truncated, dependencies=h.get("X-Dependencies"),
                  request_id=h.get("X-Request-Id"),
                  times={"wall": _float(h.get("X-Execution-Time")),
                         "cpu": _float(h.get("X-CPU-Time")),
                         "max_rss_kib": _int(h.get("X-Max-RSS"))},
                  http_status=http_status, form="multipart")


# ---------------------------------------------------------------- command

def exit_status(result):
    """The command's exit status for a Result, as a shell reports a child's:
    its exit code; 124 for a timeout (as timeout(1)); 128 + N when signal N
    ended it; 125 when it never ran (a failed dependency install)."""
    if result.status == "timeout":
        return EXIT_TIMEOUT
    if result.status == "dependency_error":
        return EXIT_FAILED
    if result.exit_code is not None:
        return result.exit_code
    if result.signal:
        try:
            return 128 + int(signal.Signals[result.signal])
        except KeyError:
            return 128 + 9
    return EXIT_FAILED


def upload_name(path, first):
    """The name a local file is sent as: the first one is main.py; a relative
    path without ".." keeps its directories (pkg/util.py); others their
    base name."""
    if first:
        return "main.py"
    norm = os.path.normpath(path)
    if os.path.isabs(path) or norm == ".." or norm.startswith(".." + os.sep):
        return os.path.basename(norm)
    return norm.replace(os.sep, "/")


def safe_join(out_dir, name):
    """out_dir/name, or None when name would leave out_dir (pyexec sends
    only relative names without "..", but a client need not trust that)."""
    comps = name.split("/")
    if name.startswith("/") or any(c in ("", ".", "..") for c in comps) or "\0" in name:
        return None
    return os.path.join(out_dir, *comps)


def save_files(files, out_dir):
    """Writes {name: (type, bytes)} under out_dir; returns the paths written."""
    written = []
    for name, (_ctype, data) in files.items():
        path = safe_join(out_dir, name)
        if path is None:
            print("pyexec-client: not saving %r: not a plain relative name" % name,
                  file=sys.stderr)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        written.append(path)
    return written


EPILOG = """\
exit status: the program's own exit status; 124 when it hit its time limit
(as timeout(1)); 128+N when signal N ended it (137 = SIGKILL, e.g. out of
memory); 125 when pyexec did not run it (an error reply such as 400 or 401,
a failed dependency install, or no connection); 2 for a bad command line.

The first file is sent as main.py whatever its local name; the others keep
their relative path (pkg/util.py), or their base name when the path is
absolute or goes through "..". The URL and the token may also come from
$PYEXEC_URL and $PYEXEC_TOKEN (a token on the command line is visible to
other local users in ps).
"""


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="pyexec_client.py", description="Run main.py (and helper files) on a pyexec server.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("PYEXEC_URL", DEFAULT_URL),
                   help="the execute URL (default $PYEXEC_URL or %(default)s)")
    p.add_argument("--token", default=os.environ.get("PYEXEC_TOKEN"),
                   help="bearer token (default $PYEXEC_TOKEN)")
    p.add_argument("--deps", default="", metavar="A,B",
                   help="pip requirements, comma-separated (requests,numpy==1.26.*)")
    p.add_argument("--timeout", type=float, metavar="S", help="wall-clock seconds for the run")
    p.add_argument("--memory", type=int, metavar="MIB", help="memory for the run, MiB")
    p.add_argument("--python", metavar="NAME",
                   help="the interpreter, by its name on the server (default: its default)")
    p.add_argument("--stdin", metavar="FILE", help="the program's standard input ('-': ours)")
    p.add_argument("--arg", action="append", metavar="A",
                   help="an argument of the program (sys.argv[1:]), repeatable; "
                        "--arg=-x for one that starts with -")
    p.add_argument("--env", action="append", metavar="NAME=VALUE",
                   help="a variable of the program's environment, repeatable")
    p.add_argument("--json", action="store_true", help="ask for the JSON form of the reply")
    p.add_argument("--stream", action="store_true",
                   help="print the output as the program writes it (live output)")
    p.add_argument("--out", default="pyexec-out", metavar="DIR",
                   help="where generated files are saved (default ./%(default)s)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no pyexec-client: lines on stderr, only the program's output")
    p.add_argument("main", help="the script to run (sent as main.py)")
    p.add_argument("helpers", nargs="*", help="other files to upload")
    a = p.parse_args(argv)

    def note(msg):
        if not a.quiet:
            print("pyexec-client: " + msg, file=sys.stderr)

    def live(name, data):
        out = sys.stdout if name == "stdout" else sys.stderr
        out.buffer.write(data)
        out.flush()

    env = None
    if a.env is not None:
        env = {}
        for item in a.env:
            name, eq, value = item.partition("=")
            if not eq:
                p.error("--env %r: give NAME=VALUE" % item)
            env[name] = value
    files = {}
    try:
        for i, path in enumerate([a.main] + a.helpers):
            name = upload_name(path, i == 0)
            if name in files:
                p.error("two files would be sent as %r" % name)
            with open(path, "rb") as f:
                files[name] = f.read()
        stdin = None
        if a.stdin == "-":
            stdin = sys.stdin.buffer.read()
        elif a.stdin is not None:
            with open(a.stdin, "rb") as f:
                stdin = f.read()
    except OSError as e:
        print("pyexec-client: %s" % e, file=sys.stderr)
        return 2
    try:
        r = run(a.url, files, stdin=stdin, dependencies=a.deps, timeout=a.timeout,
                memory=a.memory, token=a.token, json_mode=a.json, args=a.arg, env=env,
                on_output=live if a.stream else None, python=a.python)
    except (PyexecError, ValueError) as e:
        print("pyexec-client: %s" % e, file=sys.stderr)
        return EXIT_FAILED
    if not a.stream:
        live("stdout", r.stdout)
        live("stderr", r.stderr)
    if r.files:
        try:
            for path in save_files(r.files, a.out):
                note("saved %s" % path)
        except OSError as e:
            print("pyexec-client: %s" % e, file=sys.stderr)
            return EXIT_FAILED
    if r.truncated:
        note("truncated by the server's limits: %s" % ", ".join(r.truncated))
    if r.status not in ("ok", "error"):
        note("status %s%s" % (r.status, " (%s)" % r.signal if r.signal else ""))
    return exit_status(r)


if __name__ == "__main__":
    sys.exit(main())
