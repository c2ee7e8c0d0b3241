#!/usr/bin/python3
"""mod_last: last activity (XEP-0012). The server answers its uptime; a
user's bare JID answers 0 while online and, after logout, the seconds
since then with the status of the last unavailable presence; only the
user and subscribed contacts may ask (forbidden otherwise); the record
goes away with the account. Prints TAP; ignores --tap."""
import os
import socket
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Client, Server, Tap, error_condition, is_presence, q  # noqa: E402

NS_LAST = "jabber:iq:last"


def last(c, to=None):
    res = c.iq("<query xmlns='%s'/>" % NS_LAST, to=to)
    query = res.find(q(NS_LAST, "query"))
    if res.get("type") != "result" or query is None:
        return res, None, None
    return res, int(query.get("seconds", "-1")), query.text


def subscribe(a, b):
    """@a subscribes to @b's presence (the RFC 6121 handshake); both are
    available."""
    a.presence("subscribe", b.bare)
    b.expect(is_presence("subscribe", a.bare), what="subscribe from " + a.bare)
    b.presence("subscribed", a.bare)
    a.expect(is_presence("subscribed", b.bare), what="subscribed from " + b.bare)


def test_server(t, srv):
    srv.register("sam")
    c = Client(srv, "sam")
    time.sleep(1.1)  # the server has been up at least this long
    res, secs, text = last(c, "localhost")
    t.ok(res.get("from") == "localhost" and secs is not None and secs >= 1 and not text,
         "to the server: its uptime in seconds (%s)" % secs)
    c.close()


def test_users(t, srv):
    for u in ("alice", "bob", "eve"):
        srv.register(u)
    a = Client(srv, "alice")
    b = Client(srv, "bob")
    e = Client(srv, "eve")
    a.presence()
    b.presence()
    subscribe(a, b)  # alice may see bob's presence; eve may not

    res, secs, _ = last(a, "bob@localhost")
    t.ok(secs == 0, "an online user: seconds='0' (%s)" % secs)
    res, _, _ = last(e, "bob@localhost")
    t.ok(error_condition(res) == "forbidden", "a non-subscriber asks: forbidden")
    res, _, _ = last(a, "eve@localhost")
    t.ok(error_condition(res) == "forbidden", "asking about someone not subscribed to: forbidden")

    b.presence("unavailable", extra="<status>Heading Home</status>")
    a.expect(is_presence("unavailable", "bob@localhost"), what="bob's unavailable")
    b.close()
    time.sleep(1.1)
    res, secs, text = last(a, "bob@localhost")
    t.ok(secs is not None and secs >= 1 and text == "Heading Home",
         "after logout: seconds since (%s) and the last status (%r)" % (secs, text))
    res, _, _ = last(e, "bob@localhost")
    t.ok(error_condition(res) == "forbidden", "still forbidden for a non-subscriber")

    # A logout without unavailable presence: no status.
    b = Client(srv, "bob")
    b.presence()
    res, secs, _ = last(a, "bob@localhost")
    t.ok(secs == 0, "online again: 0")
    b.sock.shutdown(socket.SHUT_RDWR)  # the connection just drops
    b.sock.close()
    a.expect(is_presence("unavailable", "bob@localhost"), what="bob's drop")
    time.sleep(0.3)
    res, secs, text = last(a, "bob@localhost")
    t.ok(secs is not None and secs >= 0 and not text,
         "a dropped connection: a fresh time and no status (%s, %r)" % (secs, text))

    res, secs, _ = last(e, "eve@localhost")
    t.ok(error_condition(res) == "item-not-found",
         "never logged out and not available: item-not-found")
    e.presence()
    res, secs, _ = last(e)
    t.ok(secs == 0, "a user may ask about itself")
    for c in (a, e):
        c.close()

    before = srv.sql("SELECT COUNT(*) FROM last_activity WHERE username = 'bob'")[0][0]
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10)
    db.execute("PRAGMA foreign_keys=ON")
    with db:
        db.execute("DELETE FROM users WHERE username = 'bob'")
    db.close()
    after = srv.sql("SELECT COUNT(*) FROM last_activity WHERE username = 'bob'")[0][0]
    t.ok(before == 1 and after == 0, "removing the account removes its last activity")


def main():
    t = Tap()
    try:
        srv = Server({"mod_roster": {}, "mod_last": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_last starts")
        t.diag(e)
        t.done()
    try:
        t.run("server uptime", test_server, srv)
        t.run("users", test_users, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
