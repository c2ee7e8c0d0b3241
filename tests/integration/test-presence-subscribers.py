#!/usr/bin/python3
"""mod_roster: presence changes after initial presence (away, available
again, the unavailable at logout) go to the subscribers the session
remembers, without reading the roster, unless a roster write for the
same user came in between: then the subscribers are what the database
says at that point. A new subscriber (approved by another resource, or
pre-approved and then asking itself) receives the next change; a
removed one (it unsubscribed, or another resource removed it) does not.
Prints TAP; ignores --tap."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Client, Server, Tap, is_presence, online, subscribe  # noqa: E402

CACHED = "presence of alice@localhost/one from the session's list of subscribers"
STALE = "presence of alice@localhost/one: the session's list of subscribers is stale"


def log_count(srv, text):
    return srv.log_text(tail=1000000).count(text)


def show(c, what):
    c.presence(extra="<show>%s</show>" % what)


def has_show(what):
    def pred(e):
        return is_presence(None, "alice@localhost")(e) and \
            e.findtext("{jabber:client}show") == what and \
            e.get("from") == "alice@localhost/one"
    return pred


def change(t, srv, a, what, expect_cached, receivers, silent=()):
    """alice/one shows @what: every client of @receivers receives it, none
    of @silent does; the log says whether the remembered list served."""
    cached, stale = log_count(srv, CACHED), log_count(srv, STALE)
    show(a, what)
    for name, c in receivers:
        p = c.maybe(has_show(what), 5)
        t.ok(p is not None, "%s receives alice/one's '%s'" % (name, what))
    for name, c in silent:
        t.ok(c.maybe(has_show(what), 1.0) is None,
             "%s does not receive alice/one's '%s'" % (name, what))
    if expect_cached:
        t.ok(log_count(srv, CACHED) == cached + 1 and log_count(srv, STALE) == stale,
             "'%s' went to the session's list of subscribers" % what)
    else:
        t.ok(log_count(srv, STALE) == stale + 1 and log_count(srv, CACHED) == cached,
             "'%s': the session's list was stale, the roster was read" % what)


def test_subscribers(t, srv):
    for u in ("alice", "bob", "carol", "dave"):
        srv.register(u)
    a = online(srv, "alice", "one")
    b = online(srv, "bob", "desk")
    subscribe(b, a)
    a.drain(0.2)
    b.drain(0.2)

    # The subscription came after alice/one's initial presence.
    change(t, srv, a, "away", False, [("bob", b)])
    change(t, srv, a, "xa", True, [("bob", b)])
    change(t, srv, a, "chat", True, [("bob", b)])

    # A new subscriber, approved by alice's other resource.
    a2 = online(srv, "alice", "two")
    c = online(srv, "carol", "pc")
    c.presence("subscribe", "alice@localhost")
    a2.expect(is_presence("subscribe", "carol@localhost"), what="carol's request")
    a2.presence("subscribed", "carol@localhost")
    c.expect(is_presence(None, "alice@localhost"), what="alice's presence after the approval")
    c.drain(0.3)
    change(t, srv, a, "dnd", False, [("bob", b), ("carol", c)])
    change(t, srv, a, "away", True, [("bob", b), ("carol", c)])

    # One that alice pre-approved and that then asks itself (an inbound
    # write, from the contact's side).
    a2.presence("subscribed", "dave@localhost")
    a2.expect_push("dave@localhost")
    d = online(srv, "dave", "lap")
    change(t, srv, a, "xa", False, [("bob", b), ("carol", c)], [("dave", d)])
    d.presence("subscribe", "alice@localhost")
    d.expect(is_presence("subscribed", "alice@localhost"), what="the pre-approved answer")
    d.drain(0.3)
    change(t, srv, a, "chat", False, [("bob", b), ("carol", c), ("dave", d)])
    change(t, srv, a, "dnd", True, [("bob", b), ("carol", c), ("dave", d)])

    # carol unsubscribes; alice/two removes bob.
    c.presence("unsubscribe", "alice@localhost")
    c.expect(is_presence("unavailable", "alice@localhost"), what="alice's unavailable")
    a2.iq("<query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/>"
          "</query>", type="set")
    b.expect(is_presence("unavailable", "alice@localhost"), what="alice's unavailable")
    b.drain(0.3)
    c.drain(0.3)
    change(t, srv, a, "away", False, [("dave", d)], [("bob", b), ("carol", c)])
    change(t, srv, a, "xa", True, [("dave", d)], [("bob", b), ("carol", c)])

    # The unavailable at logout from the list too.
    cached = log_count(srv, CACHED)
    a.close()
    p = d.maybe(lambda e: is_presence("unavailable", "alice@localhost")(e) and
                e.get("from") == "alice@localhost/one", 5)
    t.ok(p is not None, "dave receives alice/one's unavailable at logout")
    t.ok(b.maybe(lambda e: is_presence("unavailable", "alice@localhost")(e), 1.0) is None,
         "bob does not")
    t.ok(log_count(srv, CACHED) == cached + 1,
         "the unavailable at logout went to the session's list of subscribers")
    for x in (a2, b, c, d):
        x.close()


def main():
    t = Tap()
    try:
        srv = Server({"mod_roster": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_roster starts")
        t.diag(e)
        t.done()
    try:
        t.run("subscribers", test_subscribers, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
