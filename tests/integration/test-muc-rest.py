#!/usr/bin/python3
"""mod_muc's admin REST endpoints over real HTTP (MongooseIM's
/api/mucs/{domain}/{name}/...), with the effects checked over XMPP by
slixmpp clients: a message sent by REST reaches every occupant exactly
once, a mediated invitation sent by REST arrives, a kicked occupant gets
307. Bad input, unknown domains and rooms, and wrong credentials are
refused and change nothing. Every response is checked against
docs/api-openapi.json. Prints TAP; ignores --tap."""
import asyncio
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import TOP_SRCDIR, Server, Tap  # noqa: E402

import slixmpp  # noqa: E402

ROOM = slixmpp.JID("team@conference.localhost")
A = ("admin", "adm1n-pw")
PW = "secret"
RECORDED = []


class Client(slixmpp.ClientXMPP):
    def __init__(self, name):
        super().__init__("%s@localhost/sx" % name, PW)
        for p in ("xep_0030", "xep_0045", "xep_0004"):
            self.register_plugin(p)
        self.started = asyncio.Event()
        self.groupchat = []
        self.invites = []
        self.errors = []
        self.kicked = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("groupchat_message", self.on_groupchat)
        self.add_event_handler("groupchat_invite", self.invites.append)
        self.add_event_handler("message_error", self.errors.append)
        self.add_event_handler("muc::%s::presence" % ROOM, self.on_room_presence)

    async def on_start(self, _):
        self.send_presence()
        self.started.set()

    def on_groupchat(self, msg):
        if msg["body"] and msg.get_plugin("delay", check=True) is None:
            self.groupchat.append((msg["from"].resource, msg["body"]))

    def on_room_presence(self, pres):
        codes = pres["muc"]["status_codes"]
        if pres["type"] == "unavailable" and 307 in codes and 110 in codes:
            self.kicked.set()


async def until(pred, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.02)
    return pred()


class Api:
    """Blocking http.client requests, run off the event loop."""

    def __init__(self, srv):
        self.srv = srv

    async def __call__(self, method, path, body=None, auth=A, raw=None, headers=None):
        loop = asyncio.get_event_loop()
        r = await loop.run_in_executor(
            None, lambda: self.srv.http(method, path, body, auth=auth, raw=raw, headers=headers))
        RECORDED.append((method, path, r[0], r[2]))
        return r[0], r[2]


async def scenario(t, srv):
    api = Api(srv)
    ann, bob, cid = Client("ann"), Client("bob"), Client("cid")
    cs = (ann, bob, cid)
    for c in cs:
        c.connect(("127.0.0.1", srv.port), force_starttls=False, disable_starttls=True)
    await asyncio.wait_for(asyncio.gather(*(c.started.wait() for c in cs)), 30)
    pres, _, _, _ = await ann["xep_0045"].join_muc_wait(ROOM, "Ann", timeout=10)
    t.ok(201 in pres["muc"]["status_codes"], "ann created the room over XMPP (201)")
    form = await ann["xep_0045"].get_room_config(ROOM)
    await ann["xep_0045"].set_room_config(ROOM, form)
    await bob["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=10)
    msgs = "/api/mucs/localhost/team/messages"

    # ---- credentials: nothing changes without them
    for auth, what in ((None, "no credentials"), (("admin", "wrong"), "a wrong password"),
                       (("ann@localhost", PW), "a user's credentials")):
        status, _ = await api("POST", msgs, {"from": "ann@localhost/sx", "body": "intruder"},
                              auth=auth)
        t.ok(status == 401, "POST messages with %s: 401 (got %d)" % (what, status))

    # ---- a message, exactly once to every occupant
    status, _ = await api("POST", msgs, {"from": "ann@localhost/sx", "body": "hello by rest"})
    t.ok(status == 204, "POST /mucs/localhost/team/messages: 204 (got %d)" % status)
    status, _ = await api("POST", "/api/mucs/conference.localhost/team/messages",
                          {"from": "ann@localhost/sx", "body": "marker"})
    t.ok(status == 204, "the service's own domain names it too: 204")
    t.ok(await until(lambda: ("Ann", "marker") in bob.groupchat and
                     ("Ann", "marker") in ann.groupchat), "both occupants got the messages")
    for c in (ann, bob):
        t.ok(c.groupchat.count(("Ann", "hello by rest")) == 1,
             "%s got the REST message once, from the room as Ann" % c.boundjid.user)
    t.ok(not any(b == "intruder" for c in (ann, bob) for _, b in c.groupchat),
         "the refused requests sent nothing")

    # ---- the room's own checks apply: cid is no occupant
    status, _ = await api("POST", msgs, {"from": "cid@localhost/sx", "body": "outsider"})
    t.ok(status == 204, "a message of a non-occupant is handed to the room: 204")
    t.ok(await until(lambda: cid.errors), "the room refused it to cid's client, as over XMPP")

    # ---- an invitation through the room
    status, _ = await api("POST", "/api/mucs/localhost/team/participants",
                          {"sender": "ann@localhost/sx", "recipient": "cid@localhost",
                           "reason": "come along"})
    t.ok(status == 204, "POST /mucs/localhost/team/participants: 204 (got %d)" % status)
    t.ok(await until(lambda: cid.invites), "cid got the invitation")
    if cid.invites:
        inv = cid.invites[0]
        x = inv.xml.find("{http://jabber.org/protocol/muc#user}x")
        i = x.find("{http://jabber.org/protocol/muc#user}invite") if x is not None else None
        t.ok(str(inv["from"]) == str(ROOM) and i is not None
             and i.get("from", "").startswith("ann@localhost")
             and i.findtext("{http://jabber.org/protocol/muc#user}reason") == "come along",
             "from the room, naming ann and the reason")
    else:
        t.ok(False, "from the room, naming ann and the reason")

    # ---- bad input
    for path, body, field in (
            (msgs, {"from": "ann@localhost/sx"}, "body"),
            (msgs, {"body": "x"}, "from"),
            (msgs, {"from": "not a jid@@", "body": "x"}, "from"),
            (msgs, {"from": "ann@example.org", "body": "x"}, "from"),
            (msgs, {"from": "ann@localhost/sx", "body": 3}, "body"),
            ("/api/mucs/localhost/team/participants", {"sender": "ann@localhost/sx"},
             "recipient"),
            ("/api/mucs/localhost/team/participants",
             {"sender": "ann@localhost/sx", "recipient": "localhost"}, "recipient")):
        status, b = await api("POST", path, body)
        t.ok(status == 400 and isinstance(b, dict) and b.get("field") == field,
             "%r: 400 naming %s (%d %r)" % (body, field, status, b))
    status, _ = await api("POST", msgs, raw=b"{not json", headers={"Content-Type":
                                                                   "application/json"})
    t.ok(status == 400, "a body that is not JSON: 400")

    # ---- unknown domains and rooms
    status, _ = await api("POST", "/api/mucs/example.org/team/messages",
                          {"from": "ann@localhost/sx", "body": "x"})
    t.ok(status == 404, "an unknown domain: 404")
    status, _ = await api("POST", "/api/mucs/localhost/nosuch/messages",
                          {"from": "ann@localhost/sx", "body": "x"})
    t.ok(status == 404, "an unknown room: 404 (got %d)" % status)
    status, _ = await api("POST", "/api/mucs/localhost/nosuch/participants",
                          {"sender": "ann@localhost/sx", "recipient": "cid@localhost"})
    t.ok(status == 404, "an invitation to an unknown room: 404")
    status, _ = await api("DELETE", "/api/mucs/localhost/nosuch/Bob")
    t.ok(status == 404, "a kick in an unknown room: 404")

    # ---- kick
    status, _ = await api("DELETE", "/api/mucs/localhost/team/Nobody")
    t.ok(status == 404, "a kick of a nick no one has: 404")
    status, _ = await api("DELETE", "/api/mucs/localhost/team/Bob", auth=("admin", "wrong"))
    t.ok(status == 401, "a kick with a wrong password: 401")
    status, _ = await api("DELETE", "/api/mucs/localhost/team/Bob")
    t.ok(status == 204, "DELETE /mucs/localhost/team/Bob: 204 (got %d)" % status)
    t.ok(await until(bob.kicked.is_set), "bob got his unavailable presence with 307")
    status, _ = await api("DELETE", "/api/mucs/localhost/team/Bob")
    t.ok(status == 404, "bob is gone: a second kick is 404")
    status, _ = await api("POST", msgs, {"from": "ann@localhost/sx", "body": "after"})
    t.ok(status == 204 and await until(lambda: ("Ann", "after") in ann.groupchat),
         "the room goes on for ann")
    t.ok(("Ann", "after") not in bob.groupchat, "and bob, kicked, is not sent it")
    for c in cs:
        c.disconnect()
    await asyncio.sleep(0.1)


def test_no_password(t):
    srv = Server({"mod_muc": None}, http={})
    try:
        status, _, _ = srv.http("POST", "/api/mucs/localhost/team/messages",
                                {"from": "a@localhost/r", "body": "b"}, auth=A)
        t.ok(status == 403, "without rest_admin_password_file the admin endpoints answer 403")
    finally:
        srv.stop()


def test_openapi(t):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-rest-admin.py")
    spec_mod = importlib.util.spec_from_file_location("rest_admin_test", path)
    ra = importlib.util.module_from_spec(spec_mod)
    spec_mod.loader.exec_module(ra)
    with open(os.path.join(TOP_SRCDIR, "docs", "api-openapi.json")) as f:
        spec = json.load(f)
    problems, seen = [], set()
    for method, p, status, body in RECORDED:
        tmpl = ra.template_of(spec, p)
        op = spec["paths"].get(tmpl, {}).get(method.lower()) if tmpl else None
        if not op:
            problems.append("%s %s: not documented" % (method, p))
            continue
        seen.add((tmpl, method.lower()))
        resp = op["responses"].get(str(status))
        if resp is None:
            problems.append("%s %s: status %d is not documented" % (method, p, status))
            continue
        schema = resp.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            if body not in ("", None):
                problems.append("%s %s: %d has a body %r" % (method, p, status, body))
        else:
            problems += ra.schema_errors(spec, schema, body, "%s %s %d" % (method, p, status))
    t.ok(not problems, "every one of %d responses matches docs/api-openapi.json" % len(RECORDED))
    for p in problems[:10]:
        t.diag(p)
    ops = {(tmpl, m) for tmpl, item in spec["paths"].items() for m in item
           if m != "parameters" and tmpl.startswith("/mucs")}
    t.ok(ops <= seen, "every room operation was exercised (missing: %s)" % sorted(ops - seen))


def main():
    logging.basicConfig(level=logging.CRITICAL)
    t = Tap()
    pwdir = tempfile.mkdtemp(prefix="mk-mucrest.")
    pwfile = os.path.join(pwdir, "admin-password")
    with open(pwfile, "w") as f:
        f.write(A[1] + "\n")
    srv = Server({"mod_roster": None, "mod_disco": None,
                  "mod_muc": {"rest_admin_password_file": pwfile}}, http={})
    try:
        for n in ("ann", "bob", "cid"):
            srv.register(n, PW)

        def run(t):
            asyncio.get_event_loop().run_until_complete(scenario(t, srv))
        t.run("rest", run)
    finally:
        srv.stop()
        shutil.rmtree(pwdir, ignore_errors=True)
    t.run("no password", test_no_password)
    t.run("openapi", test_openapi)
    t.done()


if __name__ == "__main__":
    main()
