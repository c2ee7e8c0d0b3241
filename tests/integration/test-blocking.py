#!/usr/bin/python3
"""mod_blocking (XEP-0191): the block list IQs and pushes, enforcement in
both directions for messages, presence and IQs, JID matching, unblock and
unblock-all, persistence across a restart, and (when mod_offline is
built) no offline storage of a blocked contact's message. Prints TAP;
ignores --tap."""
import os
import socket
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, TOP_BUILDDIR, Client, Server, Tap, error_condition,  # noqa: E402
                     is_presence, q)

NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def subscribe_both(srv, a, b):
    """a and b see each other's presence (rows as mod_roster writes them)."""
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10)
    with db:
        for user, contact in ((a, b), (b, a)):
            db.execute("INSERT INTO roster_items (username, domain, contact, subscription)"
                       " VALUES (?, 'localhost', ?, 'both')", (user, contact + "@localhost"))
    db.close()


def items(el, name):
    node = el.find(q(NS_BLOCKING, name))
    if node is None:
        return None
    return sorted(i.get("jid") for i in node.findall(q(NS_BLOCKING, "item")))


def blocklist(c):
    res = c.iq("<blocklist xmlns='%s'/>" % NS_BLOCKING)
    return items(res, "blocklist") if res.get("type") == "result" else None


def block(c, *jids):
    return c.iq("<block xmlns='%s'>%s</block>" % (
        NS_BLOCKING, "".join("<item jid='%s'/>" % j for j in jids)), "set")


def unblock(c, *jids):
    return c.iq("<unblock xmlns='%s'>%s</unblock>" % (
        NS_BLOCKING, "".join("<item jid='%s'/>" % j for j in jids)), "set")


def is_push(name):
    def pred(e):
        return (e.tag == q(NS_CLIENT, "iq") and e.get("type") == "set" and
                e.find(q(NS_BLOCKING, name)) is not None)
    return pred


def is_message(frm, body=None, type=None):
    def pred(e):
        if e.tag != q(NS_CLIENT, "message") or e.get("type") != type:
            return False
        f = e.get("from") or ""
        if f != frm and f.split("/")[0] != frm:
            return False
        b = e.find(q(NS_CLIENT, "body"))
        return body is None or (b is not None and b.text == body)
    return pred


def msg(c, to, body):
    c.send("<message to='%s' type='chat'><body>%s</body></message>" % (to, body))


def online(srv, user, resource="r"):
    c = Client(srv, user, resource=resource)
    blocklist(c)
    c.presence()
    return c


def test_protocol(t, srv):
    srv.register("alice")
    srv.register("bob")
    a1 = Client(srv, "alice", resource="one")
    a2 = Client(srv, "alice", resource="two")
    info = a1.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="localhost")
    t.ok(any(f.get("var") == NS_BLOCKING for f in info.iter(q(NS_DISCO_INFO, "feature"))),
         "disco#info of the server announces urn:xmpp:blocking")
    t.ok(blocklist(a1) == [], "an empty block list at first")
    blocklist(a2)

    res = block(a1)
    t.ok(res.get("type") == "error" and error_condition(res) == "bad-request",
         "a block without items is bad-request")
    res = a1.iq("<block xmlns='%s'><item jid='@@bad'/></block>" % NS_BLOCKING, "set")
    t.ok(res.get("type") == "error" and error_condition(res) == "jid-malformed",
         "a malformed JID is jid-malformed")

    res = block(a1, "bob@localhost", "spam.example")
    t.ok(res.get("type") == "result", "block: result")
    p1 = a1.expect(is_push("block"), what="block push on one")
    p2 = a2.expect(is_push("block"), what="block push on two")
    t.ok(items(p1, "block") == ["bob@localhost", "spam.example"] and
         items(p2, "block") == ["bob@localhost", "spam.example"],
         "the block push reaches both resources that asked for the list")
    t.ok(blocklist(a2) == ["bob@localhost", "spam.example"], "the list shows both items")

    # A resource that never asked for the list gets no push.
    a3 = Client(srv, "alice", resource="three")
    block(a1, "x@spam2.example")
    a2.expect(is_push("block"), what="push")
    t.ok(a3.maybe(is_push("block"), 0.5) is None, "no push to a resource that did not ask")
    unblock(a1, "x@spam2.example", "spam.example")
    p = a2.expect(is_push("unblock"), what="unblock push")
    t.ok(items(p, "unblock") == ["spam.example", "x@spam2.example"], "unblock push lists the items")
    t.ok(blocklist(a1) == ["bob@localhost"], "unblocked items leave the list")
    for c in (a1, a2, a3):
        c.close()


def test_messages_iq(t, srv):
    srv.register("carol")
    srv.register("dave")
    c = online(srv, "carol")
    d = online(srv, "dave")
    block(c, "dave@localhost")
    c.drain()
    d.drain()

    msg(d, "carol@localhost", "hello")
    err = d.expect(is_message("carol@localhost", type="error"), what="an error")
    t.ok(error_condition(err) == "service-unavailable",
         "a blocked contact's message bounces with service-unavailable")
    t.ok(c.maybe(is_message("dave@localhost"), 0.5) is None, "and does not reach the user")

    msg(c, "dave@localhost", "hi")
    err = c.expect(is_message("dave@localhost", type="error"), what="an error")
    e = err.find(q(NS_CLIENT, "error"))
    t.ok(error_condition(err) == "not-acceptable" and e is not None and
         e.find(q(NS_BLOCKING_ERRORS, "blocked")) is not None,
         "the user's message to the blocked contact: not-acceptable + <blocked/>")
    t.ok(d.maybe(is_message("carol@localhost"), 0.5) is None, "and it is not delivered")

    d.send("<iq type='get' id='v1' to='%s'><query xmlns='jabber:iq:version'/></iq>" % c.jid)
    err = d.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "v1", what="iq")
    t.ok(err.get("type") == "error" and error_condition(err) == "service-unavailable",
         "an IQ from the blocked contact gets service-unavailable")
    t.ok(c.maybe(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "v1", 0.5) is None,
         "and does not reach the user")

    # Full-JID items cover only that resource.
    unblock(c, "dave@localhost")
    block(c, "dave@localhost/other")
    msg(d, "carol@localhost", "through")
    t.ok(c.expect(is_message("dave@localhost", "through", "chat")) is not None,
         "a full-JID item leaves the contact's other resources through")
    d2 = Client(srv, "dave", resource="other")
    d2.presence()
    msg(d2, "carol@localhost", "stopped")
    t.ok(d2.expect(is_message("carol@localhost", type="error")) is not None and
         c.maybe(is_message("dave@localhost", "stopped", "chat"), 0.5) is None,
         "but stops the blocked resource")

    # Unblock-all restores delivery.
    block(c, "dave@localhost")
    c.drain()
    res = c.iq("<unblock xmlns='%s'/>" % NS_BLOCKING, "set")
    p = c.expect(is_push("unblock"), what="unblock-all push")
    t.ok(res.get("type") == "result" and items(p, "unblock") == [],
         "unblock-all: result and an empty unblock push")
    t.ok(blocklist(c) == [], "unblock-all empties the list")
    msg(d, "carol@localhost", "back")
    t.ok(c.expect(is_message("dave@localhost", "back", "chat")) is not None,
         "after unblock-all the contact's messages arrive again")
    msg(c, "dave@localhost", "yes")
    t.ok(d.expect(is_message("carol@localhost", "yes", "chat")) is not None,
         "and the user's messages go out again")
    for x in (c, d, d2):
        x.close()


def test_presence(t, srv):
    srv.register("erin")
    srv.register("frank")
    subscribe_both(srv, "erin", "frank")
    f = online(srv, "frank")
    e = online(srv, "erin")
    f.expect(is_presence(None, "erin@localhost"), what="erin's presence")
    e.expect(is_presence(None, "frank@localhost"), what="frank's presence")
    f.drain(0.2)

    block(e, "frank@localhost")
    p = f.expect(is_presence("unavailable", "erin@localhost"), what="unavailable")
    t.ok(p.get("from") == e.jid, "blocking sends unavailable to the blocked subscriber")
    f.drain(0.2)
    e.drain(0.2)

    f.presence(extra="<show>away</show>")
    t.ok(e.maybe(is_presence(None, "frank@localhost"), 0.7) is None,
         "the blocked contact's presence does not arrive")
    f.presence(to="erin@localhost")
    t.ok(e.maybe(is_presence(None, "frank@localhost"), 0.5) is None,
         "nor its directed presence")
    e.presence(extra="<show>dnd</show>")
    t.ok(f.maybe(is_presence(None, "erin@localhost"), 0.7) is None,
         "the user's presence broadcast skips the blocked contact")

    unblock(e, "frank@localhost")
    p = f.expect(is_presence(None, "erin@localhost"), what="erin's presence after unblock")
    show = p.find(q(NS_CLIENT, "show"))
    t.ok(show is not None and show.text == "dnd",
         "unblocking sends the user's current presence to the subscriber")
    f.presence(extra="<show>chat</show>")
    t.ok(e.expect(is_presence(None, "frank@localhost")) is not None,
         "and the contact's presence arrives again")
    e.close()
    f.close()


def test_persistence(t, srv):
    srv.register("gina")
    srv.register("hank")
    g = online(srv, "gina")
    block(g, "hank@localhost", "evil.example")
    g.close()
    srv.restart()
    g = online(srv, "gina")
    t.ok(blocklist(g) == ["evil.example", "hank@localhost"], "the list survives a restart")
    h = online(srv, "hank")
    msg(h, "gina@localhost", "after restart")
    t.ok(h.expect(is_message("gina@localhost", type="error")) is not None and
         g.maybe(is_message("hank@localhost"), 0.5) is None,
         "and is enforced after the restart")
    g.close()
    h.close()


def test_offline(t):
    if not os.path.exists(os.path.join(TOP_BUILDDIR, "modules", ".libs", "mod_offline.so")):
        t.ok(True, "# SKIP mod_offline is not built")
        return
    srv = Server({"mod_roster": {}, "mod_blocking": {}, "mod_offline": {}})
    try:
        srv.register("ivy")
        srv.register("jack")
        srv.register("kate")
        i = online(srv, "ivy")
        block(i, "jack@localhost")
        i.close()
        time.sleep(0.3)
        j = online(srv, "jack")
        k = online(srv, "kate")
        msg(j, "ivy@localhost", "stored?")
        err = j.expect(is_message("ivy@localhost", type="error"), what="an error")
        t.ok(error_condition(err) == "service-unavailable",
             "a blocked contact's message to an offline user bounces")
        msg(k, "ivy@localhost", "stored")
        time.sleep(0.5)
        i = Client(srv, "ivy")
        i.presence()
        t.ok(i.expect(is_message("kate@localhost", "stored", "chat")) is not None,
             "an unblocked contact's offline message is delivered at login")
        t.ok(i.maybe(is_message("jack@localhost"), 0.7) is None,
             "the blocked contact's message was not stored")
        for c in (i, j, k):
            c.close()
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()


def main():
    t = Tap()
    try:
        srv = Server({"mod_roster": {}, "mod_disco": {}, "mod_blocking": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_blocking starts")
        t.diag(e)
        t.done()
    try:
        t.run("protocol", test_protocol, srv)
        t.run("messages and iq", test_messages_iq, srv)
        t.run("presence", test_presence, srv)
        t.run("persistence", test_persistence, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.run("offline", test_offline)
    t.done()


if __name__ == "__main__":
    main()
