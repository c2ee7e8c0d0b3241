#!/usr/bin/python3
"""mod_offline (XEP-0160): messages for a user with no available resource
are stored and delivered at the next initial presence, in order and with
an XEP-0203 delay; what is not stored; the quota; the rows going with the
account; messages surviving a restart; a database failure retried, then
bounced. Prints TAP; ignores --tap."""
import calendar
import os
import re
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, TOP_BUILDDIR, Client, Server, Tap, dump, error_condition,  # noqa: E402
                     q)

NS_DELAY = "urn:xmpp:delay"
MAX = 5


def log_has(srv, pattern, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(srv.log_path) as f:
            if pattern in f.read():
                return True
        time.sleep(0.05)
    return False


def stored(srv, user):
    return srv.sql("SELECT COUNT(*) FROM offline_messages WHERE username = ?", user)[0][0]


def wait_stored(srv, user, n, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if stored(srv, user) == n:
            return True
        time.sleep(0.05)
    return False


def is_message(body=None):
    def pred(e):
        if e.tag != q(NS_CLIENT, "message"):
            return False
        return body is None or e.findtext(q(NS_CLIENT, "body")) == body
    return pred


def is_error(id):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and e.get("type") == "error" and
                      e.get("id") == id)


def send(c, to, body=None, type="chat", id=None, extra=""):
    c.send("<message to='%s'%s%s>%s%s</message>" % (
        to, " type='%s'" % type if type else "", " id='%s'" % id if id else "",
        "<body>%s</body>" % body if body is not None else "", extra))


def test_store_and_deliver(t, srv):
    srv.register("alice")
    srv.register("bob")
    bob = Client(srv, "bob", resource="desk")
    bob.presence()
    before = time.time()
    send(bob, "alice@localhost", "one", id="m1")
    send(bob, "alice@localhost", "two", type=None, id="m2")
    send(bob, "alice@localhost/gone", "three", id="m3")  # no such resource: bare rules
    send(bob, "alice@localhost", "four", type="normal", id="m4")
    t.ok(wait_stored(srv, "alice", 4), "four messages for the offline user are stored")
    t.ok(bob.maybe(lambda e: e.get("type") == "error", 0.3) is None,
         "the sender gets no error for stored messages")

    a = Client(srv, "alice", resource="phone")
    t.ok(a.maybe(is_message(), 1.0) is None, "nothing is delivered at resource binding")
    t.ok(stored(srv, "alice") == 4, "the messages stay stored until initial presence")
    a.presence()
    got = [a.expect(is_message(), 5, "offline message %d" % (i + 1)) for i in range(4)]
    after = time.time()
    bodies = [m.findtext(q(NS_CLIENT, "body")) for m in got]
    t.ok(bodies == ["one", "two", "three", "four"],
         "stored messages arrive after initial presence, in order (%s)" % bodies)
    t.ok(all(m.get("from") == bob.jid for m in got), "they keep the sender's full JID")
    delays = [m.find(q(NS_DELAY, "delay")) for m in got]
    t.ok(all(d is not None and d.get("from") == "localhost" for d in delays),
         "each carries <delay xmlns='urn:xmpp:delay' from='localhost'/> (XEP-0203)")
    ok = True
    for d in delays:
        stamp = d.get("stamp") if d is not None else ""
        m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$", stamp or "")
        if not m:
            ok = False
            continue
        when = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
        ok = ok and before - 2 <= when <= after + 1
    t.ok(ok, "the stamps are UTC XEP-0082 times of when the server took them (%s)" %
         [d.get("stamp") for d in delays if d is not None])
    t.ok(got[0].get("type") == "chat" and got[3].get("type") == "normal",
         "the stanzas are kept as sent")
    t.ok(wait_stored(srv, "alice", 0), "delivered messages are deleted from storage")

    a2 = Client(srv, "alice", resource="laptop")
    a2.presence()
    t.ok(a2.maybe(is_message(), 1.0) is None, "a second resource gets nothing again")
    # Presence updates of a session that got them do not deliver again.
    send(bob, "alice@localhost", "live", id="m5")
    t.ok(a.expect(is_message("live")).find(q(NS_DELAY, "delay")) is None,
         "while online, messages are delivered live, without delay")
    for c in (a, a2, bob):
        c.close()


def test_negative_priority(t, srv):
    srv.register("nina")
    bob = Client(srv, "bob", resource="neg")
    send(bob, "nina@localhost", "for later", id="n1")
    t.ok(wait_stored(srv, "nina", 1), "stored for nina")
    n = Client(srv, "nina")
    n.presence(extra="<priority>-1</priority>")
    t.ok(n.maybe(is_message(), 1.0) is None,
         "available presence with a negative priority gets no offline messages")
    n.presence(extra="<priority>1</priority>")
    m = n.expect(is_message("for later"))
    t.ok(m.find(q(NS_DELAY, "delay")) is not None,
         "the first non-negative presence of the session gets them")
    t.ok(wait_stored(srv, "nina", 0), "and they are deleted")
    n.close()
    bob.close()


def test_not_stored(t, srv):
    srv.register("carl")
    bob = Client(srv, "bob", resource="ns")
    send(bob, "carl@localhost", "hl", type="headline", id="h1")
    send(bob, "carl@localhost", "gc", type="groupchat", id="g1")
    send(bob, "carl@localhost", "err", type="error", id="e1")
    send(bob, "carl@localhost", "nostore", id="s1", extra="<no-store xmlns='urn:xmpp:hints'/>")
    send(bob, "carl@localhost", None, id="cs1",
         extra="<composing xmlns='http://jabber.org/protocol/chatstates'/>")
    send(bob, "carl@localhost", "marker", id="k1")
    t.ok(wait_stored(srv, "carl", 1), "of six messages only one is stored")
    e = bob.expect(is_error("g1"))
    t.ok(error_condition(e) == "service-unavailable", "groupchat is bounced, not stored")
    e = bob.expect(is_error("s1"))
    t.ok(error_condition(e) == "service-unavailable",
         "a message with <no-store/> (XEP-0334) is not stored: service-unavailable")
    t.ok(bob.maybe(lambda e: e.get("type") == "error" and e.get("id") in ("h1", "e1", "cs1"),
                   0.5) is None,
         "headline, error and a standalone chat state are dropped quietly")
    c = Client(srv, "carl")
    c.presence()
    m = c.expect(is_message())
    t.ok(m.findtext(q(NS_CLIENT, "body")) == "marker", "carl gets the stored one: %s" % dump(m))
    t.ok(c.maybe(is_message(), 0.7) is None, "and nothing else")
    c.close()
    bob.close()


def test_quota(t, srv):
    srv.register("dora")
    bob = Client(srv, "bob", resource="q")
    for i in range(MAX):
        send(bob, "dora@localhost", "q%d" % i, id="q%d" % i)
    send(bob, "dora@localhost", "too many", id="qx")
    e = bob.expect(is_error("qx"))
    t.ok(error_condition(e) == "service-unavailable" and e.get("from") == "dora@localhost",
         "over max_messages the sender gets service-unavailable (XEP-0160 section 2)")
    t.ok(bob.maybe(lambda e: e.get("type") == "error" and e.get("id") != "qx", 0.3) is None,
         "the messages within the quota got no error")
    t.ok(stored(srv, "dora") == MAX, "exactly max_messages are stored")
    send(bob, "nobody@localhost", "hello", id="nx")
    e = bob.expect(is_error("nx"))
    t.ok(error_condition(e) == "service-unavailable",
         "a message for an account that does not exist is bounced")
    bob.close()


def test_account_removal(t, srv):
    srv.register("gone")
    bob = Client(srv, "bob", resource="rm")
    send(bob, "gone@localhost", "a", id="r1")
    send(bob, "gone@localhost", "b", id="r2")
    t.ok(wait_stored(srv, "gone", 2), "two messages stored for the account")
    # What meerkatctl unregister does: delete the account row.
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10)
    db.execute("PRAGMA foreign_keys=ON")
    with db:
        db.execute("DELETE FROM users WHERE username = 'gone'")
    db.close()
    t.ok(stored(srv, "gone") == 0, "removing the account removes its offline messages")
    bob.close()


def test_storage_failure(t, srv):
    srv.register("erin")
    bob = Client(srv, "bob", resource="db")
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10, isolation_level=None)

    def table(away):
        if away:
            db.execute("ALTER TABLE offline_messages RENAME TO offline_messages_away")
        else:
            db.execute("ALTER TABLE offline_messages_away RENAME TO offline_messages")

    # Briefly unavailable: the first attempts fail, a retry stores it.
    table(True)
    try:
        send(bob, "erin@localhost", "kept", id="f1")
        failed = log_has(srv, "storing a message for erin@localhost failed")
    finally:
        table(False)
    t.ok(failed, "the store fails while the table is away")
    t.ok(wait_stored(srv, "erin", 1), "a retry stores the message once storage is back")
    t.ok(bob.maybe(is_error("f1"), 0.3) is None, "and the sender gets no error")
    e = Client(srv, "erin")
    e.presence()
    m = e.expect(is_message("kept"))
    t.ok(m is not None, "the message is delivered at the next initial presence")
    t.ok(wait_stored(srv, "erin", 0), "and deleted")
    e.close()

    # Unavailable for longer than the retries: bounced, never dropped.
    table(True)
    try:
        send(bob, "erin@localhost", "lost?", id="f2")
        err = bob.expect(is_error("f2"), 8, "the bounce")
    finally:
        table(False)
    t.ok(error_condition(err) == "resource-constraint" and err.get("from") == "erin@localhost",
         "when the retries are used up the sender gets resource-constraint")
    t.ok(log_has(srv, "could not store a message from %s to erin@localhost" % bob.jid, 1),
         "and the server logs it")
    t.ok(stored(srv, "erin") == 0, "nothing half-stored is left")
    db.close()
    bob.close()


def test_restart(t, srv):
    srv.register("fred")
    srv.register("gina")
    bob = Client(srv, "bob", resource="rs")
    send(bob, "fred@localhost", "before restart", id="x1")
    send(bob, "fred@localhost", "also before", id="x2")
    t.ok(wait_stored(srv, "fred", 2), "two messages stored")
    # A store still retrying when the server stops is not dropped silently.
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10, isolation_level=None)
    db.execute("ALTER TABLE offline_messages RENAME TO offline_messages_away")
    send(bob, "gina@localhost", "in flight", id="x3")
    failing = log_has(srv, "storing a message for gina@localhost failed")
    bob.close()

    def table_back():
        db.execute("ALTER TABLE offline_messages_away RENAME TO offline_messages")
        db.close()
    srv.restart(between=table_back)
    t.ok(failing and log_has(srv, "stopping before the message from %s to gina@localhost could"
                                  " be stored" % bob.jid, 1),
         "a store still being retried at shutdown is reported in the log")
    f = Client(srv, "fred")
    f.presence()
    m1 = f.expect(is_message())
    m2 = f.expect(is_message())
    t.ok([m1.findtext(q(NS_CLIENT, "body")), m2.findtext(q(NS_CLIENT, "body"))] ==
         ["before restart", "also before"], "stored messages survive a server restart")
    f.close()


def test_disco(t, srv):
    srv.register("dina")
    c = Client(srv, "dina")
    res = c.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", to="localhost")
    feats = [f.get("var") for f in res.iter(q("http://jabber.org/protocol/disco#info",
                                               "feature"))]
    t.ok("msgoffline" in feats, "the server announces msgoffline (XEP-0160 section 4)")
    c.close()


def main():
    t = Tap()
    try:
        srv = Server({
            "mod_disco": {},
            "mod_offline": {"max_messages": MAX, "store_retries": 3, "store_retry_ms": 300},
        })
    except Exception as e:
        t.ok(False, "meerkatd with mod_offline starts")
        t.diag(e)
        t.done()
    try:
        t.run("store and deliver", test_store_and_deliver, srv)
        t.run("negative priority", test_negative_priority, srv)
        t.run("not stored", test_not_stored, srv)
        t.run("quota", test_quota, srv)
        t.run("account removal", test_account_removal, srv)
        t.run("storage failure", test_storage_failure, srv)
        t.run("disco", test_disco, srv)
        t.run("restart", test_restart, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
