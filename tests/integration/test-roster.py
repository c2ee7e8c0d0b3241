#!/usr/bin/python3
"""mod_roster: roster get/set/remove with pushes to every interested
resource, versioning (XEP-0237), the errors of RFC 6121 2.3.3, and the
roster going away with the account. Prints TAP; ignores --tap."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, NS_ROSTER, Client, Server, Tap, dump, error_condition, q,  # noqa: E402
                     roster_item)


def groups_of(item):
    return sorted(g.text for g in item.findall(q(NS_ROSTER, "group")))


def test_get_set_remove(t, srv):
    srv.register("alice")
    a1 = Client(srv, "alice", resource="one")
    a2 = Client(srv, "alice", resource="two")
    a3 = Client(srv, "alice", resource="three")  # never asks: gets no pushes
    t.ok(a1.features.find(q("urn:xmpp:features:rosterver", "ver")) is not None,
         "roster versioning is announced in the stream features (XEP-0237)")
    t.ok(a1.features.find(q("urn:xmpp:features:pre-approval", "sub")) is not None,
         "subscription pre-approval is announced in the stream features (RFC 6121 3.4)")

    res = a1.roster_get()
    query = res.find(q(NS_ROSTER, "query"))
    t.ok(res.get("type") == "result" and query is not None and len(query) == 0,
         "a new account's roster is empty")
    t.ok(query is not None and query.get("ver") not in (None, ""),
         "the result carries a version")
    a2.roster_get()

    res = a1.iq("<query xmlns='%s'><item jid='bob@localhost' name='Bob'>"
                "<group>Friends</group><group>Work</group></item></query>" % NS_ROSTER, "set")
    t.ok(res.get("type") == "result", "roster set answered with a result")
    for c in (a1, a2):
        item, push = c.expect_push("bob@localhost")
        t.ok(item.get("name") == "Bob" and item.get("subscription") == "none" and
             groups_of(item) == ["Friends", "Work"] and push.get("from") in (None, "alice@localhost"),
             "push of the new item reaches resource %s" % c.jid)
        t.ok(push.find(q(NS_ROSTER, "query")).get("ver") not in (None, ""),
             "push to %s carries the new version" % c.jid)
    t.ok(a3.maybe(lambda e: roster_item(e, "bob@localhost") is not None, 0.7) is None,
         "a resource that never asked for the roster gets no push")

    res = a1.roster_get()
    item = roster_item(res, "bob@localhost")
    t.ok(item is not None and item.get("name") == "Bob" and
         groups_of(item) == ["Friends", "Work"] and item.get("ask") is None,
         "roster get returns the item with name and groups")

    # Update: new name, one group.
    a1.iq("<query xmlns='%s'><item jid='bob@localhost' name='Robert'>"
          "<group>Work</group></item></query>" % NS_ROSTER, "set")
    item, _ = a2.expect_push("bob@localhost")
    t.ok(item.get("name") == "Robert" and groups_of(item) == ["Work"],
         "an update pushes the new name and groups")
    a1.expect_push("bob@localhost")

    # Remove.
    res = a2.iq("<query xmlns='%s'><item jid='bob@localhost' subscription='remove'/></query>"
                % NS_ROSTER, "set")
    t.ok(res.get("type") == "result", "removal answered with a result")
    for c in (a1, a2):
        item, _ = c.expect_push("bob@localhost")
        t.ok(item.get("subscription") == "remove", "removal pushed to %s" % c.jid)
    res = a1.roster_get()
    t.ok(roster_item(res, "bob@localhost") is None, "the item is gone from roster get")

    res = a1.iq("<query xmlns='%s'><item jid='nobody@localhost' subscription='remove'/></query>"
                % NS_ROSTER, "set")
    t.ok(error_condition(res) == "item-not-found", "removing an unknown item: item-not-found")
    for c in (a1, a2, a3):
        c.close()


def test_versioning(t, srv):
    srv.register("vera")
    v = Client(srv, "vera")
    res = v.roster_get(ver="")
    ver0 = res.find(q(NS_ROSTER, "query")).get("ver")
    v.iq("<query xmlns='%s'><item jid='x@localhost'/></query>" % NS_ROSTER, "set")
    _, push = v.expect_push("x@localhost")
    ver1 = push.find(q(NS_ROSTER, "query")).get("ver")
    t.ok(ver1 != ver0, "a change gives a new version (%s -> %s)" % (ver0, ver1))

    res = v.roster_get(ver=ver1)
    t.ok(res.get("type") == "result" and res.find(q(NS_ROSTER, "query")) is None,
         "get with the current version: empty result")
    res = v.roster_get(ver=ver0)
    query = res.find(q(NS_ROSTER, "query"))
    t.ok(query is not None and query.get("ver") == ver1 and
         roster_item(res, "x@localhost") is not None,
         "get with an old version: the whole roster and the current version")
    res = v.roster_get(ver="bogus")
    t.ok(roster_item(res, "x@localhost") is not None, "get with an unknown version: full roster")
    v.close()

    # Versions survive reconnection (they are stored).
    v = Client(srv, "vera")
    res = v.roster_get(ver=ver1)
    t.ok(res.get("type") == "result" and res.find(q(NS_ROSTER, "query")) is None,
         "the version is the same in a new session")
    v.close()


def test_errors(t, srv):
    srv.register("eve")
    srv.register("mallory")
    e = Client(srv, "eve")
    cases = [
        ("<query xmlns='%s'/>" % NS_ROSTER, "bad-request", "no item"),
        ("<query xmlns='%s'><item jid='a@localhost'/><item jid='b@localhost'/></query>"
         % NS_ROSTER, "bad-request", "two items"),
        ("<query xmlns='%s'><item name='x'/></query>" % NS_ROSTER, "bad-request", "no jid"),
        ("<query xmlns='%s'><item jid='a@b@c'/></query>" % NS_ROSTER, "bad-request",
         "an invalid jid"),
        ("<query xmlns='%s'><item jid='a@localhost'><group>G</group><group>G</group></item>"
         "</query>" % NS_ROSTER, "bad-request", "a duplicate group"),
        ("<query xmlns='%s'><item jid='a@localhost'><group></group></item></query>"
         % NS_ROSTER, "not-acceptable", "an empty group"),
        ("<query xmlns='%s'><item jid='a@localhost' name='%s'/></query>" % (NS_ROSTER, "n" * 2000),
         "not-acceptable", "a name too long"),
    ]
    for body, cond, what in cases:
        res = e.iq(body, "set")
        t.ok(res.get("type") == "error" and error_condition(res) == cond,
             "roster set with %s: %s (got %s)" % (what, cond, error_condition(res)))
    res = e.roster_get()
    t.ok(len(res.find(q(NS_ROSTER, "query"))) == 0, "rejected sets changed nothing")

    m = Client(srv, "mallory")
    res = m.iq("<query xmlns='%s'/>" % NS_ROSTER, "get", to="eve@localhost")
    t.ok(res.get("type") == "error" and error_condition(res) in ("forbidden", "service-unavailable"),
         "another user cannot read the roster (%s)" % error_condition(res))
    res = m.iq("<query xmlns='%s'><item jid='m@localhost'/></query>" % NS_ROSTER, "set",
               to="eve@localhost")
    t.ok(res.get("type") == "error", "another user cannot change the roster")
    e.close()
    m.close()


def test_account_removal(t, srv):
    srv.register("gone")
    g = Client(srv, "gone")
    g.roster_get()
    g.iq("<query xmlns='%s'><item jid='friend@localhost'><group>G</group></item></query>"
         % NS_ROSTER, "set")
    g.expect_push("friend@localhost")
    g.close()
    before = srv.sql("SELECT COUNT(*) FROM roster_items WHERE username = 'gone'")[0][0]
    # What meerkatctl unregister does: delete the account row.
    db_path = os.path.join(srv.state, "meerkat.db")
    import sqlite3
    db = sqlite3.connect(db_path, timeout=10)
    db.execute("PRAGMA foreign_keys=ON")
    with db:
        db.execute("DELETE FROM users WHERE username = 'gone'")
    db.close()
    after = [srv.sql("SELECT COUNT(*) FROM %s WHERE username = 'gone'" % tbl)[0][0]
             for tbl in ("roster_items", "roster_groups", "roster_versions")]
    t.ok(before == 1 and after == [0, 0, 0],
         "removing the account removes its roster (before %d, after %s)" % (before, after))


def main():
    t = Tap()
    try:
        srv = Server({"mod_roster": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_roster starts")
        t.diag(e)
        t.done()
    try:
        t.run("get/set/remove", test_get_set_remove, srv)
        t.run("versioning", test_versioning, srv)
        t.run("errors", test_errors, srv)
        t.run("account removal", test_account_removal, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
