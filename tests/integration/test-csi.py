#!/usr/bin/python3
"""mod_csi: Client State Indication (XEP-0352). The feature after login;
while the client is inactive a contact's presence changes are held and
only the latest per sender full JID arrives, after <active/>; a message
with a body arrives at once, and first releases what is held from the
same sender (order per sender is kept); chat-state notifications wait;
queue_max releases everything; a stream that resumes the session
(XEP-0198) starts active. Prints TAP; ignores --tap."""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Server, Tap, q  # noqa: E402

NS_CSI = "urn:xmpp:csi:0"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_SM = "urn:xmpp:sm:3"
QUEUE_MAX = 4


def presence_from(frm, show=None):
    def pred(e):
        if e.tag != q(NS_CLIENT, "presence") or e.get("type") is not None:
            return False
        if e.get("from") != frm:
            return False
        return show is None or e.findtext(q(NS_CLIENT, "show")) == show
    return pred


def message_from(frm, body=None, chatstate=None):
    def pred(e):
        if e.tag != q(NS_CLIENT, "message") or (e.get("from") or "").split("/")[0] != frm:
            return False
        if body is not None and e.findtext(q(NS_CLIENT, "body")) != body:
            return False
        if chatstate is not None and e.find(q(NS_CHATSTATES, chatstate)) is None:
            return False
        return True
    return pred


def befriend(srv, a, b):
    """A mutual subscription, written as mod_roster stores it."""
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10)
    with db:
        for user, contact in ((a, b), (b, a)):
            db.execute("INSERT INTO roster_items (username, domain, contact, subscription)"
                       " VALUES (?, 'localhost', ?, 'both')", (user, contact + "@localhost"))
    db.close()


def set_state(c, state):
    c.send("<%s xmlns='%s'/>" % (state, NS_CSI))
    # An IQ answered after the state element proves it was processed.
    c.iq("<query xmlns='jabber:iq:roster'/>")


def test_csi(t, srv):
    a = Client(srv, "alice", resource="phone")
    t.ok(a.features.find(q(NS_CSI, "csi")) is not None, "the csi feature is offered after SASL")
    a.roster_get()
    a.presence()
    b = Client(srv, "bob", resource="desk")
    b.roster_get()
    b.presence()
    a.expect(presence_from("bob@localhost/desk"), what="bob's initial presence")
    carol = Client(srv, "carol", resource="c")
    a.drain()

    set_state(a, "inactive")
    b.presence(extra="<show>away</show>")
    b.presence(extra="<show>xa</show>")
    b.presence(extra="<show>dnd</show><status>latest</status>")
    carol.send("<message to='alice@localhost/phone' type='chat'><body>hi</body></message>")
    t.ok(a.maybe(message_from("carol@localhost", body="hi"), 3) is not None,
         "a message with a body arrives at once while inactive")
    t.ok(a.maybe(presence_from("bob@localhost/desk"), 1.0) is None,
         "bob's presence changes are not delivered while inactive")

    carol.send("<message to='alice@localhost/phone' type='chat'>"
               "<composing xmlns='%s'/></message>" % NS_CHATSTATES)
    t.ok(a.maybe(message_from("carol@localhost", chatstate="composing"), 1.0) is None,
         "a chat-state notification waits while inactive")

    a.send("<active xmlns='%s'/>" % NS_CSI)
    p = a.maybe(presence_from("bob@localhost/desk"), 3)
    t.ok(p is not None and p.findtext(q(NS_CLIENT, "show")) == "dnd" and
         p.findtext(q(NS_CLIENT, "status")) == "latest",
         "after <active/> bob's latest presence arrives")
    t.ok(a.maybe(presence_from("bob@localhost/desk"), 1.0) is None,
         "and only the latest one (the earlier two were dropped)")
    t.ok(a.maybe(message_from("carol@localhost", chatstate="composing"), 2) is not None,
         "the held chat state arrives too")

    # A message from a sender whose presence is held: presence first.
    set_state(a, "inactive")
    a.drain()
    # Directed presence: routed in order with the message (broadcast
    # presence goes through mod_roster's storage first and may come later).
    b.presence(to="alice@localhost/phone", extra="<show>chat</show>")
    b.send("<message to='alice@localhost/phone' type='chat'><body>ordered</body></message>")
    msg = a.maybe(message_from("bob@localhost", body="ordered"), 3)
    got = list(a.backlog)
    held = [e for e in got if presence_from("bob@localhost/desk", "chat")(e)]
    t.ok(msg is not None and len(held) == 1,
         "a message releases its sender's held presence first (order per sender kept)")

    # queue_max: the queue is written out when full, still inactive.
    a.drain()
    for i in range(QUEUE_MAX):
        carol.send("<message to='alice@localhost/phone' type='chat' id='cs%d'>"
                   "<paused xmlns='%s'/></message>" % (i, NS_CHATSTATES))
    got = 0
    for _ in range(QUEUE_MAX):
        if a.maybe(message_from("carol@localhost", chatstate="paused"), 3) is not None:
            got += 1
    t.ok(got == QUEUE_MAX, "queue_max (%d) held stanzas are written at once (%d)"
         % (QUEUE_MAX, got))
    a.send("<active xmlns='%s'/>" % NS_CSI)
    for c in (a, b, carol):
        c.close()


def test_resume(t, srv):
    """The client state belongs to the stream (XEP-0352): a stream that
    resumes the session by XEP-0198 starts active, and what was held for
    the inactive one (also while detached) is written after <resumed/>."""
    d = Client(srv, "dora", resource="phone")
    d.roster_get()
    d.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    previd = d.expect(lambda e: e.tag == q(NS_SM, "enabled"), what="enabled").get("id")
    d.presence()
    e = Client(srv, "eli", resource="desk")
    e.roster_get()
    e.presence()
    d.expect(presence_from("eli@localhost/desk"), what="eli's presence")
    set_state(d, "inactive")
    e.presence(extra="<show>away</show><status>before the drop</status>")
    t.ok(d.maybe(presence_from("eli@localhost/desk", "away"), 1.0) is None,
         "inactive: eli's presence change is held")
    d.drop()
    e.presence(extra="<show>dnd</show><status>while detached</status>")
    e.iq("<query xmlns='jabber:iq:roster'/>")  # the presence went out
    r = Client(srv, "dora", bind=False)
    # Nothing acknowledged: everything written so far comes again, which
    # is not what this test looks at.
    r.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    r.expect(lambda e: e.tag == q(NS_SM, "resumed"), what="resumed")
    p = r.maybe(presence_from("eli@localhost/desk", "dnd"), 3)
    t.ok(p is not None and p.findtext(q(NS_CLIENT, "status")) == "while detached",
         "after the resume, without <active/>, eli's latest held presence arrives")
    t.ok(r.maybe(presence_from("eli@localhost/desk", "away"), 0.5) is None,
         "and only the latest one")
    e.presence(extra="<show>chat</show><status>after the resume</status>")
    t.ok(r.maybe(presence_from("eli@localhost/desk", "chat"), 3) is not None,
         "the resumed stream is active: a presence change arrives at once")
    for c in (r, e):
        c.close()


def main():
    t = Tap()
    try:
        srv = Server({"mod_roster": {}, "mod_csi": {"queue_max": QUEUE_MAX},
                      "mod_stream_management": {"resume_timeout": 10}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_csi starts")
        t.diag(e)
        t.done()
    try:
        for user in ("alice", "bob", "carol", "dora", "eli"):
            srv.register(user)
        befriend(srv, "alice", "bob")
        befriend(srv, "dora", "eli")
        t.run("csi", test_csi, srv)
        t.run("resume", test_resume, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
