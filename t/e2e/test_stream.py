"""End-to-end: live output (README "Live output"), through nginx, lighttpd
and Apache's mod_fcgid. With `Accept: text/event-stream` or `?stream=1`
the reply is Server-Sent Events sent as the program writes: `stdout` and
`stderr` events ({"data", "encoding"}, never a UTF-8 character split
across two), then one `result` event holding exactly the JSON form's body.
Errors found before the run are the usual JSON errors; a client that goes
away stops the run."""

import base64
import http.client
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import script  # noqa: E402

try:
    import openapi_check  # noqa: E402
    CHECKER = openapi_check.Checker()
except ImportError:             # no python3-jsonschema: the events' shapes go unchecked
    CHECKER = None


class Stream:
    """A streamed reply, read as it arrives: status, headers, and each event
    (name, data as parsed JSON, seconds since the request was sent)."""

    def __init__(self, server, files, query="stream=1", headers=None, timeout=60):
        body, ctype = harness.build_multipart(
            [("files", name, data, None) for name, data in files.items()])
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
        hdrs = {"Content-Type": ctype}
        hdrs.update(headers or {})
        self.t0 = time.monotonic()
        self.conn.request("POST", "/execute" + ("?" + query if query else ""), body, hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers
        self.events = []

    def next_event(self):
        """The next event (name, data, seconds), or None at the end."""
        name, data = None, []
        while True:
            line = self.resp.readline()
            if not line:
                return None
            line = line.rstrip(b"\n")
            if line == b"":
                if name is None and not data:
                    continue
                ev = (name or "message", json.loads(b"\n".join(data)),
                      time.monotonic() - self.t0)
                self.events.append(ev)
                return ev
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"event":
                name = value.decode()
            elif field == b"data":
                data.append(value)

    def read_all(self):
        """Every event to the end, each checked against the schema the
        OpenAPI document gives it (openapi/openapi.json)."""
        while self.next_event() is not None:
            pass
        if CHECKER is not None:
            body = "".join("event: %s\ndata: %s\n\n" % (n, json.dumps(d))
                           for n, d, _ in self.events).encode()
            problems = CHECKER.check_events(body)
            assert not problems, problems
        return self.events

    def output(self, which):
        """What the events of one output hold, decoded, joined."""
        out = b""
        for name, data, _ in self.events:
            if name == which:
                self_check_event(data)
                out += (data["data"].encode() if data["encoding"] == "utf-8"
                        else base64.b64decode(data["data"]))
        return out

    def result(self):
        assert self.events and self.events[-1][0] == "result", self.events[-3:]
        return self.events[-1][1]

    def close(self):
        self.conn.close()


def self_check_event(data):
    assert set(data) == {"data", "encoding"}, data
    assert data["encoding"] in ("utf-8", "base64"), data


class LiveOutput(harness.E2ETestCase):
    """Through nginx."""

    WEB = "nginx"

    def setUp(self):
        super().setUp()
        self.s = self.server("stream-" + self.WEB, web=self.WEB,
                             options=["max_output=64K", "max_reply=2M"])

    def stream(self, src, **kw):
        st = Stream(self.s, {"main.py": script(src)}, **kw)
        self.addCleanup(st.close)
        return st

    def test_first_event_arrives_while_the_program_sleeps(self):
        st = self.stream('''
            import sys, time
            print("first", flush=True)
            time.sleep(2)
            print("second")
            ''')
        self.assertEqual(st.status, 200)
        self.assertEqual(st.headers.get("Content-Type"), "text/event-stream")
        self.assertEqual(st.headers.get("Cache-Control"), "no-store")
        self.assertIn(st.headers.get("X-Execution-Start"), ("warm", "cold"))
        self.assertRegex(st.headers.get("X-Request-Id", ""), "^[0-9a-f]{32}$")
        # print writes the text and the newline apart: events as they come
        name, data, t = st.next_event()
        self.assertEqual((name, data["encoding"]), ("stdout", "utf-8"))
        self.assertTrue("first\n".startswith(data["data"]), data)
        self.assertLess(t, 0.5, "the first event came after %.2f s" % t)
        while st.output("stdout") != b"first\n":
            name, data, t = st.next_event()
        self.assertLess(t, 0.5, "the first line was whole after %.2f s" % t)
        name, data, t = st.next_event()
        self.assertEqual(name, "stdout")
        self.assertIn(data["data"], ("second", "second\n"))
        self.assertGreater(t, 1.5)
        st.read_all()
        res = st.result()
        self.assertEqual((res["status"], res["exit_code"], res["stdout"]),
                         ("ok", 0, "first\nsecond\n"))

    def test_result_is_the_json_form(self):
        src = '''
            import sys
            print("out")
            print("err", file=sys.stderr)
            open("made.txt", "w").write("file\\n")
            sys.exit(3)
            '''
        st = self.stream(src)
        st.read_all()
        res = st.result()
        j = self.s.post_execute({"main.py": script(src)}, query="format=json").json()
        for doc in (res, j):
            for key in ("time", "max_rss_kib", "start"):
                doc.pop(key)
        self.assertEqual(res, j)
        self.assertEqual(res["status"], "error")
        self.assertEqual(res["files"][0]["name"], "made.txt")
        self.assertEqual((st.output("stdout"), st.output("stderr")), (b"out\n", b"err\n"))

    def test_accept_header_and_stream_0(self):
        st = Stream(self.s, {"main.py": script('print("hi")\n')}, query=None,
                    headers={"Accept": "text/event-stream"})
        self.addCleanup(st.close)
        st.read_all()
        self.assertEqual(st.output("stdout"), b"hi\n")
        # stream=0 wins over the header: the multipart form; and format=
        # names a form too
        r = self.s.post_execute({"main.py": script('print("hi")\n')}, query="stream=0",
                                headers={"Accept": "text/event-stream"})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"hi\n")
        r = self.s.post_execute({"main.py": script('print("hi")\n')}, query="format=json",
                                headers={"Accept": "text/event-stream"})
        self.assertEqual((r.status, r.content_type, r.json()["stdout"]),
                         (200, "application/json", "hi\n"))

    def test_multibyte_never_split_and_binary_as_base64(self):
        st = self.stream('''
            import sys, time
            out = sys.stdout.buffer
            # a character written in two pieces, a while apart
            for piece in (b"caf\\xc3", b"\\xa9 \\xe2\\x98", b"\\x83\\n"):
                out.write(piece)
                out.flush()
                time.sleep(0.3)
            out.write(b"\\x00\\xff binary\\n")
            out.flush()
            ''')
        st.read_all()
        outs = [d for n, d, _ in st.events if n == "stdout"]
        for d in outs:
            if d["encoding"] == "utf-8":
                d["data"].encode("utf-8")     # whole characters only
        texts = [d["data"] for d in outs if d["encoding"] == "utf-8"]
        self.assertEqual("".join(texts), "caf\u00e9 \u2603\n")
        self.assertEqual(outs[-1]["encoding"], "base64")
        self.assertEqual(st.output("stdout"), "caf\u00e9 \u2603\n".encode() + b"\x00\xff binary\n")

    def test_timeout_and_memory_verdicts_in_the_result(self):
        st = self.stream('''
            import time
            print("started", flush=True)
            time.sleep(10)
            ''', query="stream=1&timeout=1")
        st.read_all()
        self.assertEqual(st.output("stdout"), b"started\n")
        res = st.result()
        self.assertEqual((res["status"], res["signal"]), ("timeout", "SIGKILL"))
        st = self.stream('''
            print("allocating", flush=True)
            x = bytearray(512 << 20)
            ''', query="stream=1&memory=64")
        st.read_all()
        self.assertEqual(st.result()["status"], "memory")

    def test_output_cap(self):
        st = self.stream('''
            import sys
            for i in range(4000):
                print("%05d" % i + "x" * 58)
            ''')
        st.read_all()
        out = st.output("stdout")
        self.assertEqual(len(out), 64 << 10)
        res = st.result()
        self.assertIn("stdout", res["truncated"])
        self.assertEqual(base64.b64decode(res["stdout"]) if res["stdout_encoding"] == "base64"
                         else res["stdout"].encode(), out)

    def test_errors_before_the_run_are_json(self):
        st = Stream(self.s, {"helper.py": b"x = 1\n"})
        self.addCleanup(st.close)
        self.assertEqual(st.status, 400)
        self.assertTrue(st.headers.get("Content-Type").startswith("application/json"))
        doc = json.loads(st.resp.read())
        self.assertEqual(doc["error"], "missing_main")
        st = Stream(self.s, {"main.py": b"print(1)\n"}, query="stream=yes")
        self.addCleanup(st.close)
        self.assertEqual(st.status, 400)
        self.assertIn("stream: must be 1", json.loads(st.resp.read())["detail"])

    def test_client_that_goes_away_stops_the_run(self):
        st = self.stream('''
            import time
            print("started %s", flush=True)
            time.sleep(30)
            ''' % harness.MARKER)
        name, data, t = st.next_event()
        self.assertEqual(name, "stdout")
        st.close()
        t0 = time.monotonic()
        # tearDown checks that nothing is left: no process, no directory
        self.assertTrue(harness.wait_for(
            lambda: "the client went away; the run was stopped" in self.s.log_since_mark(), 10),
            self.s.log_since_mark())
        self.assertLess(time.monotonic() - t0, 10)


class LiveOutputLighttpd(LiveOutput):
    WEB = "lighttpd"


class LiveOutputApache(LiveOutput):
    WEB = "apache"


if __name__ == "__main__":
    harness.main()
