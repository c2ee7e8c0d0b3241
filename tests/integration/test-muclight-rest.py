#!/usr/bin/python3
"""mod_muc_light's REST endpoints over real HTTP (MongooseIM's admin
/api/muc-lights/... and client /api/rooms/...), with the effects checked
over XMPP by slixmpp clients: a room created by REST is seen by its
members, a member added by REST gets the affiliation notification, a
message sent by REST reaches every member once and the room's archive,
a destroyed room tells its members. Bad input, unknown rooms, wrong
credentials and non-members are refused and change nothing. Every
response is checked against docs/api-openapi.json. Prints TAP; ignores
--tap."""
import asyncio
import json
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Server, Tap  # noqa: E402
from resttest import Api, Recorder, check_openapi, until  # noqa: E402

import slixmpp  # noqa: E402

ML = "urn:xmpp:muclight:0"
SVC = "muclight.localhost"
A = ("admin", "adm1n-pw")
PW = "secret"
RECORDED = Recorder()


def user(name):
    return (name + "@localhost", PW)


class Sx(slixmpp.ClientXMPP):
    """Records the room notices (affiliations, configuration, destroy)
    and groupchat bodies it gets."""

    def __init__(self, name):
        super().__init__("%s@localhost/sx" % name, PW)
        self.started = asyncio.Event()
        self.bodies = []
        self.affs = []     # (room, [(jid, affiliation)])
        self.configs = []  # (room, roomname)
        self.destroyed = []
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence_available", self.on_available)

    async def on_start(self, _):
        self.send_presence()

    def on_available(self, pres):
        if pres["from"] == self.boundjid:
            self.started.set()

    def on_message(self, msg):
        if msg["type"] != "groupchat":
            return
        room = str(msg["from"].bare)
        x = msg.xml.find("{%s#affiliations}x" % ML)
        if x is not None:
            self.affs.append((room, sorted((u.text, u.get("affiliation"))
                                           for u in x.findall("{%s#affiliations}user" % ML))))
        c = msg.xml.find("{%s#configuration}x" % ML)
        if c is not None:
            self.configs.append((room, c.findtext("{%s#configuration}roomname" % ML)))
        if msg.xml.find("{%s#destroy}x" % ML) is not None:
            self.destroyed.append(room)
        if x is None and c is None and msg["body"]:
            self.bodies.append((str(msg["from"]), msg["body"]))


def write_sql(srv, statements):
    """Writes behind the server's back (sqlite; test-muclight-rest-pgsql.py
    gives srv a write_sql of its own)."""
    if hasattr(srv, "write_sql"):
        for s in statements:
            srv.write_sql(s)
        return
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10)
    with db:
        for s in statements:
            db.execute(s)
    db.close()


async def scenario(t, srv):
    api = Api(srv, RECORDED, A)
    ann, bob, cid = Sx("ann"), Sx("bob"), Sx("cid")
    cs = (ann, bob, cid)
    for c in cs:
        c.connect(("127.0.0.1", srv.port), force_starttls=False, disable_starttls=True)
    await asyncio.wait_for(asyncio.gather(*(c.started.wait() for c in cs)), 30)

    # ---- credentials: nothing changes without them
    for auth, what in ((None, "no credentials"), (("admin", "wrong"), "a wrong password"),
                       (("ann@localhost", PW), "a user's credentials")):
        status, _ = await api("PUT", "/api/muc-lights/localhost",
                              {"id": "intruded", "owner": "ann@localhost", "name": "n",
                               "subject": "s"}, auth=auth)
        t.ok(status == 401, "admin create with %s: 401 (got %d)" % (what, status))
    status, _ = await api("POST", "/api/rooms", {"name": "n", "subject": "s"},
                          auth=("ann@localhost", "wrong"))
    t.ok(status == 401, "client create with a wrong password: 401")
    status, body = await api("GET", "/api/rooms", auth=user("ann"))
    t.ok(status == 200 and body == [], "after the refused requests ann is in no room")

    # ---- admin: create
    status, body = await api("POST", "/api/muc-lights/localhost",
                             {"owner": "ann@localhost", "name": "Random", "subject": "r"})
    t.ok(status == 201 and isinstance(body, str) and body.endswith("@" + SVC),
         "POST /muc-lights/localhost: 201 with the room's JID (%r)" % (body,))
    random_room = body
    status, body = await api("PUT", "/api/muc-lights/localhost",
                             {"id": "team", "owner": "ann@localhost", "name": "Team",
                              "subject": "work"})
    room = "team@" + SVC
    t.ok(status == 201 and body == room, "PUT /muc-lights/localhost id=team: 201 %r" % (body,))
    await until(lambda: len(ann.affs) >= 2)
    t.ok(sorted(ann.affs) == sorted([(random_room, [("ann@localhost", "owner")]),
                                     (room, [("ann@localhost", "owner")])]),
         "the owner got one creation notice per room, as owner (%r)" % ann.affs)
    status, body = await api("PUT", "/api/muc-lights/localhost",
                             {"id": "team", "owner": "bob@localhost", "name": "x",
                              "subject": "y"})
    t.ok(status == 409, "PUT an existing id: 409 (got %d %r)" % (status, body))

    # ---- admin: bad input
    bad = [
        ("POST", "/api/muc-lights/localhost", {"name": "n", "subject": "s"}, 400, "owner"),
        ("POST", "/api/muc-lights/localhost", {"owner": "not a jid@", "name": "n",
                                               "subject": "s"}, 400, "owner"),
        ("POST", "/api/muc-lights/localhost", {"owner": "x@elsewhere.example", "name": "n",
                                               "subject": "s"}, 400, "owner"),
        ("POST", "/api/muc-lights/localhost", {"owner": "ann@localhost", "name": 7,
                                               "subject": "s"}, 400, "name"),
        ("POST", "/api/muc-lights/localhost", {"owner": "ghost@localhost", "name": "n",
                                               "subject": "s"}, 400, "owner"),
        ("POST", "/api/muc-lights/localhost/team/messages", {"from": "ghost@localhost",
                                                             "body": "boo"}, 400, "from"),
        ("POST", "/api/muc-lights/localhost/team/participants",
         {"sender": "ghost@localhost", "recipient": "bob@localhost"}, 400, "sender"),
        ("PUT", "/api/muc-lights/localhost", {"id": "a b", "owner": "ann@localhost",
                                              "name": "n", "subject": "s"}, 400, "id"),
        ("PUT", "/api/muc-lights/localhost", {"owner": "ann@localhost", "name": "n",
                                              "subject": "s"}, 400, "id"),
        ("POST", "/api/muc-lights/nowhere.example", {"owner": "ann@localhost", "name": "n",
                                                     "subject": "s"}, 404, None),
        ("POST", "/api/muc-lights/localhost/team/participants", {"sender": "ann@localhost"},
         400, "recipient"),
        ("POST", "/api/muc-lights/localhost/team/messages", {"from": "ann@localhost"},
         400, "body"),
        ("POST", "/api/muc-lights/localhost/nosuch/messages", {"from": "ann@localhost",
                                                               "body": "x"}, 404, None),
        ("POST", "/api/muc-lights/localhost/nosuch/participants",
         {"sender": "ann@localhost", "recipient": "bob@localhost"}, 404, None),
        ("GET", "/api/muc-lights/localhost/nosuch/messages", None, 404, None),
        ("GET", "/api/muc-lights/localhost/team/messages?limit=x", None, 400, "limit"),
        ("DELETE", "/api/muc-lights/localhost/nosuch/management", None, 404, None),
    ]
    for method, path, body, want, field in bad:
        status, got = await api(method, path, body)
        t.ok(status == want and (field is None or got.get("field") == field),
             "%s %s %s: %d%s (got %d %r)" % (method, path, json.dumps(body), want,
                                            " naming " + field if field else "", status, got))
    status, _ = await api("POST", "/api/muc-lights/localhost", raw=b"{not json",
                          headers={"Content-Type": "application/json"})
    t.ok(status == 400, "bad JSON: 400")

    # ---- admin: a participant is added and told
    status, _ = await api("POST", "/api/muc-lights/localhost/team/participants",
                          {"sender": "ann@localhost", "recipient": "bob@localhost"})
    t.ok(status == 204, "POST participants: 204")
    t.ok(await until(lambda: (room, [("bob@localhost", "member")]) in bob.affs),
         "bob got his member notification over XMPP")
    t.ok(await until(lambda: (room, [("bob@localhost", "member")]) in ann.affs),
         "ann (the owner) got the change")
    status, _ = await api("POST", "/api/muc-lights/localhost/team/participants",
                          {"sender": "cid@localhost", "recipient": "cid@localhost"})
    t.ok(status == 404, "a non-member cannot add anyone: 404 (as over XMPP)")
    status, _ = await api("POST", "/api/muc-lights/localhost/team/participants",
                          {"sender": "bob@localhost", "recipient": "cid@localhost"})
    t.ok(status == 403, "a member may not add members (all_can_invite off): 403")

    # ---- admin: a message is sent as a member
    status, _ = await api("POST", "/api/muc-lights/localhost/team/messages",
                          {"from": "ann@localhost", "body": "hello by REST"})
    t.ok(status == 204, "POST messages: 204")
    want = (room + "/ann@localhost", "hello by REST")
    t.ok(await until(lambda: want in ann.bodies and want in bob.bodies),
         "ann and bob got the message from room/ann@localhost")
    status, _ = await api("POST", "/api/muc-lights/localhost/team/messages",
                          {"from": "cid@localhost", "body": "intrusion"})
    t.ok(status == 404, "a non-member's message: 404")
    deadline = time.time() + 10
    while time.time() < deadline:
        status, body = await api("GET", "/api/muc-lights/localhost/team/messages")
        if status == 200 and body:
            break
        await asyncio.sleep(0.05)
    t.ok(status == 200 and [(m["sender"], m["body"]) for m in body] ==
         [("ann@localhost", "hello by REST")] and body[0]["message_id"] and
         abs(body[0]["timestamp"] - time.time()) < 120,
         "GET messages: the archive holds it once (%r)" % (body,))
    status, body = await api("GET", "/api/muc-lights/localhost/team/messages?before=1000")
    t.ok(status == 200 and body == [], "before=1000: nothing")
    t.ok(ann.bodies.count(want) == 1 and bob.bodies.count(want) == 1 and not cid.bodies,
         "each member got it exactly once; the non-member nothing")

    # ---- client API
    status, body = await api("GET", "/api/rooms", auth=user("bob"))
    t.ok(status == 200 and body == [{"id": "team", "name": "Team", "subject": "work"}],
         "GET /rooms: bob's room (%r)" % (body,))
    status, body = await api("GET", "/api/rooms/team", auth=user("bob"))
    t.ok(status == 200 and body == {"name": "Team", "subject": "work", "participants": [
        {"user": "ann@localhost", "role": "owner"}, {"user": "bob@localhost", "role": "member"}]},
        "GET /rooms/team: details (%r)" % (body,))
    status, _ = await api("GET", "/api/rooms/team", auth=user("cid"))
    t.ok(status == 404, "a non-member's GET /rooms/team: 404")
    status, _ = await api("GET", "/api/rooms/team/messages", auth=user("cid"))
    t.ok(status == 404, "a non-member's GET /rooms/team/messages: 404")
    status, _ = await api("POST", "/api/rooms/team/messages", {"body": "x"}, auth=user("cid"))
    t.ok(status == 404, "a non-member's POST /rooms/team/messages: 404")
    status, _ = await api("PUT", "/api/rooms/team/config", {"name": "Mine"}, auth=user("bob"))
    t.ok(status == 403, "a member renaming the room: 403")

    status, body = await api("POST", "/api/rooms", {"name": "Bob's", "subject": "b"},
                             auth=user("bob"))
    t.ok(status == 201 and isinstance(body.get("id"), str), "POST /rooms: 201 {id} (%r)" % body)
    status, body = await api("PUT", "/api/rooms/bobs", {"name": "Bobs", "subject": "b"},
                             auth=user("bob"))
    t.ok(status == 201 and body == {"id": "bobs"}, "PUT /rooms/bobs: 201 (%r)" % body)
    status, body = await api("PUT", "/api/rooms/bobs", {"name": "Bobs", "subject": "b"},
                             auth=user("bob"))
    t.ok(status == 409, "PUT /rooms/bobs again: 409")
    status, body = await api("POST", "/api/rooms", {"subject": "b"}, auth=user("bob"))
    t.ok(status == 400 and body.get("field") == "name", "POST /rooms without name: 400 naming it")
    status, body = await api("POST", "/api/rooms/bobs/users", {"user": 5}, auth=user("bob"))
    t.ok(status == 400 and body.get("field") == "user", "POST users with a number: 400")
    bobs = "bobs@" + SVC
    status, _ = await api("POST", "/api/rooms/bobs/users", {"user": "cid@localhost"},
                          auth=user("bob"))
    t.ok(status == 204, "POST /rooms/bobs/users cid: 204")
    t.ok(await until(lambda: (bobs, [("cid@localhost", "member")]) in cid.affs),
         "cid got the member notification over XMPP")
    status, body = await api("POST", "/api/rooms/bobs/messages", {"body": "client says hi"},
                             auth=user("bob"))
    t.ok(status == 200 and isinstance(body.get("id"), str), "POST /rooms/bobs/messages: 200 {id}")
    mine = (bobs + "/bob@localhost", "client says hi")
    t.ok(await until(lambda: mine in cid.bodies and mine in bob.bodies),
         "the message reached cid and bob over XMPP")
    deadline = time.time() + 10
    while time.time() < deadline:
        status, body = await api("GET", "/api/rooms/bobs/messages?limit=10", auth=user("cid"))
        if status == 200 and body:
            break
        await asyncio.sleep(0.05)
    t.ok(status == 200 and [(m["sender"], m["body"]) for m in body] ==
         [("bob@localhost", "client says hi")], "GET /rooms/bobs/messages: from the archive")
    status, _ = await api("PUT", "/api/rooms/bobs/config", {"name": "Renamed"}, auth=user("bob"))
    t.ok(status == 204, "PUT /rooms/bobs/config: 204")
    t.ok(await until(lambda: (bobs, "Renamed") in cid.configs),
         "cid got the configuration notification")
    status, _ = await api("DELETE", "/api/rooms/bobs/users/cid@localhost", auth=user("bob"))
    t.ok(status == 204, "DELETE /rooms/bobs/users/cid: 204")
    t.ok(await until(lambda: (bobs, [("cid@localhost", "none")]) in cid.affs),
         "cid was told he is out")
    status, _ = await api("DELETE", "/api/rooms/bobs/users/cid@localhost", auth=user("bob"))
    t.ok(status == 400, "removing him again: 400 (a change must change something)")
    status, _ = await api("POST", "/api/rooms/bobs/messages", {"body": "x"}, auth=user("cid"))
    t.ok(status == 404, "cid can no longer send there: 404")

    # ---- a room not in memory: the request waits for its load
    write_sql(srv, [
        "INSERT INTO muclight_rooms (room, version, roomname, subject, created_at)"
        " VALUES ('cold@%s', 'v1', 'Cold', '', 0)" % SVC,
        "INSERT INTO muclight_occupants (room, jid, aff) VALUES"
        " ('cold@%s', 'ann@localhost', 2), ('cold@%s', 'bob@localhost', 1)" % (SVC, SVC)])
    status, body = await api("POST", "/api/rooms/cold/messages", {"body": "warm up"},
                             auth=user("bob"))
    cold = ("cold@%s/bob@localhost" % SVC, "warm up")
    t.ok(status == 200 and await until(lambda: cold in ann.bodies),
         "a message to a room first loaded from storage: 200 and delivered (%d)" % status)

    # ---- admin: destroy
    status, _ = await api("DELETE", "/api/muc-lights/localhost/team/management")
    t.ok(status == 204, "DELETE /muc-lights/localhost/team/management: 204")
    t.ok(await until(lambda: room in ann.destroyed and room in bob.destroyed),
         "both members got the destruction notice")
    status, _ = await api("GET", "/api/rooms/team", auth=user("bob"))
    t.ok(status == 404, "the room is gone: 404")
    status, _ = await api("DELETE", "/api/muc-lights/localhost/bobs/cid@localhost/management")
    t.ok(status == 404, "DELETE as a non-member owner: 404")
    status, _ = await api("DELETE", "/api/muc-lights/localhost/bobs/bob@localhost/management")
    t.ok(status == 204, "DELETE .../{owner}/management: 204")
    status, body = await api("GET", "/api/rooms", auth=user("bob"))
    t.ok(status == 200 and sorted(r["name"] for r in body) == ["Bob's", "Cold"],
         "bob keeps the random room he made and cold (%r)" % body)
    for c in cs:
        c.disconnect()
    await asyncio.sleep(0.1)


def test_no_password(t):
    srv = Server({"mod_muc_light": None}, http={})
    try:
        status, _, _ = srv.http("POST", "/api/muc-lights/localhost",
                                {"owner": "a@localhost", "name": "n", "subject": "s"}, auth=A)
        t.ok(status == 403, "without rest_admin_password_file the admin endpoints answer 403")
    finally:
        srv.stop()


def test_openapi(t):
    check_openapi(t, RECORDED, lambda tmpl: tmpl.startswith(("/muc-lights", "/rooms")))


def main():
    logging.basicConfig(level=logging.CRITICAL)
    t = Tap()
    pwdir = tempfile.mkdtemp(prefix="mk-mlrest.")
    pwfile = os.path.join(pwdir, "admin-password")
    with open(pwfile, "w") as f:
        f.write(A[1] + "\n")
    srv = Server({"mod_roster": None, "mod_disco": None, "mod_offline": None,
                  "mod_mam": {"flush_interval_ms": 10},
                  "mod_muc_light": {"rest_admin_password_file": pwfile}}, http={})
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
