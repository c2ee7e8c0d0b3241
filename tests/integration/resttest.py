"""Helpers for the REST API tests (test-rest-admin.py, test-muc-rest.py,
test-muclight-rest.py): requests that keep every answer, and the check
of those answers against docs/api-openapi.json. Standard library only."""
import asyncio
import json
import os
import time

from modtest import TOP_SRCDIR


class Recorder:
    """Keeps every (method, path, status, body) of the requests made
    through it, for check_openapi()."""

    def __init__(self):
        self.seen = []

    def wrap(self, srv):
        """Records every srv.http() call from now on."""
        orig = srv.http

        def http(method, path, *args, **kwargs):
            r = orig(method, path, *args, **kwargs)
            self.seen.append((method, path, r[0], r[2]))
            return r
        srv.http = http


_DEFAULT = object()


class Api:
    """srv.http() run off the asyncio event loop (it blocks), recorded:
    `status, body = await api(method, path, body)`, with the credentials
    given here unless @auth says otherwise (None: none)."""

    def __init__(self, srv, recorder, auth):
        self.srv = srv
        self.recorder = recorder
        self.auth = auth

    async def __call__(self, method, path, body=None, auth=_DEFAULT, raw=None, headers=None):
        auth = self.auth if auth is _DEFAULT else auth
        loop = asyncio.get_event_loop()
        r = await loop.run_in_executor(
            None, lambda: self.srv.http(method, path, body, auth=auth, raw=raw, headers=headers))
        self.recorder.seen.append((method, path, r[0], r[2]))
        return r[0], r[2]


async def until(pred, timeout=15):
    """Waits (polling the condition, not sleeping a fixed time) until
    pred() holds; returns its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.02)
    return pred()


def load_spec():
    with open(os.path.join(TOP_SRCDIR, "docs", "api-openapi.json")) as f:
        return json.load(f)


def schema_errors(spec, schema, value, where):
    """What in @value does not match the OpenAPI @schema (a list)."""
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        schema = spec["components"]["schemas"][name]
    kinds = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}
    want = schema.get("type")
    if want and (not isinstance(value, kinds[want]) or
                 (want == "integer" and isinstance(value, bool))):
        return ["%s: %r is not %s" % (where, value, want)]
    if "enum" in schema and value not in schema["enum"]:
        return ["%s: %r not in %r" % (where, value, schema["enum"])]
    errs = []
    if want == "object":
        for k in schema.get("required", []):
            if k not in value:
                errs.append("%s: no %s" % (where, k))
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                errs += schema_errors(spec, sub, value[k], where + "." + k)
    if want == "array":
        for i, v in enumerate(value):
            errs += schema_errors(spec, schema.get("items", {}), v, "%s[%d]" % (where, i))
    return errs


def template_of(spec, path):
    """The documented path template that /api@path is an instance of."""
    segs = path.split("?")[0][len("/api"):].split("/")
    for tmpl in spec["paths"]:
        t = tmpl.split("/")
        if len(t) == len(segs) and all(a == b or a.startswith("{") for a, b in zip(t, segs)):
            return tmpl
    return None


def check_openapi(t, recorder, covers, undocumented_ok=False):
    """Checks every recorded answer against docs/api-openapi.json (status
    documented, body of the documented schema), then that every
    documented operation whose template passes covers(template) was
    exercised. @undocumented_ok: requests of paths the file does not
    have (405s, unknown paths) are skipped rather than reported."""
    spec = load_spec()
    problems, seen = [], set()
    for method, path, status, body in recorder.seen:
        tmpl = template_of(spec, path)
        op = spec["paths"].get(tmpl, {}).get(method.lower()) if tmpl else None
        if not op:
            if not undocumented_ok:
                problems.append("%s %s: not documented" % (method, path))
            continue
        seen.add((tmpl, method.lower()))
        resp = op["responses"].get(str(status))
        if resp is None:
            problems.append("%s %s: status %d is not documented" % (method, path, status))
            continue
        schema = resp.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            if body not in ("", None):
                problems.append("%s %s: %d has a body %r" % (method, path, status, body))
        else:
            problems += schema_errors(spec, schema, body, "%s %s %d" % (method, path, status))
    t.ok(not problems, "every one of %d responses matches docs/api-openapi.json" %
         len(recorder.seen))
    for p in problems[:10]:
        t.diag(p)
    ops = {(tmpl, m) for tmpl, item in spec["paths"].items() for m in item
           if m != "parameters" and covers(tmpl)}
    t.ok(ops <= seen, "every documented operation was exercised (missing: %s)" %
         sorted(ops - seen))
