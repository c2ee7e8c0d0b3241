#!/usr/bin/python3
"""mod_offline on PostgreSQL (a throwaway server from tests/pg-tmp.sh):
the pgsql migration, store and ordered delivery, the quota, meerkatctl
unregister removing the messages, and the database going down: a short
outage is ridden out by the retries, a long one bounces the message to
its sender. Skipped without PostgreSQL. Prints TAP; ignores --tap."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, TOP_BUILDDIR, Client, error_condition, q  # noqa: E402
from pgtest import run  # noqa: E402

NS_DELAY = "urn:xmpp:delay"
MAX = 3


def ctl(srv, *args):
    return subprocess.run([os.path.join(TOP_BUILDDIR, "tools", "meerkatctl"), "-c", srv.conf] +
                          list(args), capture_output=True, text=True).returncode


def stored(pg, user):
    return int(pg.sql("SELECT COUNT(*) FROM offline_messages WHERE username = '%s'" % user))


def wait_stored(pg, user, n, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if stored(pg, user) == n:
            return True
        time.sleep(0.1)
    return False


def log_has(srv, pattern, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(srv.log_path) as f:
            if pattern in f.read():
                return True
        time.sleep(0.05)
    return False


def is_message(body=None):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and e.get("type") != "error" and
                      (body is None or e.findtext(q(NS_CLIENT, "body")) == body))


def is_error(id):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and e.get("type") == "error" and
                      e.get("id") == id)


def send(c, to, body, id):
    c.send("<message to='%s' type='chat' id='%s'><body>%s</body></message>" % (to, id, body))


def scenarios(t, srv, pg):
    for u in ("alice", "bob", "erin", "gone"):
        t.ok(ctl(srv, "register", u, "localhost", "secret") == 0, "meerkatctl registers " + u)
    bob = Client(srv, "bob", resource="desk")
    bob.presence()

    for i in range(MAX):
        send(bob, "alice@localhost", "m%d" % i, "m%d" % i)
    send(bob, "alice@localhost", "over", "mx")
    e = bob.expect(is_error("mx"))
    t.ok(error_condition(e) == "service-unavailable", "over the quota: service-unavailable")
    t.ok(stored(pg, "alice") == MAX, "max_messages rows in PostgreSQL")
    a = Client(srv, "alice")
    t.ok(a.maybe(is_message(), 0.7) is None, "nothing at resource binding")
    a.presence()
    got = [a.expect(is_message()) for _ in range(MAX)]
    t.ok([m.findtext(q(NS_CLIENT, "body")) for m in got] == ["m0", "m1", "m2"] and
         all(m.find(q(NS_DELAY, "delay")) is not None for m in got),
         "delivered in order with delays at initial presence")
    t.ok(wait_stored(pg, "alice", 0), "and deleted")
    a.close()

    send(bob, "gone@localhost", "x", "g1")
    t.ok(wait_stored(pg, "gone", 1), "stored for an account")
    t.ok(ctl(srv, "unregister", "gone", "localhost") == 0 and stored(pg, "gone") == 0,
         "meerkatctl unregister removes its offline messages")

    # A short outage: the retries ride it out.
    pg.down()
    try:
        send(bob, "erin@localhost", "kept", "e1")
        failed = log_has(srv, "storing a message for erin@localhost failed")
    finally:
        pg.up()
    t.ok(failed, "storing fails while PostgreSQL is down")
    t.ok(wait_stored(pg, "erin", 1), "a retry stores it once PostgreSQL is back")
    t.ok(bob.maybe(is_error("e1"), 0.3) is None, "the sender got no error")
    er = Client(srv, "erin")
    er.presence()
    t.ok(er.expect(is_message("kept")) is not None, "and it is delivered")
    t.ok(wait_stored(pg, "erin", 0), "then deleted")
    er.close()

    # A long one: bounced to the sender, never dropped.
    pg.down()
    try:
        send(bob, "erin@localhost", "bounced", "e2")
        err = bob.expect(is_error("e2"), 15, "the bounce")
    finally:
        pg.up()
    t.ok(error_condition(err) == "resource-constraint",
         "down longer than the retries: the sender gets resource-constraint")
    bob.close()


def main():
    run("mod_offline", {"mod_offline": {"max_messages": MAX, "store_retries": 4,
                                   "store_retry_ms": 150}}, scenarios)


if __name__ == "__main__":
    main()
