#!/usr/bin/python3
"""mod_rest_client over real HTTP against a running meerkatd: a user's own
REST API with Basic auth as user@domain (checked against the stored SCRAM
keys; wrong or unknown credentials get 401 and change nothing, and
count against the XMPP login limits: 429 in backoff), sending
a message that a real XMPP client receives, reading the archive, the
contacts, and GET /api/sse streaming incoming messages (from REST and
from XMPP) with its per-user cap, and one still open when the server
stops (it ends, and meerkatd exits cleanly). The listener serves this module only
(`modules`), as the admin API's paths overlap. Prints TAP; ignores --tap."""
import base64
import http.client
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Server, Tap, q  # noqa: E402

ALICE = ("alice@localhost", "alice pw")
BOB = ("bob@localhost", "bob pw")


def test_auth(t, srv):
    for auth, what in ((None, "no credentials"), (("alice@localhost", "wrong"), "a wrong password"),
                       (("nobody@localhost", "x"), "an unknown user"),
                       (("alice@elsewhere.example", ALICE[1]), "a domain not served"),
                       (("alice", ALICE[1]), "a user without domain")):
        status, headers, _ = srv.http("POST", "/api/messages",
                                      {"to": "bob@localhost", "body": "intruder"}, auth=auth)
        t.ok(status == 401 and "www-authenticate" in headers,
             "%s: 401 with WWW-Authenticate (got %d)" % (what, status))


def test_messages(t, srv):
    bob = Client(srv, "bob", BOB[1])
    bob.presence()
    status, _, body = srv.http("POST", "/api/messages", {"to": "bob@localhost", "body": "hey"},
                               auth=ALICE)
    t.ok(status == 200 and body.get("id"), "POST /api/messages: 200 with the message id")
    msg = bob.expect(lambda e: e.tag == q(NS_CLIENT, "message"), what="alice's message")
    t.ok(msg.get("from") == "alice@localhost" and msg.findtext(q(NS_CLIENT, "body")) == "hey",
         "bob's XMPP client receives it from alice@localhost")
    t.ok(bob.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and
                   e.findtext(q(NS_CLIENT, "body")) == "intruder", 0.5) is None,
         "none of the refused requests delivered anything")
    status, _, body = srv.http("POST", "/api/messages", {"to": "bob@localhost"}, auth=ALICE)
    t.ok(status == 400 and body.get("field") == "body", "no body: 400 naming it")
    deadline = time.time() + 10
    while time.time() < deadline:
        status, _, body = srv.http("GET", "/api/messages/bob@localhost", auth=ALICE)
        if status == 200 and body:
            break
        time.sleep(0.05)
    t.ok(status == 200 and [(m["from"], m["to"], m["body"]) for m in body] ==
         [("alice@localhost", "bob@localhost", "hey")],
         "GET /api/messages/bob@localhost: alice's archive with bob (%r)" % body)
    status, _, body = srv.http("GET", "/api/messages?limit=5", auth=BOB)
    t.ok(status == 200 and [m["body"] for m in body] == ["hey"], "bob's whole archive has it")
    status, _, body = srv.http("GET", "/api/messages?limit=-1", auth=BOB)
    t.ok(status == 400 and body.get("field") == "limit", "limit=-1: 400 naming it")
    bob.close()


def test_contacts(t, srv):
    status, _, _ = srv.http("POST", "/api/contacts", {"jid": "carol@localhost"}, auth=ALICE)
    t.ok(status == 204, "POST /api/contacts: 204")
    status, _, body = srv.http("GET", "/api/contacts", auth=ALICE)
    t.ok(status == 200 and body == [{"jid": "carol@localhost", "subscription": "none",
                                     "ask": "none"}], "GET /api/contacts lists carol (%r)" % body)
    status, _, _ = srv.http("PUT", "/api/contacts/carol@localhost", {"action": "invite"},
                            auth=ALICE)
    t.ok(status == 204, "PUT /api/contacts/carol {invite}: 204")
    status, _, _ = srv.http("PUT", "/api/contacts/dan@localhost", {"action": "invite"},
                            auth=ALICE)
    t.ok(status == 404, "inviting someone not in the roster: 404")
    status, _, _ = srv.http("DELETE", "/api/contacts/carol@localhost", auth=ALICE)
    t.ok(status == 204, "DELETE /api/contacts/carol: 204")
    status, _, body = srv.http("GET", "/api/contacts", auth=ALICE)
    t.ok(body == [], "the roster is empty again")
    status, _, _ = srv.http("POST", "/api/contacts", {"jid": "carol@localhost"},
                            auth=("alice@localhost", "bad"))
    status2, _, body = srv.http("GET", "/api/contacts", auth=ALICE)
    t.ok(status == 401 and body == [], "a refused POST left the roster unchanged")


OPEN = []


class Sse:
    """GET /api/sse read incrementally."""

    def __init__(self, srv, auth):
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
        token = base64.b64encode(("%s:%s" % auth).encode()).decode()
        self.conn.request("GET", "/api/sse", headers={"Authorization": "Basic " + token})
        self.resp = self.conn.getresponse()
        self.buf = b""

    def next_event(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            while b"\n\n" in self.buf:
                block, self.buf = self.buf.split(b"\n\n", 1)
                lines = block.decode().split("\n")
                if any(line.startswith("event: message") for line in lines):
                    data = [line[6:] for line in lines if line.startswith("data: ")]
                    return json.loads(data[0])
            chunk = self.resp.fp.read1(4096) if hasattr(self.resp.fp, "read1") else \
                self.resp.read(1)
            if not chunk:
                return None
            self.buf += chunk
        return None

    def close(self):
        self.conn.close()


def test_sse(t, srv):
    sse = Sse(srv, BOB)
    t.ok(sse.resp.status == 200 and
         sse.resp.getheader("Content-Type", "").startswith("text/event-stream"),
         "GET /api/sse: 200 text/event-stream")
    srv.http("POST", "/api/messages", {"to": "bob@localhost", "body": "over sse"}, auth=ALICE)
    ev = sse.next_event()
    t.ok(ev is not None and ev["body"] == "over sse" and ev["from"] == "alice@localhost",
         "a message sent by REST arrives as an event (%r)" % ev)
    alice = Client(srv, "alice", ALICE[1])
    alice.send("<message to='bob@localhost' type='chat' id='x1'><body>from xmpp</body></message>")
    ev = sse.next_event()
    t.ok(ev is not None and ev["body"] == "from xmpp" and ev["id"] == "x1",
         "a message from an XMPP client arrives as an event")
    status, _, body = srv.http("GET", "/api/sse", auth=BOB)
    t.ok(status == 429, "a second stream past max_sse_streams = 1: 429 (got %d)" % status)
    status, _, _ = srv.http("GET", "/api/sse", auth=("bob@localhost", "no"))
    t.ok(status == 401, "a stream with wrong credentials: 401")
    alice.close()
    # Left open: the server must end it at shutdown and still exit cleanly.
    OPEN.append(sse)


def test_throttled(t):
    # The login limits of XMPP logins (docs/security.md) count REST
    # failures too; loopback is exempt unless throttle_loopback.
    srv = Server({"mod_rest_client": {}}, auth={"throttle_loopback": "true",
                                                "address_failures": "3"}, http={})
    try:
        srv.register("alice", ALICE[1])
        statuses = [srv.http("GET", "/api/contacts", auth=("alice@localhost", "bad%d" % i))[0]
                    for i in range(3)]
        t.ok(statuses == [401, 401, 401], "three wrong passwords: 401 each")
        status, _, body = srv.http("GET", "/api/contacts", auth=ALICE)
        t.ok(status == 429, "then even the right one is refused while the address backs off: "
             "429 (got %d %r)" % (status, body))
        try:
            Client(srv, "alice", ALICE[1])
            xmpp_ok = True
        except RuntimeError:
            xmpp_ok = False
        t.ok(not xmpp_ok, "the same limits hold for an XMPP login from that address")
    finally:
        srv.stop()


def main():
    t = Tap()
    srv = Server({"mod_rest_client": {"max_sse_streams": 1}, "mod_roster": {},
                  "mod_mam": {"flush_interval_ms": 10}},
                 http={"modules": "mod_rest_client"})
    try:
        srv.register("alice", ALICE[1])
        srv.register("bob", BOB[1])
        srv.register("carol")
        t.run("auth", test_auth, srv)
        t.run("messages", test_messages, srv)
        t.run("contacts", test_contacts, srv)
        t.run("sse", test_sse, srv)
    finally:
        srv.stop()
    t.run("throttled", test_throttled)
    for sse in OPEN:
        t.ok(sse.next_event(5) is None, "the open event stream ended with the server")
        sse.close()
    t.done()


if __name__ == "__main__":
    main()
