#!/usr/bin/python3
"""mod_private: private XML storage (XEP-0049) round trip, several
namespaces in one set, isolation between users, the forbidden and
reserved-namespace errors, and the data going away with the account.
Prints TAP; ignores --tap."""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Client, Server, Tap, error_condition, q  # noqa: E402

NS_PRIVATE = "jabber:iq:private"


def stored(res, name, ns):
    query = res.find(q(NS_PRIVATE, "query"))
    return None if query is None else query.findall(q(ns, name))


def test_private(t, srv):
    srv.register("alice")
    srv.register("bob")
    a = Client(srv, "alice")
    b = Client(srv, "bob")

    res = a.iq("<query xmlns='%s'><prefs xmlns='urn:example:prefs'/></query>" % NS_PRIVATE)
    els = stored(res, "prefs", "urn:example:prefs")
    t.ok(res.get("type") == "result" and els is not None and len(els) == 1 and len(els[0]) == 0,
         "nothing stored: the empty element comes back")

    res = a.iq("<query xmlns='%s'>"
               "<prefs xmlns='urn:example:prefs'><nick>Al</nick></prefs>"
               "<storage xmlns='storage:bookmarks'><conference jid='room@muc.localhost'/></storage>"
               "</query>" % NS_PRIVATE, "set")
    t.ok(res.get("type") == "result", "a set with two namespaces: result")

    res = a.iq("<query xmlns='%s'><prefs xmlns='urn:example:prefs'/></query>" % NS_PRIVATE)
    els = stored(res, "prefs", "urn:example:prefs")
    t.ok(els and els[0].findtext(q("urn:example:prefs", "nick")) == "Al",
         "the first namespace reads back")
    res = a.iq("<query xmlns='%s'><storage xmlns='storage:bookmarks'/></query>" % NS_PRIVATE)
    els = stored(res, "storage", "storage:bookmarks")
    t.ok(els and els[0].find(q("storage:bookmarks", "conference")).get("jid") ==
         "room@muc.localhost", "the second namespace reads back")

    a.iq("<query xmlns='%s'><prefs xmlns='urn:example:prefs'><nick>Alice</nick></prefs>"
         "</query>" % NS_PRIVATE, "set")
    res = a.iq("<query xmlns='%s'><prefs xmlns='urn:example:prefs'/></query>" % NS_PRIVATE)
    els = stored(res, "prefs", "urn:example:prefs")
    t.ok(len(els) == 1 and els[0].findtext(q("urn:example:prefs", "nick")) == "Alice",
         "a new set replaces the namespace's data")
    res = a.iq("<query xmlns='%s'><storage xmlns='storage:bookmarks'/></query>" % NS_PRIVATE)
    t.ok(len(stored(res, "storage", "storage:bookmarks")[0]) == 1,
         "other namespaces are untouched")

    # Isolation: bob has his own store and cannot reach alice's.
    res = b.iq("<query xmlns='%s'><prefs xmlns='urn:example:prefs'/></query>" % NS_PRIVATE)
    els = stored(res, "prefs", "urn:example:prefs")
    t.ok(res.get("type") == "result" and els and len(els[0]) == 0,
         "another user's store is separate (empty for bob)")
    res = b.iq("<query xmlns='%s'><prefs xmlns='urn:example:prefs'/></query>" % NS_PRIVATE,
               to="alice@localhost")
    t.ok(error_condition(res) == "forbidden", "reading another user's data: forbidden")
    res = b.iq("<query xmlns='%s'><prefs xmlns='urn:example:prefs'><nick>Bob</nick></prefs>"
               "</query>" % NS_PRIVATE, "set", to="alice@localhost")
    t.ok(error_condition(res) == "forbidden", "writing another user's data: forbidden")

    # Errors of XEP-0049.
    res = a.iq("<query xmlns='%s'><vCard xmlns='vcard-temp'><FN>A</FN></vCard></query>"
               % NS_PRIVATE, "set")
    t.ok(error_condition(res) == "not-acceptable", "a reserved namespace (vcard-temp): "
         "not-acceptable")
    res = a.iq("<query xmlns='%s'><x xmlns='jabber:client'/></query>" % NS_PRIVATE)
    t.ok(error_condition(res) == "not-acceptable", "a reserved namespace (jabber:client): "
         "not-acceptable")
    res = a.iq("<query xmlns='%s'/>" % NS_PRIVATE, "set")
    t.ok(error_condition(res) == "not-acceptable", "a set without a child: not-acceptable")
    res = a.iq("<query xmlns='%s'><big xmlns='urn:example:big'>%s</big></query>"
               % (NS_PRIVATE, "x" * 3000), "set")
    t.ok(error_condition(res) == "not-acceptable", "a set over max_size: not-acceptable")
    a.close()
    b.close()

    before = srv.sql("SELECT COUNT(*) FROM private_storage WHERE username = 'alice'")[0][0]
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10)
    db.execute("PRAGMA foreign_keys=ON")
    with db:
        db.execute("DELETE FROM users WHERE username = 'alice'")
    db.close()
    after = srv.sql("SELECT COUNT(*) FROM private_storage WHERE username = 'alice'")[0][0]
    t.ok(before == 2 and after == 0, "removing the account removes its private data")


def main():
    t = Tap()
    try:
        srv = Server({"mod_private": {"max_size": 2048}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_private starts")
        t.diag(e)
        t.done()
    try:
        t.run("private storage", test_private, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
