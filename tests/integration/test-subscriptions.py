#!/usr/bin/python3
"""mod_roster: presence subscriptions between two local users (RFC 6121
section 3) and presence that depends on them (section 4): the full
handshake seen from both ends, presence to subscribers, probes answered
after subscription and not before, unavailable on logout, pending-in
requests redelivered at login, pre-approval, and removal ending both
subscriptions. Prints TAP; ignores --tap."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, NS_ROSTER, Client, Server, Tap, is_presence, online,  # noqa: E402,E501
                     q, roster_item)


def test_handshake(t, srv):
    srv.register("alice")
    srv.register("bob")
    a = online(srv, "alice", "home")
    b = online(srv, "bob", "desk")
    a.drain()
    b.drain()

    a.presence("subscribe", "bob@localhost")
    item, _ = a.expect_push("bob@localhost")
    t.ok(item.get("subscription") == "none" and item.get("ask") == "subscribe",
         "alice's push: bob, none + ask='subscribe'")
    req = b.expect(is_presence("subscribe", "alice@localhost"), what="subscribe")
    t.ok(req.get("from") == "alice@localhost", "bob receives subscribe from alice's bare JID")

    b.presence("subscribed", "alice@localhost")
    item, _ = b.expect_push("alice@localhost")
    t.ok(item.get("subscription") == "from", "bob's push: alice, subscription='from'")
    sub = a.maybe(is_presence("subscribed", "bob@localhost"), 5)
    t.ok(sub is not None and sub.get("from") == "bob@localhost",
         "alice receives subscribed from bob's bare JID")
    item, _ = a.expect_push("bob@localhost")
    t.ok(item.get("subscription") == "to" and item.get("ask") is None,
         "alice's push: bob, subscription='to', no ask")
    p = a.expect(is_presence(None, "bob@localhost"), what="bob's presence")
    t.ok(p.get("from") == "bob@localhost/desk",
         "alice receives bob's current presence after the approval")

    # The other direction, and both rosters end at 'both'.
    b.presence("subscribe", "alice@localhost")
    b.expect_push("alice@localhost")
    a.expect(is_presence("subscribe", "bob@localhost"))
    a.presence("subscribed", "bob@localhost")
    item_a, _ = a.expect_push("bob@localhost")
    b.expect(is_presence("subscribed", "alice@localhost"))
    item_b, _ = b.expect_push("alice@localhost")
    t.ok(item_a.get("subscription") == "both" and item_b.get("subscription") == "both",
         "both pushes show subscription='both'")
    b.expect(is_presence(None, "alice@localhost"), what="alice's presence")
    ra = roster_item(a.roster_get(), "bob@localhost")
    rb = roster_item(b.roster_get(), "alice@localhost")
    t.ok(ra is not None and ra.get("subscription") == "both" and rb is not None and
         rb.get("subscription") == "both", "both rosters say 'both'")

    # Presence changes reach the subscriber from the full JID.
    a.drain(0.1)
    b.drain(0.1)
    a.presence(extra="<show>away</show><status>lunch</status>")
    p = b.expect(is_presence(None, "alice@localhost"), what="alice's new presence")
    show = p.find(q(NS_CLIENT, "show"))
    t.ok(p.get("from") == "alice@localhost/home" and show is not None and show.text == "away",
         "a presence change reaches the subscriber")

    # Logout: the subscriber sees unavailable.
    a.close()
    p = b.expect(is_presence("unavailable", "alice@localhost"), what="unavailable")
    t.ok(p.get("from") == "alice@localhost/home", "logout sends unavailable to the subscriber")

    # Login again: the probe of bob is answered with bob's presence, and
    # bob sees alice come back.
    a = Client(srv, "alice", resource="phone")
    a.presence()
    p = a.expect(is_presence(None, "bob@localhost"), what="probe answer")
    t.ok(p.get("from") == "bob@localhost/desk", "initial presence probes: bob's presence arrives")
    p = b.expect(is_presence(None, "alice@localhost"), what="alice back")
    t.ok(p.get("from") == "alice@localhost/phone", "bob sees alice's new resource")

    # A stranger's probe gets nothing.
    srv.register("gina")
    g = Client(srv, "gina")
    g.presence()
    g.drain(0.2)
    g.presence("probe", "alice@localhost")
    t.ok(g.maybe(is_presence(None, "alice@localhost"), 1.0) is None,
         "a probe from a non-subscriber is not answered with presence")
    g.close()

    # Removing the item ends both subscriptions (RFC 6121 2.5.2).
    b.drain(0.1)
    a.roster_get()
    a.iq("<query xmlns='%s'><item jid='bob@localhost' subscription='remove'/></query>"
         % NS_ROSTER, "set")
    item, _ = a.expect_push("bob@localhost")
    t.ok(item.get("subscription") == "remove", "alice's push: bob removed")
    unsub = b.maybe(is_presence("unsubscribe", "alice@localhost"), 5)
    unsubd = b.maybe(is_presence("unsubscribed", "alice@localhost"), 5)
    t.ok(unsub is not None and unsubd is not None,
         "bob receives unsubscribe and unsubscribed")
    seen = []
    for _ in range(2):
        item, _ = b.expect_push("alice@localhost")
        seen.append(item.get("subscription"))
    t.ok(seen[-1] == "none", "bob's roster ends at subscription='none' (pushes: %s)" % seen)
    p = b.expect(is_presence("unavailable", "alice@localhost"), what="unavailable after removal")
    t.ok(p.get("from") == "alice@localhost/phone", "bob receives alice's unavailable")
    a.close()
    b.close()


def test_pending_in(t, srv):
    srv.register("carol")
    srv.register("dave")
    d = online(srv, "dave")
    d.drain()
    d.presence("subscribe", "carol@localhost")  # carol is offline
    d.expect_push("carol@localhost")

    c = Client(srv, "carol")
    res = c.roster_get()
    t.ok(roster_item(res, "dave@localhost") is None,
         "a pending request is not a roster item")
    t.ok(c.maybe(is_presence("subscribe"), 0.5) is None,
         "no request before initial presence")
    c.presence()
    req = c.expect(is_presence("subscribe", "dave@localhost"), what="stored request")
    t.ok(req.get("from") == "dave@localhost", "the stored request is delivered at initial presence")

    c.presence("subscribed", "dave@localhost")
    item, _ = c.expect_push("dave@localhost")
    t.ok(item.get("subscription") == "from", "approving adds dave with subscription='from'")
    d.expect(is_presence("subscribed", "carol@localhost"))
    item, _ = d.expect_push("carol@localhost")
    t.ok(item.get("subscription") == "to", "dave's roster: carol, 'to'")

    # Denial of a second request leaves no trace.
    srv.register("hank")
    h = online(srv, "hank")
    h.presence("subscribe", "carol@localhost")
    h.expect_push("carol@localhost")  # its own ask='subscribe'
    c.expect(is_presence("subscribe", "hank@localhost"))
    c.presence("unsubscribed", "hank@localhost")
    h.expect(is_presence("unsubscribed", "carol@localhost"), what="denial")
    item, _ = h.expect_push("carol@localhost")
    t.ok(item.get("subscription") == "none" and item.get("ask") is None,
         "a denied request: hank's item back to none without ask")
    t.ok(roster_item(c.roster_get(), "hank@localhost") is None,
         "a denied request leaves nothing in carol's roster")
    for x in (c, d, h):
        x.close()


def test_preapproval(t, srv):
    srv.register("erin")
    srv.register("frank")
    e = online(srv, "erin")
    f = online(srv, "frank")
    e.drain()
    f.drain()

    e.presence("subscribed", "frank@localhost")
    item, _ = e.expect_push("frank@localhost")
    t.ok(item.get("approved") == "true" and item.get("subscription") == "none",
         "pre-approval: erin's item for frank has approved='true'")
    t.ok(f.maybe(is_presence("subscribed", "erin@localhost"), 0.7) is None,
         "a pre-approval is not sent to the contact")

    f.presence("subscribe", "erin@localhost")
    auto = f.maybe(is_presence("subscribed", "erin@localhost"), 5)
    t.ok(auto is not None and auto.get("from") == "erin@localhost",
         "frank's request is approved automatically")
    item = None
    for _ in range(2):
        item, _ = f.expect_push("erin@localhost")
        if item.get("subscription") == "to":
            break
    t.ok(item.get("subscription") == "to", "frank's roster: erin, 'to'")
    item, _ = e.expect_push("frank@localhost")
    t.ok(item.get("subscription") == "from" and item.get("approved") is None,
         "erin's roster: frank, 'from', approval used up")
    t.ok(e.maybe(is_presence("subscribe", "frank@localhost"), 0.7) is None,
         "erin is not asked")
    p = f.expect(is_presence(None, "erin@localhost"), what="erin's presence")
    t.ok(p.get("from") == "erin@localhost/r", "frank receives erin's presence")
    e.close()
    f.close()


def main():
    t = Tap()
    try:
        srv = Server({"mod_roster": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_roster starts")
        t.diag(e)
        t.done()
    try:
        t.run("handshake", test_handshake, srv)
        t.run("pending in", test_pending_in, srv)
        t.run("pre-approval", test_preapproval, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
