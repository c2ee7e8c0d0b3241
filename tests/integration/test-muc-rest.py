#!/usr/bin/python3
"""mod_muc's admin REST endpoints over real HTTP (MongooseIM's
/api/mucs/{domain}/{name}/...), with the effects checked over XMPP by
slixmpp clients: a message sent by REST reaches every occupant exactly
once, a mediated invitation sent by REST arrives, a kicked occupant gets
307, the room's archive reads back what was said, a room created by
REST is there for the users, persistent and owned by its owner. What the room refuses
(a non-occupant's message or invitation) is the HTTP answer, and the
user's XMPP client is not sent the error. Bad input, unknown domains and
rooms, and wrong credentials are refused and change nothing. Every
response is checked against docs/api-openapi.json. Prints TAP; ignores
--tap."""
import asyncio
import logging
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Server, Tap  # noqa: E402
from resttest import Api, Recorder, check_openapi, until  # noqa: E402

import slixmpp  # noqa: E402

ROOM = slixmpp.JID("team@conference.localhost")
A = ("admin", "adm1n-pw")
PW = "secret"
RECORDED = Recorder()


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


async def scenario(t, srv):
    api = Api(srv, RECORDED, A)
    ann, bob, cid = Client("ann"), Client("bob"), Client("cid")
    cs = (ann, bob, cid)
    for c in cs:
        c.connect(("127.0.0.1", srv.port), force_starttls=False, disable_starttls=True)
    await asyncio.wait_for(asyncio.gather(*(c.started.wait() for c in cs)), 30)
    pres, _, _, _ = await ann["xep_0045"].join_muc_wait(ROOM, "Ann", timeout=10)
    t.ok(201 in pres["muc"]["status_codes"], "ann created the room over XMPP (201)")
    form = await ann["xep_0045"].get_room_config(ROOM)
    form.field["muc#roomconfig_enablelogging"]["value"] = True
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
    status, b = await api("POST", msgs, {"from": "cid@localhost/sx", "body": "outsider"})
    t.ok(status == 403 and "not-acceptable" in b.get("error", ""),
         "a message of a non-occupant: the room's not-acceptable as 403 (%d %r)" % (status, b))
    status, b = await api("POST", "/api/mucs/localhost/team/participants",
                          {"sender": "cid@localhost/sx", "recipient": "bob@localhost"})
    t.ok(status == 403 and "not-acceptable" in b.get("error", ""),
         "an invitation from a non-occupant: 403 (%d %r)" % (status, b))

    # ---- an invitation through the room
    status, _ = await api("POST", "/api/mucs/localhost/team/participants",
                          {"sender": "ann@localhost/sx", "recipient": "cid@localhost",
                           "reason": "come along"})
    t.ok(status == 204, "POST /mucs/localhost/team/participants: 204 (got %d)" % status)
    t.ok(await until(lambda: cid.invites), "cid got the invitation")
    t.ok(not cid.errors, "the refusals went to the HTTP client only, not to cid's XMPP client")
    t.ok(not any(b == "outsider" for c in (ann, bob) for _, b in c.groupchat),
         "and the refused message reached no occupant")
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

    # ---- the room's archive (mod_mam), oldest first
    status, recs = await api("GET", msgs + "?limit=10")
    bodies = [r["body"] for r in recs] if status == 200 else []
    t.ok(status == 200 and bodies == ["hello by rest", "marker"],
         "GET /mucs/localhost/team/messages: what was said, in order (%d %r)" % (status, recs))
    t.ok(status == 200 and all(r["sender"] == "ann@localhost" and r["message_id"] and
                               r["timestamp"] > 0 for r in recs),
         "each record names ann's bare JID, an ID and a time")
    status, recs = await api("GET", msgs + "?limit=1")
    t.ok(status == 200 and [r["body"] for r in recs] == ["marker"], "limit=1: the last one")
    status, recs = await api("GET", msgs + "?before=1")
    t.ok(status == 200 and recs == [], "before=1 (1970): none")
    status, b = await api("GET", msgs + "?limit=x")
    t.ok(status == 400 and b.get("field") == "limit", "limit=x: 400 naming it")
    status, _ = await api("GET", "/api/mucs/localhost/nosuch/messages")
    t.ok(status == 404, "the archive of an unknown room: 404")
    status, _ = await api("GET", msgs, auth=("admin", "wrong"))
    t.ok(status == 401, "the archive with a wrong password: 401")

    # ---- room creation, as the owner's client would create it
    status, b = await api("POST", "/api/mucs/localhost",
                          {"name": "made", "owner": "ann@localhost", "nick": "Ann"})
    t.ok(status == 201 and b == "made@conference.localhost",
         "POST /mucs/localhost: 201 with the room's JID (%d %r)" % (status, b))
    status, b = await api("POST", "/api/mucs/localhost",
                          {"name": "made", "owner": "bob@localhost", "nick": "Bob"})
    t.ok(status == 409, "the same name again: 409 (%d %r)" % (status, b))
    made = slixmpp.JID("made@conference.localhost")
    pres, _, _, _ = await bob["xep_0045"].join_muc_wait(made, "Bob", timeout=10)
    t.ok(pres["type"] != "error" and 201 not in pres["muc"]["status_codes"],
         "bob joins the made room: it exists, unlocked (%r)" % pres["muc"]["status_codes"])
    pres, _, _, _ = await ann["xep_0045"].join_muc_wait(made, "Ann", timeout=10)
    t.ok(pres["muc"]["affiliation"] == "owner", "ann owns it (%r)" % pres["muc"]["affiliation"])
    ann["xep_0045"].leave_muc(made, "Ann")
    form = await bob["xep_0030"].get_info(made)
    feats = form["disco_info"]["features"]
    t.ok("muc_persistent" in feats, "and it is persistent (%r)" % sorted(feats))
    bob["xep_0045"].leave_muc(made, "Bob")
    t.ok(not ann.errors and ("made" not in str(ann.groupchat)),
         "ann's clients saw nothing of the creation")
    for body, field in (({"owner": "ann@localhost", "nick": "A"}, "name"),
                        ({"name": "x", "nick": "A"}, "owner"),
                        ({"name": "x", "owner": "ann@example.org", "nick": "A"}, "owner"),
                        ({"name": "x", "owner": "nobody@localhost", "nick": "A"}, "owner"),
                        ({"name": "x", "owner": "ann@localhost"}, "nick"),
                        ({"name": "x" * 200, "owner": "ann@localhost", "nick": "A"}, "name"),
                        ({"name": 5, "owner": "ann@localhost", "nick": "A"}, "name")):
        status, b = await api("POST", "/api/mucs/localhost", body)
        t.ok(status == 400 and b.get("field") == field,
             "create %r: 400 naming %s (%d %r)" % (body, field, status, b))
    status, _ = await api("POST", "/api/mucs/example.org",
                          {"name": "x", "owner": "ann@localhost", "nick": "A"})
    t.ok(status == 404, "create at an unknown domain: 404")
    status, _ = await api("POST", "/api/mucs/localhost",
                          {"name": "y", "owner": "ann@localhost", "nick": "A"},
                          auth=("admin", "wrong"))
    t.ok(status == 401, "create with a wrong password: 401")
    status, _ = await api("GET", "/api/mucs/localhost/y/messages")
    t.ok(status == 404, "and that room was not made")

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
    check_openapi(t, RECORDED, lambda tmpl: tmpl.startswith("/mucs"))


def main():
    logging.basicConfig(level=logging.CRITICAL)
    t = Tap()
    pwdir = tempfile.mkdtemp(prefix="mk-mucrest.")
    pwfile = os.path.join(pwdir, "admin-password")
    with open(pwfile, "w") as f:
        f.write(A[1] + "\n")
    srv = Server({"mod_roster": None, "mod_disco": None, "mod_mam": {"flush_interval_ms": 10},
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
