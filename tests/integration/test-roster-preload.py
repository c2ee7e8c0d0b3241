#!/usr/bin/python3
"""mod_roster: the roster read at authentication (the core's auth_preload
hook) answers the first roster get and the initial presence of a session
without a storage round trip, and is not used once a roster write for the
same user came in between: the answer must be what the database says
then. Prints TAP; ignores --tap."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Client, Server, Tap, is_presence, online, roster_item, subscribe  # noqa: E402,E501


def log_has(srv, text):
    return text in srv.log_text(tail=1000000)


def test_fresh(t, srv):
    srv.register("alice")
    srv.register("bob")
    a = online(srv, "alice", "one")
    b = online(srv, "bob", "desk")
    subscribe(a, b)
    subscribe(b, a)
    a.close()
    b.expect(is_presence("unavailable", "alice@localhost"))
    b.drain(0.2)

    # A new login: roster get and initial presence come from the read at
    # authentication (the log says so) and say what the database says.
    a = Client(srv, "alice", resource="two")
    res = a.roster_get()
    item = roster_item(res, "bob@localhost")
    t.ok(item is not None and item.get("subscription") == "both",
         "roster get at login: bob, subscription='both'")
    ver = res.find("{jabber:iq:roster}query").get("ver")
    t.ok(log_has(srv, "roster get of alice@localhost/two from the roster read at authentication"),
         "the roster get was answered from the roster read at authentication")
    a.presence()
    p = b.expect(is_presence(None, "alice@localhost"), what="alice's initial presence")
    t.ok(p.get("from") == "alice@localhost/two", "bob receives alice's initial presence")
    p = a.expect(is_presence(None, "bob@localhost"), what="probe answer")
    t.ok(p.get("from") == "bob@localhost/desk", "alice's initial presence probed bob")
    t.ok(log_has(srv, "initial presence of alice@localhost/two from the roster read at "
                      "authentication"),
         "the initial presence used the roster read at authentication")
    # Versioning (RFC 6121 2.6.3) from the read at authentication too.
    a3 = Client(srv, "alice", resource="three")
    res = a3.roster_get(ver=ver)
    t.ok(res.get("type") == "result" and len(res) == 0,
         "roster get with the current version: an empty result")
    a3.close()
    a.close()
    b.close()


def test_stale(t, srv):
    srv.register("carol")
    srv.register("dave")
    c1 = online(srv, "carol", "one")
    d = online(srv, "dave", "desk")
    subscribe(c1, d)
    subscribe(d, c1)
    c1.drain(0.2)
    d.drain(0.2)

    # carol/two authenticates and binds while dave is in her roster...
    c2 = Client(srv, "carol", resource="two")
    # ... then carol/one removes him before carol/two asks for anything.
    c1.iq("<query xmlns='jabber:iq:roster'><item jid='dave@localhost' subscription='remove'/>"
          "</query>", type="set")
    c1.expect_push("dave@localhost")
    d.expect(is_presence("unavailable", "carol@localhost"), what="carol/one's unavailable")
    d.drain(0.3)

    res = c2.roster_get()
    t.ok(res.get("type") == "result" and roster_item(res, "dave@localhost") is None,
         "roster get after the removal: dave is gone (not the roster read at login)")
    t.ok(log_has(srv, "roster get of carol@localhost/two: the roster read at authentication "
                      "is stale"),
         "the stale read was noticed")
    c2.presence()
    t.ok(d.maybe(is_presence(None, "carol@localhost"), 1.0) is None,
         "dave does not receive carol/two's initial presence")
    t.ok(c2.maybe(is_presence(None, "dave@localhost"), 0.5) is None,
         "carol/two does not probe dave")
    c1.close()
    c2.close()
    d.close()


def test_presence_without_get(t, srv):
    """The bench's login: no roster get, initial presence right away, and
    a write between authentication and presence."""
    srv.register("erin")
    srv.register("frank")
    e1 = online(srv, "erin", "one")
    f = online(srv, "frank", "desk")
    subscribe(e1, f)
    subscribe(f, e1)
    e1.drain(0.2)
    f.drain(0.2)
    e2 = Client(srv, "erin", resource="two")
    e1.iq("<query xmlns='jabber:iq:roster'><item jid='frank@localhost' subscription='remove'/>"
          "</query>", type="set")
    e1.expect_push("frank@localhost")
    f.expect(is_presence("unavailable", "erin@localhost"))
    f.drain(0.3)
    e2.presence()
    t.ok(f.maybe(is_presence(None, "erin@localhost"), 1.0) is None,
         "frank does not receive erin/two's initial presence after the removal")
    t.ok(log_has(srv, "initial presence of erin@localhost/two: the roster read at "
                      "authentication is stale"),
         "the stale read was noticed at initial presence")
    e1.close()
    e2.close()
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
        t.run("fresh", test_fresh, srv)
        t.run("stale", test_stale, srv)
        t.run("presence without get", test_presence_without_get, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
