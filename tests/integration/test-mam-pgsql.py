#!/usr/bin/python3
"""mod_mam on PostgreSQL (a throwaway server from tests/pg-tmp.sh): the
pgsql migration, archiving and paging, preferences, and PostgreSQL
stopped in the middle of the traffic: messages are still delivered,
and appear in the archive, each once and in order, once the database
is back. Skipped without PostgreSQL. Prints TAP; ignores --tap."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, TOP_BUILDDIR, online, q  # noqa: E402
import mamv1  # noqa: E402
from pgtest import run  # noqa: E402

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"


def up(srv, user):
    c = online(srv, user)
    c.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == c.jid and
             e.get("type") is None, timeout=10, what="own presence")
    return c


def is_chat(body):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and
                      e.findtext(q(NS_CLIENT, "body")) == body)


def archive(c, rsm="<max>50</max>"):
    qid = c.new_id("q")
    reply = c.iq("<query xmlns='%s' queryid='%s'><set xmlns='%s'>%s</set></query>" %
                 (NS_MAM, qid, NS_RSM, rsm), type="set", timeout=20)
    out = []
    for el in list(c.backlog):
        r = el.find(q(NS_MAM, "result"))
        if r is not None and r.get("queryid") == qid:
            body = r.findtext("%s/%s/%s" % (q(NS_FWD, "forwarded"), q(NS_CLIENT, "message"),
                                            q(NS_CLIENT, "body")))
            out.append((r.get("id"), body))
            c.backlog.remove(el)
    return reply, out


def count(pg, user):
    return int(pg.sql("SELECT COUNT(*) FROM mam_user_message WHERE username = '%s'" % user))


def scenarios(t, srv, pg):
    for u in ("alice", "bob"):
        register(srv, u)
    a, b = up(srv, "alice"), up(srv, "bob")
    for i in range(12):
        a.send("<message to='bob@localhost' type='chat'><body>pg %02d</body></message>" % i)
    b.expect(is_chat("pg 11"))
    _, got = archive(b, "<max>5</max><before/>")
    t.ok([x[1] for x in got] == ["pg %02d" % i for i in range(7, 12)],
         "PostgreSQL: the last page of the archive, at once after sending")
    # The query waited for bob's rows; alice's come with the next flush.
    deadline = time.time() + 10
    while time.time() < deadline and count(pg, "alice") != 12:
        time.sleep(0.05)
    t.ok(count(pg, "alice") == 12 and count(pg, "bob") == 12, "both archives in PostgreSQL")
    r = a.iq("<prefs xmlns='%s' default='always'><never><jid>carl@localhost</jid></never>"
             "</prefs>" % NS_MAM, type="set")
    t.ok(r.get("type") == "result", "PostgreSQL: preferences stored")

    pg.down()
    for i in range(6):
        a.send("<message to='bob@localhost' type='chat'><body>down %d</body></message>" % i)
    got_all = all(b.maybe(is_chat("down %d" % i), timeout=15) is not None for i in range(6))
    t.ok(got_all, "PostgreSQL down: messages are still delivered")
    deadline = time.time() + 20
    while time.time() < deadline and "writing" not in srv.log_text(300):
        time.sleep(0.1)
    t.ok("writing" in srv.log_text(300), "the failed batch is logged")
    pg.up()
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if count(pg, "bob") == 18:
                break
        except Exception:
            pass
        time.sleep(0.2)
    _, got = archive(b)
    bodies = [x[1] for x in got]
    t.ok(bodies == ["pg %02d" % i for i in range(12)] + ["down %d" % i for i in range(6)],
         "after PostgreSQL is back: every message in the archive, once, in order (%d)" %
         len(bodies))
    t.ok(len({x[0] for x in got}) == len(got), "no ID twice")
    a.close()
    b.close()
    upgrade(t, srv, pg)


def upgrade(t, srv, pg):
    """A database of schema 1 is upgraded at start; its archives are found."""
    for u in ("ann", "bea"):
        register(srv, u)
    srv.restart(between=lambda: [pg.sql(s) for s in mamv1.downgrade(True)])
    t.ok("mod_mam schema migrated to version 2" in srv.log_text(400),
         "PostgreSQL: schema 1 is migrated at start")
    a, b = up(srv, "ann"), up(srv, "bea")
    _, ra = archive(a)
    _, rb = archive(b)
    t.ok([x[1] for x in ra] == ["old one", "old two"] and
         [x[1] for x in rb] == ["old one", "old three"] and ra[0][0] == rb[0][0],
         "PostgreSQL: both archives as they were, the shared message under one ID (%s, %s)" %
         (ra, rb))
    n = int(pg.sql("SELECT COUNT(*) FROM mam_message WHERE id < %d" % (mamv1.ID_THREE + 1)))
    t.ok(n == 3, "PostgreSQL: the old messages stored once each (%d)" % n)
    a.send("<message to='bea@localhost' type='chat'><body>new one</body></message>")
    b.expect(is_chat("new one"))
    _, rb = archive(b)
    t.ok([x[1] for x in rb] == ["old one", "old three", "new one"],
         "PostgreSQL: new messages come after the upgraded ones")
    a.close()
    b.close()


def register(srv, user):
    subprocess.run([os.path.join(TOP_BUILDDIR, "tools", "meerkatctl"), "-c", srv.conf,
                    "register", user, "localhost", "secret"], check=True, capture_output=True)


def main():
    run("mod_mam", {"mod_roster": None, "mod_mam": {"flush_interval_ms": 100}}, scenarios)


if __name__ == "__main__":
    main()
