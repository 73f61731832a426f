"""Checks replies against pyexec's OpenAPI document (openapi/openapi.json),
as a client that trusts the document would read them: the status must be
one the operation lists, each header it describes must match its schema
(and X-Request-Id be there), the media type must be one it lists, and a
JSON body must match its schema; a multipart result must start with
stdout and stderr; an event stream's events must match theirs. Replies
without X-Request-Id are the web server's own (nginx's 413 page), not
pyexec's, and are not checked. Needs python3-jsonschema."""

import json
import os

from jsonschema import Draft202012Validator, RefResolver

DOC_PATH = os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "openapi", "openapi.json")


class Checker:
    def __init__(self, path=DOC_PATH):
        with open(path, "rb") as f:
            self.raw = f.read()
        self.doc = json.loads(self.raw)
        self.resolver = RefResolver.from_schema(self.doc)
        self.checked = 0

    def deref(self, node):
        while isinstance(node, dict) and "$ref" in node:
            node = self.resolver.resolve(node["$ref"])[1]
        return node

    def errors(self, schema, value):
        v = Draft202012Validator(schema, resolver=self.resolver)
        return ["%s at %s" % (e.message, "/".join(map(str, e.absolute_path)) or "the top")
                for e in v.iter_errors(value)]

    def operation(self, method, path):
        """(the path item, the operation or None) for a request."""
        route = "/" + path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        item = self.doc["paths"].get(route)
        if item is None:
            return None, None
        return item, item.get("get" if method == "HEAD" else method.lower())

    def check(self, method, path, reply):
        """The ways reply departs from the document (empty: none)."""
        h = reply.headers
        if h.get("X-Request-Id") is None:
            return []
        item, op = self.operation(method, path)
        if item is None:
            # no route: pyexec's 404, an Error
            if reply.status != 404:
                return ["an unknown route answered %d, not 404" % reply.status]
            return self.errors({"$ref": "#/components/schemas/Error"}, reply.json())
        if op is None:
            # a method the route has not: 405, as every operation of it says
            ops = [o for k, o in item.items() if isinstance(o, dict) and "responses" in o]
            op = ops[0]
        self.checked += 1
        resp = op["responses"].get(str(reply.status))
        if resp is None:
            return ["status %d is not one %s %s lists" % (reply.status, method, path)]
        resp = self.deref(resp)
        out = []
        for name, spec in resp.get("headers", {}).items():
            spec = self.deref(spec)
            value = h.get(name)
            if value is None:
                if name == "X-Request-Id":
                    out.append("no X-Request-Id")
                continue
            out += ["header %s: %s" % (name, e) for e in self.errors(spec["schema"], value)]
        media = reply.content_type.split(";")[0].strip()
        content = resp.get("content", {})
        if media not in content:
            return out + ["media type %r is not one of %r" % (media, sorted(content))]
        if method == "HEAD":
            return out
        schema = content[media]["schema"]
        if media == "application/json":
            try:
                body = json.loads(reply.body)
            except ValueError as e:
                return out + ["a JSON body that does not parse: %s" % e]
            out += self.errors(schema, body)
        elif media == "multipart/form-data":
            first = [(p.name, p.filename) for p in reply.parts[:2]]
            if first != [("stdout", None), ("stderr", None)]:
                out.append("the multipart body starts with %r, not stdout and stderr" % first)
        elif media == "text/event-stream":
            out += self.check_events(reply.body)
        return out

    def check_events(self, body):
        out, names = [], []
        for block in body.decode("utf-8").split("\n\n"):
            lines = [x for x in block.split("\n") if x and not x.startswith(":")]
            if not lines:
                continue
            name = [x[6:].strip() for x in lines if x.startswith("event:")]
            data = "\n".join(x[5:].lstrip(" ") for x in lines if x.startswith("data:"))
            name = name[0] if name else "message"
            names.append(name)
            schema = {"stdout": "OutputEvent", "stderr": "OutputEvent", "result": "Result",
                      "error": "Error"}.get(name)
            if schema is None:
                out.append("an event %r the document does not describe" % name)
                continue
            out += ["event %s: %s" % (name, e) for e in
                    self.errors({"$ref": "#/components/schemas/" + schema}, json.loads(data))]
        if not names or names[-1] not in ("result", "error"):
            out.append("the stream does not end with a result or an error event: %r" % names[-3:])
        return out
