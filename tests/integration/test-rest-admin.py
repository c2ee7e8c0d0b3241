#!/usr/bin/python3
"""mod_rest_admin over real HTTP against a running meerkatd (MongooseIM's
admin paths under /api): every endpoint, its errors (bad JSON, missing
fields, wrong types, wrong content type, unknown users and domains,
oversize bodies, wrong credentials — after which nothing changed), and
the effects over XMPP: a message sent by REST reaches a slixmpp client,
a kicked session gets its stream error, a user removed by REST loses
its roster, offline messages and archive and its sessions. Responses
are checked against docs/api-openapi.json: every status is documented
for its path and method, every body matches its schema, and every
documented operation is exercised.
Prints TAP; ignores --tap."""
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, NS_STREAM, Client, Server, Tap, online,  # noqa: E402
                     q, stream_error, subscribe)
import resttest  # noqa: E402

import slixmpp  # noqa: E402

A = ("admin", "adm1n-pw")
MODULES = {"mod_rest_admin": {}, "mod_roster": {},
           "mod_offline": {}, "mod_mam": {"flush_interval_ms": 10}}


def users(srv):
    status, _, body = srv.http("GET", "/api/users/localhost", auth=A)
    assert status == 200, (status, body)
    return body


def test_auth(t, srv):
    srv.register("keep")
    before = users(srv)
    for auth, what in ((None, "no credentials"), (("admin", "wrong"), "a wrong password"),
                       (("root", A[1]), "a wrong user"), (("admin", ""), "an empty password")):
        status, headers, body = srv.http("POST", "/api/users/localhost",
                                         {"username": "intruder", "password": "x"}, auth=auth)
        t.ok(status == 401 and headers.get("www-authenticate", "").startswith("Basic"),
             "%s: 401 with WWW-Authenticate (got %d)" % (what, status))
        status, _, _ = srv.http("DELETE", "/api/users/localhost/keep", auth=auth)
        t.ok(status == 401, "%s: DELETE refused too" % what)
    t.ok(users(srv) == before, "after the refused requests the accounts are unchanged")
    Client(srv, "keep").close()
    t.ok(True, "the account a refused DELETE named still logs in")


def test_users(t, srv):
    status, _, body = srv.http("POST", "/api/users/localhost",
                               {"username": "ann", "password": "pw1"}, auth=A)
    t.ok(status == 201 and "ann@localhost" in body, "POST /users/localhost: 201 (%r)" % body)
    t.ok("ann@localhost" in users(srv), "GET /users/localhost lists ann@localhost")
    status, _, body = srv.http("POST", "/api/users/localhost",
                               {"username": "ann", "password": "pw1"}, auth=A)
    t.ok(status == 409, "registering her again: 409 (got %d)" % status)
    c = Client(srv, "ann", "pw1")
    t.ok(c.jid is not None, "ann logs in over XMPP with the password given by REST")
    c.close()

    status, _, body = srv.http("POST", "/api/users/localhost", raw=b"{nope",
                               headers={"Content-Type": "application/json"}, auth=A)
    t.ok(status == 400 and "JSON" in body["error"], "bad JSON: 400 (%r)" % body)
    status, _, body = srv.http("POST", "/api/users/localhost", {"username": "x"}, auth=A)
    t.ok(status == 400 and body.get("field") == "password",
         "a missing field: 400 naming it (%r)" % body)
    status, _, body = srv.http("POST", "/api/users/localhost",
                               {"username": 7, "password": "x"}, auth=A)
    t.ok(status == 400 and body.get("field") == "username",
         "a field of the wrong type: 400 naming it (%r)" % body)
    status, _, body = srv.http("POST", "/api/users/localhost", raw=b'{"username":"x"}',
                               headers={"Content-Type": "text/plain"}, auth=A)
    t.ok(status == 415, "a body that is not application/json: 415 (got %d)" % status)
    status, _, body = srv.http("POST", "/api/users/localhost", [1, 2], auth=A)
    t.ok(status == 400, "a JSON array instead of an object: 400")
    status, _, body = srv.http("POST", "/api/users/nowhere.example",
                               {"username": "x", "password": "y"}, auth=A)
    t.ok(status == 404, "an unknown domain: 404 (got %d)" % status)
    status, _, body = srv.http("POST", "/api/users/localhost",
                               {"username": "a b@c", "password": "y"}, auth=A)
    t.ok(status == 400 and body.get("field") == "username", "an invalid user name: 400")

    status, _, _ = srv.http("PUT", "/api/users/localhost/ann", {"newpass": "pw2"}, auth=A)
    t.ok(status == 204, "PUT /users/localhost/ann: 204")
    c = Client(srv, "ann", "pw2")
    t.ok(c.jid is not None, "she logs in with the new password")
    c.close()
    try:
        Client(srv, "ann", "pw1")
        old_ok = True
    except RuntimeError:
        old_ok = False
    t.ok(not old_ok, "the old password no longer works")
    status, _, _ = srv.http("PUT", "/api/users/localhost/nobody", {"newpass": "x"}, auth=A)
    t.ok(status == 404, "a new password for an unknown user: 404")
    status, _, body = srv.http("PUT", "/api/users/localhost/ann", {"password": "x"}, auth=A)
    t.ok(status == 400 and body.get("field") == "newpass", "PUT without newpass: 400 naming it")

    status, _, _ = srv.http("DELETE", "/api/users/localhost/nobody", auth=A)
    t.ok(status == 404, "DELETE of an unknown user: 404")
    status, headers, _ = srv.http("PATCH", "/api/users/localhost", auth=A)
    t.ok(status == 405 and set(headers.get("allow", "").split(", ")) == {"GET", "POST"},
         "PATCH /users/localhost: 405 with Allow: GET, POST (%r)" % headers.get("allow"))


def test_oversize(t, srv):
    before = users(srv)
    s = socket.create_connection(("127.0.0.1", srv.http_port), 10)
    body = json.dumps({"username": "big", "password": "x" * 300000}).encode()
    head = ("POST /api/users/localhost HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            "Authorization: Basic YWRtaW46YWRtMW4tcHc=\r\nContent-Length: %d\r\n\r\n" % len(body))
    s.sendall(head.encode())
    try:
        s.sendall(body)
    except OSError:
        pass
    s.settimeout(10)
    out = b""
    try:
        while not out.endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    s.close()
    t.ok(out.startswith(b"HTTP/1.1 413"), "a body over max_body_size: 413 (%r)" % out[:30])
    t.ok(users(srv) == before, "and no account was made")


class Sx(slixmpp.ClientXMPP):
    def __init__(self, jid, password="secret"):
        super().__init__(jid, password)
        self.started = asyncio.Event()
        self.ended = asyncio.Event()
        self.received = []
        self.stream_errors = []
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", lambda m: self.received.append(
            (str(m["from"]), m["type"], m["body"])))
        self.add_event_handler("stream_error", lambda e: self.stream_errors.append(
            e["condition"]))
        self.add_event_handler("disconnected", lambda _: self.ended.set())

    async def on_start(self, _):
        self.send_presence()
        self.started.set()


async def wait_for(cond, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


async def xmpp_effects(t, srv):
    srv.register("sam")
    srv.register("tom")
    sam = Sx("sam@localhost/sx")
    sam.connect(("127.0.0.1", srv.port), force_starttls=False, disable_starttls=True)
    await asyncio.wait_for(sam.started.wait(), 30)

    status, _, _ = srv.http("POST", "/api/messages",
                            {"caller": "tom@localhost", "to": "sam@localhost", "body": "via REST"},
                            auth=A)
    t.ok(status == 204, "POST /messages: 204")
    await wait_for(lambda: any(r[2] == "via REST" for r in sam.received))
    got = [r for r in sam.received if r[2] == "via REST"]
    t.ok(len(got) == 1 and got[0][0].startswith("tom@localhost") and got[0][1] == "chat",
         "slixmpp receives the chat message once, from tom (%r)" % got)

    stanza = "<message to='sam@localhost' from='tom@localhost' type='chat'><body>raw</body></message>"
    status, _, _ = srv.http("POST", "/api/stanzas", {"stanza": stanza}, auth=A)
    t.ok(status == 204, "POST /stanzas: 204")
    await wait_for(lambda: any(r[2] == "raw" for r in sam.received))
    t.ok(sum(1 for r in sam.received if r[2] == "raw") == 1, "the raw stanza arrives once")

    status, _, body = srv.http("GET", "/api/sessions/localhost", auth=A)
    t.ok(status == 200 and "sam@localhost/sx" in body, "GET /sessions/localhost lists sam (%r)" % body)
    status, _, _ = srv.http("DELETE", "/api/sessions/localhost/sam/nosuch", auth=A)
    t.ok(status == 404, "kicking a resource that is not bound: 404")
    status, _, _ = srv.http("DELETE", "/api/sessions/localhost/sam/sx", auth=("admin", "no"))
    t.ok(status == 401, "kicking with wrong credentials: 401")
    await asyncio.sleep(0)
    t.ok(not sam.ended.is_set(), "and the session stays")
    status, _, _ = srv.http("DELETE", "/api/sessions/localhost/sam/sx", auth=A)
    t.ok(status == 204, "DELETE /sessions/localhost/sam/sx: 204")
    await wait_for(lambda: sam.ended.is_set())
    t.ok(sam.stream_errors == ["policy-violation"],
         "the kicked session got a policy-violation stream error (%r)" % sam.stream_errors)
    status, _, body = srv.http("GET", "/api/sessions/localhost", auth=A)
    t.ok("sam@localhost/sx" not in body, "it is no longer listed")


def test_xmpp(t, srv):
    asyncio.get_event_loop().run_until_complete(xmpp_effects(t, srv))


def test_send_errors(t, srv):
    for body, field, what in (
            ({"caller": "ghost@localhost", "to": "tom@localhost", "body": "x"}, "caller",
             "an unknown caller"),
            ({"caller": "tom@localhost", "to": "@@", "body": "x"}, "to", "an invalid 'to'"),
            ({"caller": "tom@localhost", "to": "sam@localhost", "body": 3}, "body",
             "a body that is not a string"),
            ({"caller": "tom@localhost", "to": "sam@localhost"}, "body", "no body"),
            ({"caller": "x@elsewhere.example", "to": "sam@localhost", "body": "x"}, "caller",
             "a caller of a domain not served")):
        status, _, resp = srv.http("POST", "/api/messages", body, auth=A)
        t.ok(status == 400 and resp.get("field") == field,
             "POST /messages with %s: 400 naming %s (%r)" % (what, field, resp))
    for stanza, what in (("<message to='sam@localhost'><body>x</body></message>", "no from"),
                         ("<message from='tom@localhost' to='sam@localhost'>", "bad XML"),
                         ("<foo from='tom@localhost' to='sam@localhost'/>", "not a stanza")):
        status, _, resp = srv.http("POST", "/api/stanzas", {"stanza": stanza}, auth=A)
        t.ok(status == 400 and resp.get("field") == "stanza",
             "POST /stanzas with %s: 400 naming stanza" % what)


def test_sender_removed(t, srv):
    srv.register("kim")
    msg = {"caller": "kim@localhost", "to": "tom@localhost", "body": "x"}
    status, _, _ = srv.http("POST", "/api/messages", msg, auth=A)
    status2, _, _ = srv.http("POST", "/api/messages", msg, auth=A)
    t.ok(status == 204 and status2 == 204, "kim sends twice (the second from the known senders)")
    status, _, _ = srv.http("DELETE", "/api/users/localhost/kim", auth=A)
    t.ok(status == 204, "kim's account is removed")
    status, _, body = srv.http("POST", "/api/messages", msg, auth=A)
    t.ok(status == 400 and body.get("field") == "caller",
         "after the removal kim can no longer send (%d %r)" % (status, body))


def test_removal(t, srv):
    srv.register("rita")
    srv.register("olga")
    rita, olga = online(srv, "rita"), online(srv, "olga")
    subscribe(olga, rita)
    olga.send("<message to='rita@localhost' type='chat'><body>archived</body></message>")
    rita.expect(lambda e: e.tag == q(NS_CLIENT, "message"), what="olga's message")
    rita.close()
    olga.send("<message to='rita@localhost' type='chat'><body>stored</body></message>")
    deadline = time.time() + 10
    while time.time() < deadline and not srv.sql(
            "SELECT 1 FROM offline_messages WHERE username = 'rita'"):
        time.sleep(0.05)
    rita = Client(srv, "rita", resource="second")
    rita.drain()
    counts = lambda: [srv.sql("SELECT COUNT(*) FROM %s WHERE username = 'rita'" % tbl)[0][0]
                      for tbl in ("roster_items", "mam_user_message")]
    before = counts()
    t.ok(all(n > 0 for n in before), "rita has roster items and an archive (%r)" % before)
    status, _, _ = srv.http("DELETE", "/api/users/localhost/rita", auth=A)
    t.ok(status == 204, "DELETE /users/localhost/rita: 204")
    err = rita.expect(lambda e: e.tag in (q(NS_STREAM, "error"), q(NS_STREAM, "end-of-stream")),
                      what="the end of her session")
    t.ok(stream_error(err) == "not-authorized", "her session ends with not-authorized")
    t.ok(counts() == [0, 0], "her roster and archive are gone")
    t.ok(not srv.sql("SELECT 1 FROM offline_messages WHERE username = 'rita'"),
         "her offline messages are gone")
    t.ok("rita@localhost" not in users(srv), "she is no longer listed")
    olga.close()


def contacts(srv, user):
    status, _, body = srv.http("GET", "/api/contacts/" + user, auth=A)
    assert status == 200, (status, body)
    return {c["jid"]: (c["subscription"], c["ask"]) for c in body}


def wait_contacts(srv, user, want, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = contacts(srv, user)
        if got == want:
            return got
        time.sleep(0.05)
    return contacts(srv, user)


def test_contacts(t, srv):
    for u in ("cara", "dave", "erin"):
        srv.register(u)
    cara, dave = online(srv, "cara"), online(srv, "dave")
    status, _, _ = srv.http("POST", "/api/contacts/cara@localhost", {"jid": "dave@localhost"},
                            auth=A)
    t.ok(status == 204, "POST /contacts/cara@localhost: 204")
    item, _ = cara.expect_push("dave@localhost")
    t.ok(item.get("subscription") == "none", "cara's client gets the roster push")
    t.ok(contacts(srv, "cara@localhost") == {"dave@localhost": ("none", "none")},
         "GET /contacts lists dave, subscription none, ask none")
    status, _, body = srv.http("PUT", "/api/contacts/cara@localhost/dave@localhost",
                               {"action": "invite"}, auth=A)
    t.ok(status == 204, "PUT /contacts/cara/dave {action: invite}: 204")
    pres = dave.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and
                       e.get("type") == "subscribe", what="the subscription request")
    t.ok(pres.get("from") == "cara@localhost", "dave receives cara's subscribe")
    t.ok(wait_contacts(srv, "cara@localhost", {"dave@localhost": ("none", "out")}) ==
         {"dave@localhost": ("none", "out")}, "cara's item now asks (out)")
    status, _, body = srv.http("PUT", "/api/contacts/cara@localhost/dave@localhost",
                               {"action": "hug"}, auth=A)
    t.ok(status == 400 and body.get("field") == "action", "an unknown action: 400 naming it")
    status, _, body = srv.http("PUT", "/api/contacts/cara@localhost/erin@localhost",
                               {"action": "invite"}, auth=A)
    t.ok(status == 404, "inviting someone not in the roster: 404")
    status, _, _ = srv.http("DELETE", "/api/contacts/cara@localhost/dave@localhost", auth=A)
    t.ok(status == 204, "DELETE /contacts/cara/dave: 204")
    t.ok(contacts(srv, "cara@localhost") == {}, "the roster is empty again")
    status, _, _ = srv.http("DELETE", "/api/contacts/cara@localhost/dave@localhost", auth=A)
    t.ok(status == 404, "deleting it again: 404")

    status, _, _ = srv.http("PUT", "/api/contacts/cara@localhost/erin@localhost/manage",
                            {"action": "connect"}, auth=A)
    t.ok(status == 204, "PUT .../manage {action: connect}: 204")
    want = {"erin@localhost": ("both", "none")}
    t.ok(wait_contacts(srv, "cara@localhost", want) == want, "cara has erin, both ways")
    want = {"cara@localhost": ("both", "none")}
    t.ok(wait_contacts(srv, "erin@localhost", want) == want, "erin has cara, both ways")
    status, _, _ = srv.http("PUT", "/api/contacts/cara@localhost/erin@localhost/manage",
                            {"action": "disconnect"}, auth=A)
    t.ok(status == 204, "PUT .../manage {action: disconnect}: 204")
    t.ok(wait_contacts(srv, "cara@localhost", {}) == {} and
         wait_contacts(srv, "erin@localhost", {}) == {}, "both rosters are empty")

    status, _, _ = srv.http("GET", "/api/contacts/ghost@localhost", auth=A)
    t.ok(status == 404, "the contacts of an unknown user: 404")
    status, _, body = srv.http("POST", "/api/contacts/cara@localhost", {"jid": "@"}, auth=A)
    t.ok(status == 400 and body.get("field") == "jid", "an invalid contact JID: 400 naming jid")
    status, _, _ = srv.http("POST", "/api/contacts/cara@localhost", {"jid": "dave@localhost"},
                            auth=("admin", "bad"))
    t.ok(status == 401 and contacts(srv, "cara@localhost") == {},
         "adding with wrong credentials: 401, and the roster is unchanged")
    cara.close()
    dave.close()


def test_archive(t, srv):
    srv.register("gus")
    srv.register("hal")
    srv.register("ivy")
    for i in range(5):
        srv.http("POST", "/api/messages", {"caller": "gus@localhost", "to": "hal@localhost",
                                           "body": "m%d" % i}, auth=A)
    srv.http("POST", "/api/messages", {"caller": "ivy@localhost", "to": "hal@localhost",
                                       "body": "from ivy"}, auth=A)
    deadline = time.time() + 10
    body = []
    while time.time() < deadline:
        status, _, body = srv.http("GET", "/api/messages/hal@localhost", auth=A)
        if status == 200 and len(body) >= 6:
            break
        time.sleep(0.05)
    t.ok(status == 200 and [m["body"] for m in body] == ["m0", "m1", "m2", "m3", "m4", "from ivy"],
         "GET /messages/hal@localhost: his archive, oldest first (%r)" %
         [m.get("body") for m in body])
    t.ok(all(set(m) == {"sender", "timestamp", "message_id", "body"} for m in body),
         "each record has sender, timestamp, message_id, body")
    t.ok(body and body[0]["sender"] == "gus@localhost" and
         abs(body[0]["timestamp"] - time.time()) < 120, "sender and timestamp are right")
    status, _, body = srv.http("GET", "/api/messages/hal@localhost/ivy@localhost", auth=A)
    t.ok(status == 200 and [m["body"] for m in body] == ["from ivy"],
         "GET /messages/hal/ivy: only the messages with ivy")
    status, _, body = srv.http("GET", "/api/messages/hal@localhost/gus@localhost?limit=2", auth=A)
    t.ok(status == 200 and [m["body"] for m in body] == ["m3", "m4"], "limit=2: the last two")
    status, _, body = srv.http("GET", "/api/messages/hal@localhost?before=1000", auth=A)
    t.ok(status == 200 and body == [], "before=1000 (1970): nothing")
    status, _, body = srv.http("GET", "/api/messages/hal@localhost?limit=x", auth=A)
    t.ok(status == 400 and body.get("field") == "limit", "limit=x: 400 naming limit")
    status, _, body = srv.http("GET", "/api/messages/hal@nowhere.example", auth=A)
    t.ok(status == 404, "an owner of an unknown domain: 404")


def test_domains(t, srv):
    status, _, _ = srv.http("PUT", "/api/domains/new.example", {"host_type": "default"}, auth=A)
    t.ok(status == 204, "PUT /domains/new.example: 204")
    status, _, body = srv.http("GET", "/api/domains/new.example", auth=A)
    t.ok(status == 200 and body.get("host_type") == "default", "GET shows its host type")
    status, _, body = srv.http("POST", "/api/users/new.example",
                               {"username": "neo", "password": "x"}, auth=A)
    t.ok(status == 201, "an account can be made on it at once")
    status, _, _ = srv.http("PUT", "/api/domains/new.example", {"host_type": "default"}, auth=A)
    t.ok(status == 204, "adding it again with the same host type: 204")
    status, _, _ = srv.http("PUT", "/api/domains/localhost", {"host_type": "other"}, auth=A)
    t.ok(status == 409, "a served domain with another host type: 409")
    status, _, body = srv.http("PUT", "/api/domains/x.example", {"host_type": "nosuch"}, auth=A)
    t.ok(status == 403 and body.get("field") == "host_type", "an unknown host type: 403")
    status, _, body = srv.http("PUT", "/api/domains/x.example", {}, auth=A)
    t.ok(status == 400 and body.get("field") == "host_type", "no host_type: 400 naming it")
    status, _, _ = srv.http("DELETE", "/api/domains/new.example", {"host_type": "other"}, auth=A)
    t.ok(status == 403, "DELETE naming the wrong host type: 403")
    status, _, _ = srv.http("PUT", "/api/domains/y.example", {"host_type": "default"},
                            auth=("admin", "x"))
    t.ok(status == 401, "PUT with wrong credentials: 401")
    status, _, _ = srv.http("GET", "/api/domains/y.example", auth=A)
    t.ok(status == 404, "and the domain was not added")
    status, _, _ = srv.http("DELETE", "/api/domains/new.example", {"host_type": "default"}, auth=A)
    t.ok(status == 204, "DELETE /domains/new.example: 204")
    status, _, _ = srv.http("GET", "/api/domains/new.example", auth=A)
    t.ok(status == 404, "it is gone")
    status, _, _ = srv.http("GET", "/api/users/new.example", auth=A)
    t.ok(status == 404, "its users are no longer served")
    status, _, body = srv.http("DELETE", "/api/domains/localhost", {"host_type": "default"},
                               auth=A)
    t.ok(status == 403 and "configuration" in body.get("error", ""),
         "DELETE of a domain of the configuration's hosts: 403 (%d %r)" % (status, body))

    # Stored: a restart serves the added domains again, not the removed.
    for d in ("kept.example", "gone.example"):
        status, _, _ = srv.http("PUT", "/api/domains/" + d, {"host_type": "default"}, auth=A)
        t.ok(status == 204, "PUT /domains/%s: 204" % d)
    status, _, _ = srv.http("POST", "/api/users/kept.example",
                            {"username": "kim", "password": "x"}, auth=A)
    t.ok(status == 201, "an account on kept.example")
    status, _, _ = srv.http("DELETE", "/api/domains/gone.example", {"host_type": "default"},
                            auth=A)
    t.ok(status == 204, "DELETE /domains/gone.example: 204")
    srv.restart()
    status, _, body = srv.http("GET", "/api/domains/kept.example", auth=A)
    t.ok(status == 200 and body.get("host_type") == "default",
         "after a restart kept.example is served again (%d %r)" % (status, body))
    status, _, body = srv.http("GET", "/api/users/kept.example", auth=A)
    t.ok(status == 200 and body == ["kim@kept.example"], "with its account (%r)" % body)
    for d in ("gone.example", "new.example"):
        status, _, _ = srv.http("GET", "/api/domains/" + d, auth=A)
        t.ok(status == 404, "and the removed %s is not (%d)" % (d, status))
    status, _, _ = srv.http("GET", "/api/domains/localhost", auth=A)
    t.ok(status == 200, "the configured domain is served as before")
    status, _, _ = srv.http("DELETE", "/api/domains/kept.example", {"host_type": "default"},
                            auth=A)
    t.ok(status == 204, "DELETE /domains/kept.example: 204")
    srv.restart()
    status, _, _ = srv.http("GET", "/api/domains/kept.example", auth=A)
    t.ok(status == 404, "after another restart it stays removed (%d)" % status)


def test_guessing(t):
    # Failed admin logins count in the server's per-address limits on
    # password guessing ([auth], as XMPP logins; loopback is exempt
    # unless throttle_loopback), whichever module's admin endpoint took
    # them: guesses at mod_muc's /mucs back off mod_rest_admin too.
    pwdir = tempfile.mkdtemp(prefix="mk-rest-guess.")
    pwfile = os.path.join(pwdir, "admin-password")
    with open(pwfile, "w") as f:
        f.write("right\n")
    srv = Server({"mod_rest_admin": {"password_file": pwfile},
                  "mod_muc": {"rest_admin_password_file": pwfile}},
                 auth={"throttle_loopback": "true", "address_failures": "3"}, http={})
    try:
        status, _, _ = srv.http("GET", "/api/users/localhost", auth=("admin", "right"))
        t.ok(status == 200, "the right password: 200 (got %d)" % status)
        statuses = [srv.http("POST", "/api/mucs/localhost/team/messages",
                             {"from": "a@localhost/r", "body": "b"},
                             auth=("admin", "guess%d" % i))[0] for i in range(5)]
        t.ok(statuses[:3] == [401, 401, 401] and set(statuses[3:]) <= {401, 429},
             "wrong admin passwords at /api/mucs: 401, then maybe 429 (%r)" % statuses)
        status, _, body = srv.http("GET", "/api/users/localhost", auth=("admin", "right"))
        t.ok(status == 429 and "try later" in body.get("error", ""),
             "then the address backs off for every admin endpoint: even the right password "
             "gets 429 at /api/users (%d)" % status)
        status, _, _ = srv.http("GET", "/api/users/localhost", auth=("admin", "right"))
        t.ok(status == 429, "and again (nothing was forgiven)")
        t.ok("HTTP meerkat admin: failed login from 127.0.0.1" in srv.log_text(),
             "the failures are logged")
    finally:
        srv.stop()
        shutil.rmtree(pwdir, ignore_errors=True)


def test_no_password(t):
    srv = Server({"mod_rest_admin": {}}, http={})
    try:
        status, _, body = srv.http("GET", "/api/users/localhost", auth=("admin", ""))
        t.ok(status == 403, "without a configured password every request is refused (403)")
    finally:
        srv.stop()


# ---- the responses against docs/api-openapi.json -------------------------

RECORDED = resttest.Recorder()


def test_openapi(t):
    # mod_muc_light's room paths are exercised by test-muclight-rest.py,
    # mod_muc's by test-muc-rest.py, mod_global_distrib's by
    # test-global-distrib-rooms.py.
    resttest.check_openapi(
        t, RECORDED,
        lambda tmpl: not tmpl.startswith(("/muc-lights", "/rooms", "/mucs", "/global-distrib")),
        undocumented_ok=True)


def main():
    t = Tap()
    pwdir = tempfile.mkdtemp(prefix="mk-rest.")
    pwfile = os.path.join(pwdir, "admin-password")
    with open(pwfile, "w") as f:
        f.write(A[1] + "\n")
    modules = dict(MODULES)
    modules["mod_rest_admin"] = {"password_file": pwfile}
    srv = Server(modules, http={"max_body_size": 65536})
    RECORDED.wrap(srv)
    try:
        t.run("auth", test_auth, srv)
        t.run("users", test_users, srv)
        t.run("oversize", test_oversize, srv)
        t.run("xmpp", test_xmpp, srv)
        t.run("send errors", test_send_errors, srv)
        t.run("sender removed", test_sender_removed, srv)
        t.run("removal", test_removal, srv)
        t.run("contacts", test_contacts, srv)
        t.run("archive", test_archive, srv)
        t.run("domains", test_domains, srv)
    finally:
        srv.stop()
        shutil.rmtree(pwdir, ignore_errors=True)
    t.run("no password", test_no_password)
    t.run("guessing", test_guessing)
    t.run("openapi", test_openapi)
    t.done()


if __name__ == "__main__":
    main()
