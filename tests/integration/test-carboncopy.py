#!/usr/bin/python3
"""mod_carboncopy (XEP-0280 Message Carbons): enable/disable per resource,
<sent/> and <received/> copies to exactly the resources that should get
them (never to one that got the message itself), private and no-copy,
what is eligible. Prints TAP; ignores --tap."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Server, Tap, dump, error_condition, q  # noqa: E402

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DISCO = "http://jabber.org/protocol/disco#info"
QUIET = 0.5  # how long "gets nothing" waits; sentinels make it exact


def carbon(kind, body=None):
    """A <sent/> or <received/> carbon (of a message with @body)."""
    def pred(e):
        if e.tag != q(NS_CLIENT, "message") or e.find(q(NS_CARBONS, kind)) is None:
            return False
        return body is None or inner(e, kind).findtext(q(NS_CLIENT, "body")) == body
    return pred


def any_carbon(e):
    return carbon("sent")(e) or carbon("received")(e)


def inner(e, kind):
    return e.find("%s/%s/%s" % (q(NS_CARBONS, kind), q(NS_FORWARD, "forwarded"),
                                q(NS_CLIENT, "message")))


def plain(body):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and
                      e.findtext(q(NS_CLIENT, "body")) == body)


def send(c, to, body=None, type="chat", extra=""):
    c.send("<message to='%s'%s>%s%s</message>" % (
        to, " type='%s'" % type if type else "",
        "<body>%s</body>" % body if body is not None else "", extra))


def enable(c, on=True):
    return c.iq("<%s xmlns='%s'/>" % ("enable" if on else "disable", NS_CARBONS), "set")


def next_carbon(c, timeout=3):
    return c.expect(any_carbon, timeout, "a carbon")


def test_enable(t, srv):
    srv.register("eve")
    srv.register("mallory")
    e = Client(srv, "eve")
    res = e.iq("<query xmlns='%s'/>" % NS_DISCO, to="localhost")
    feats = [f.get("var") for f in res.iter(q(NS_DISCO, "feature"))]
    t.ok(NS_CARBONS in feats, "the server announces urn:xmpp:carbons:2 (section 3)")
    t.ok(enable(e).get("type") == "result", "enable is answered with a result (section 4)")
    t.ok(enable(e).get("type") == "result", "a second enable is a no-op with a result")
    t.ok(enable(e, False).get("type") == "result", "disable is answered with a result")
    res = e.iq("<enable xmlns='%s'/>" % NS_CARBONS, "set", to="localhost")
    t.ok(res.get("type") == "result", "enable addressed to the server works too")
    m = Client(srv, "mallory")
    res = m.iq("<enable xmlns='%s'/>" % NS_CARBONS, "set", to="eve@localhost")
    t.ok(res.get("type") == "error" and error_condition(res) == "forbidden",
         "nobody switches carbons for another account: forbidden")
    res = e.iq("<bogus xmlns='%s'/>" % NS_CARBONS, "set")
    t.ok(res.get("type") == "error", "an unknown carbons element is an error")
    e.close()
    m.close()


def test_copies(t, srv):
    srv.register("alice")
    srv.register("bob")
    a1 = Client(srv, "alice", resource="a1")
    a2 = Client(srv, "alice", resource="a2")
    a3 = Client(srv, "alice", resource="a3")  # never enables
    a4 = Client(srv, "alice", resource="a4")  # enables, never available
    b = Client(srv, "bob", resource="b1")
    for c in (a1, a2, a3, b):
        c.presence()
    for c in (a1, a2, a4):
        t.ok(enable(c).get("type") == "result", "%s enables carbons" % c.jid)
    for c in (a1, a2, a3, a4, b):
        c.drain(0.3)

    # Sent (section 7).
    send(a1, "bob@localhost", "s1")
    b.expect(plain("s1"))
    cc = a2.expect(carbon("sent", "s1"))
    msg = inner(cc, "sent")
    t.ok(cc.get("from") == "alice@localhost" and cc.get("to") == a2.jid,
         "a sent carbon comes from the bare JID to the other enabled resource")
    t.ok(msg is not None and msg.get("from") == a1.jid and msg.get("to") == "bob@localhost" and
         msg.get("type") == "chat",
         "it forwards the original with the sender's full JID (XEP-0297): %s" % dump(cc))
    t.ok(a1.maybe(any_carbon, QUIET) is None, "the sending resource gets no carbon of its own")
    t.ok(a3.maybe(any_carbon, QUIET) is None, "a resource that did not enable gets nothing")
    t.ok(a4.maybe(any_carbon, QUIET) is None,
         "an enabled resource without available presence gets nothing")

    # Received, to a full JID (section 6).
    send(b, a1.jid, "r1")
    a1.expect(plain("r1"))
    cc = a2.expect(carbon("received", "r1"))
    msg = inner(cc, "received")
    t.ok(cc.get("from") == "alice@localhost" and msg is not None and
         msg.get("from") == b.jid and msg.get("to") == a1.jid,
         "a message to one full JID is copied as <received/> to the other enabled resource")
    t.ok(a1.maybe(any_carbon, QUIET) is None, "the addressed resource gets no carbon too")
    t.ok(a3.maybe(any_carbon, 0.1) is None, "a resource that did not enable gets nothing")

    # Received, to the bare JID with equal priorities: every one of them
    # gets the message itself, so nobody gets a carbon.
    send(b, "alice@localhost", "r2")
    for c in (a1, a2, a3):
        c.expect(plain("r2"))
    send(b, a3.jid, "sentinel1")  # to a3 only: a1 and a2 get carbons of it
    for c in (a1, a2):
        t.ok(carbon("received", "sentinel1")(next_carbon(c)),
             "no duplicates: %s got the bare-JID message itself and no carbon of it" % c.jid)

    # Received, to the bare JID when one resource has the top priority.
    a1.presence(extra="<priority>5</priority>")
    for c in (a1, a2, a3, b):
        c.drain(0.3)
    send(b, "alice@localhost", "r3")
    a1.expect(plain("r3"))
    t.ok(a2.expect(carbon("received", "r3")) is not None,
         "to the bare JID, the enabled resource the router passes over gets a carbon")
    t.ok(a2.maybe(plain("r3"), QUIET) is None, "and not the message itself")
    t.ok(a1.maybe(any_carbon, 0.1) is None and a3.maybe(any_carbon, 0.1) is None,
         "the resource that got it and the one that did not enable get no carbon")
    a1.presence()
    for c in (a1, a2, a3, b):
        c.drain(0.3)

    # Not copied when sent (sections 6 and 9, XEP-0334).
    send(a1, "bob@localhost", "p1", extra="<private xmlns='%s'/>" % NS_CARBONS)
    send(a1, "bob@localhost", "p2", extra="<no-copy xmlns='urn:xmpp:hints'/>")
    send(a1, "bob@localhost", None, type=None,
         extra="<received xmlns='urn:xmpp:receipts' id='x1'/>")
    send(a1, "bob@localhost", "h1", type="headline")
    send(a1, "bob@localhost", "n1", type=None)
    cc = next_carbon(a2)
    t.ok(carbon("sent", "n1")(cc),
         "private, no-copy, bodiless normal and headline messages get no sent carbon;"
         " a normal message with a body does: %s" % dump(cc))
    p1 = b.expect(plain("p1"))
    t.ok(p1.find(q(NS_CARBONS, "private")) is not None and b.expect(plain("p2")) is not None,
         "private messages still reach the recipient, <private/> left in")

    # Not copied when received.
    send(b, a1.jid, "p3", extra="<private xmlns='%s'/>" % NS_CARBONS)
    send(b, a1.jid, "p4", extra="<no-copy xmlns='urn:xmpp:hints'/>")
    send(b, a1.jid, "e1", type="error")
    send(b, a1.jid, "g1", type="groupchat")
    send(b, a1.jid, "sentinel2")
    cc = next_carbon(a2)
    t.ok(carbon("received", "sentinel2")(cc),
         "private, no-copy, error and groupchat messages get no received carbon: %s" % dump(cc))
    t.ok(a1.expect(plain("p3")) is not None and a1.expect(plain("p4")) is not None,
         "the addressed resource still gets them")

    # Between two resources of the account: nobody's conversation.
    send(a1, a3.jid, "self")
    a3.expect(plain("self"))
    send(a1, "bob@localhost", "sentinel3")
    t.ok(carbon("sent", "sentinel3")(next_carbon(a2)),
         "a message to one's own other resource is not copied")

    # Disabled resources get nothing.
    t.ok(enable(a2, False).get("type") == "result", "a2 disables carbons")
    send(a1, "bob@localhost", "d1")
    send(b, a1.jid, "d2")
    a1.expect(plain("d2"))
    t.ok(a2.maybe(any_carbon, QUIET) is None, "a disabled resource gets no carbons")
    enable(a2)
    send(a1, "bob@localhost", "d3")
    t.ok(carbon("sent", "d3")(next_carbon(a2)), "enabled again, it gets them again")
    for c in (a1, a2, a3, a4, b):
        c.close()


def main():
    t = Tap()
    try:
        srv = Server({"mod_disco": {}, "mod_carboncopy": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_carboncopy starts")
        t.diag(e)
        t.done()
    try:
        t.run("enable", test_enable, srv)
        t.run("copies", test_copies, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
