#!/usr/bin/python3
"""Rooms in a three-node cluster (docs/clustering.md, Rooms): one
redis-server and one PostgreSQL started here, nodes a, b and c. A MUC room
with occupants on all three nodes (groupchat copies exactly once, in
order per sender; joins and leaves seen by all), homed on one node in
Redis; that node killed with kill -9: the occupants elsewhere are told
they are out (332), the persistent room comes back on a survivor with its
configuration, affiliations and discussion history and they rejoin. A MUC Light room with
members on different nodes, a PubSub node published on one node and
read/notified on the others, and MAM IDs distinct by node number.
Skipped without redis-server or PostgreSQL. Prints TAP; ignores --tap."""
import atexit
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Tap, error_condition, q  # noqa: E402
from clustertest import register, run_three_nodes, wait_for  # noqa: E402
from muctest import (NS_ADMIN, NS_INFO, codes, configure, is_groupchat, join,  # noqa: E402
                     leave, room_jid, say)

ML = "urn:xmpp:muclight:0"
MLSVC = "muclight.localhost"
PS = "http://jabber.org/protocol/pubsub"
PS_EVENT = PS + "#event"
PSSVC = "pubsub.localhost"

ADMIN = ("admin", "adm1n-pw-cluster")
PWDIR = tempfile.mkdtemp(prefix="mk-clrooms.")
atexit.register(shutil.rmtree, PWDIR, True)
with open(os.path.join(PWDIR, "admin-password"), "w") as pwf:
    pwf.write(ADMIN[1] + "\n")
MODULES = {"mod_roster": None, "mod_disco": None, "mod_offline": None,
           "mod_mam": {"flush_interval_ms": 50},
           "mod_muc": {"rest_admin_password_file": os.path.join(PWDIR, "admin-password")},
           "mod_muc_light": None, "mod_pubsub": None}


def up(node, user):
    c = Client(node, user)
    c.presence()
    c.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == c.jid and
             e.get("type") is None, 10, "own presence")
    return c


def home_of(redis, room):
    return redis.cli("GET", "mk:home:" + room_jid(room))


def is_presence(frm, type=None):
    return lambda e: (e.tag == q(NS_CLIENT, "presence") and e.get("from") == frm and
                      e.get("type") == type)


def groupchats(c, room, wait=1.5):
    out = []
    while True:
        e = c.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and
                    e.get("type") == "groupchat" and
                    (e.get("from") or "").startswith(room_jid(room) + "/") and
                    e.findtext(q(NS_CLIENT, "body")) is not None, wait)
        if e is None:
            return out
        out.append((e.get("from").split("/", 1)[1], e.findtext(q(NS_CLIENT, "body"))))


def test_muc(t, nodes, redis, pg):
    a, b, c = nodes
    for u in ("ra", "rb", "rc"):
        register(pg, u)
    ua, ub, uc = up(a, "ra"), up(b, "rb"), up(c, "rc")
    # uc on c creates the room: its home is c.
    p = join(uc, "hall", "C")
    t.ok(p.get("type") != "error" and 201 in codes(p), "the room is created from node c")
    t.ok(home_of(redis, "hall") == "c", "its home in Redis is node c (%r)" % home_of(redis, "hall"))
    res = configure(uc, "hall", [("muc#roomconfig_persistentroom", "1"),
                                 ("muc#roomconfig_roomname", "Great Hall")])
    t.ok(res.get("type") == "result", "the owner configures it: persistent, named")
    res = uc.iq("<query xmlns='%s'><item affiliation='owner' jid='ra@localhost'/>"
                "<item affiliation='member' jid='rb@localhost'/></query>" % NS_ADMIN, "set",
                room_jid("hall"))
    t.ok(res.get("type") == "result", "ra made owner and rb member")
    pa = join(ua, "hall", "A")
    t.ok(pa.get("type") != "error", "ra joins from node a")
    t.ok(uc.maybe(is_presence(room_jid("hall") + "/A"), 5) is not None,
         "rc on c sees ra's join")
    pb = join(ub, "hall", "B")
    t.ok(pb.get("type") != "error", "rb joins from node b")
    t.ok(all(x.maybe(is_presence(room_jid("hall") + "/B"), 5) is not None for x in (ua, uc)),
         "ra (a) and rc (c) see rb's join")
    for x in (ua, ub, uc):
        groupchats(x, "hall", 0.3)  # the subject, if any
    for i in range(5):
        for x, n in ((ua, "A"), (ub, "B"), (uc, "C")):
            say(x, "hall", "%s%d" % (n, i))
    want = {n: ["%s%d" % (n, i) for i in range(5)] for n in "ABC"}
    for x, where in ((ua, "a"), (ub, "b"), (uc, "c")):
        got = groupchats(x, "hall")
        per = {n: [body for frm, body in got if frm == n] for n in "ABC"}
        t.ok(len(got) == 15 and per == want,
             "the occupant on node %s gets each of the 15 messages once, in order per sender "
             "(%d)" % (where, len(got)))
    # The admin API of node a, for the room homed on c: the message goes
    # to the room's home, every occupant gets it once.
    status, _, body = a.http("POST", "/api/mucs/localhost/hall/messages",
                             {"from": ua.jid, "body": "via-rest"}, auth=ADMIN)
    t.ok(status == 202 and isinstance(body, dict) and body.get("home") == "c",
         "POST /api/mucs/.../messages on node a for the room homed on c: 202 naming c "
         "(%d %r)" % (status, body))
    for x, where in ((ua, "a"), (ub, "b"), (uc, "c")):
        got = groupchats(x, "hall", 1.0)
        t.ok(got == [("A", "via-rest")], "... the occupant on node %s gets it once (%r)" %
             (where, got))
    m = a.metrics()
    t.ok(m.get("meerkat_cluster_home_forwarded_total", 0) >= 5,
         "node a forwarded its stanzas for the room to c (%d)" %
         m.get("meerkat_cluster_home_forwarded_total", 0))
    leave(ub, "hall", "B")
    t.ok(all(x.maybe(is_presence(room_jid("hall") + "/B", "unavailable"), 5) is not None
             for x in (ua, uc)), "rb's leave is seen on a and c")
    join(ub, "hall", "B")
    for x in (ua, uc):
        x.maybe(is_presence(room_jid("hall") + "/B"), 5)
    back = groupchats(ub, "hall")
    t.ok(len(back) == 16, "rb's rejoin on b gets the room's history (%d)" % len(back))

    # A room homed on a, with an occupant on c.
    p = join(ua, "den", "A")
    t.ok(p.get("type") != "error" and 201 in codes(p) and home_of(redis, "den") == "a",
         "a second room is created from a and homed there")
    configure(ua, "den")
    join(uc, "den", "C")
    t.ok(ua.maybe(is_presence(room_jid("den") + "/C"), 5) is not None, "rc joins it from c")

    # The home of the first room dies.
    c.kill()
    for x, where in ((ua, "a"), (ub, "b")):
        p = x.maybe(lambda e: e.tag == q(NS_CLIENT, "presence") and
                    e.get("type") == "unavailable" and
                    (e.get("from") or "").startswith(room_jid("hall") + "/") and
                    110 in codes(e), 15)
        t.ok(p is not None and 332 in codes(p),
             "the occupant on node %s is told it is out of the room (332)" % where)
    t.ok(ua.maybe(is_presence(room_jid("den") + "/C", "unavailable"), 15) is not None,
         "in the room homed on a, rc (on the dead node) leaves")
    t.ok(wait_for(lambda: home_of(redis, "hall") != "c", 15),
         "the dead node's claim is dropped from Redis (%r)" % home_of(redis, "hall"))
    pb = join(ub, "hall", "B")
    t.ok(pb.get("type") != "error" and 201 not in codes(pb),
         "rb rejoins from b: the persistent room is back, not a new one (%s)" %
         (error_condition(pb) if pb.get("type") == "error" else sorted(codes(pb))))
    # The history c had sent to everyone came back with the room
    # (written through to PostgreSQL on each message): all 15, once.
    hist = groupchats(ub, "hall")
    per = {n: [body for frm, body in hist if frm == n] for n in "ABC"}
    want["A"].append("via-rest")
    t.ok(len(hist) == 16 and per == want,
         "... with the discussion history the killed home had: the 16 messages, once each, "
         "in order per sender (%d: %r)" % (len(hist), hist))
    home = home_of(redis, "hall")
    t.ok(home in ("a", "b"), "the room is homed on a survivor (%r)" % home)
    pa = join(ua, "hall", "A")
    t.ok(pa.get("type") != "error", "ra rejoins from a")
    info = ua.iq("<query xmlns='%s'/>" % NS_INFO, "get", room_jid("hall"))
    ident = info.find(".//{%s}identity" % NS_INFO)
    t.ok(ident is not None and ident.get("name") == "Great Hall",
         "its configuration came back (name %r)" % (ident.get("name") if ident is not None
                                                    else None))
    res = ua.iq("<query xmlns='%s'><item affiliation='member'/></query>" % NS_ADMIN, "get",
                room_jid("hall"))
    members = [i.get("jid") for i in res.iter("{%s}item" % NS_ADMIN)]
    t.ok(res.get("type") == "result" and members == ["rb@localhost"],
         "its affiliations came back: ra may read the member list, rb is in it (%r)" % members)
    groupchats(ua, "hall", 0.3)
    groupchats(ub, "hall", 0.3)
    say(ua, "hall", "after")
    t.ok(ub.maybe(is_groupchat(room_jid("hall") + "/A", "after"), 5) is not None,
         "groupchat flows again between a and b")
    t.ok(len(groupchats(ub, "hall", 0.5)) == 0, "... once")
    for x in (ua, ub):
        x.close()
    c.start()
    t.ok(wait_for(lambda: all(n.metrics().get("meerkat_cluster_links_up") == 2 for n in nodes),
                  15), "c is back and linked")


def test_redis_restart(t, nodes, redis, pg):
    """A restarted, empty Redis: the home claims itself again, so a join
    from another node still reaches the room's only copy."""
    a, b, c = nodes
    register(pg, "ya")
    register(pg, "yb")
    ya, yb = up(a, "ya"), up(b, "yb")
    join(ya, "yard", "A")
    configure(ya, "yard")
    t.ok(home_of(redis, "yard") == "a", "a room homed on a")
    before = a.log_text(0).count("homes of this node claimed again")
    redis.down()
    redis.up()
    t.ok(wait_for(lambda: a.log_text(0).count("homes of this node claimed again") > before, 15),
         "a claims its homes again once Redis is back")
    t.ok(home_of(redis, "yard") == "a", "the room is homed on a again (%r)" %
         home_of(redis, "yard"))
    p = join(yb, "yard", "B")
    t.ok(p.get("type") != "error" and 201 not in codes(p),
         "a join from b reaches the room on a, not a new room (%s)" % sorted(codes(p)))
    t.ok(ya.maybe(is_presence(room_jid("yard") + "/B"), 5) is not None, "ya sees yb join")
    for x in (ya, yb):
        x.close()


def test_muclight(t, nodes, redis, pg):
    a, b, c = nodes
    for u in ("la", "lb", "lc"):
        register(pg, u)
    la, lb, lc = up(a, "la"), up(b, "lb"), up(c, "lc")
    room = "tent@" + MLSVC
    r = la.iq("<query xmlns='%s#create'><configuration><roomname>Tent</roomname>"
              "</configuration><occupants><user affiliation='member'>lb@localhost</user>"
              "<user affiliation='member'>lc@localhost</user></occupants></query>" % ML,
              "set", to=room)
    t.ok(r.get("type") == "result", "MUC Light room created on a with members on b and c")
    for x in (la, lb, lc):
        x.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("from") == room, 5)
    lb.send("<message to='%s' type='groupchat' id='m1'><body>from b</body></message>" % room)
    for x, where in ((la, "a"), (lb, "b"), (lc, "c")):
        n = 0
        while x.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and
                      e.findtext(q(NS_CLIENT, "body")) == "from b", 1.5) is not None:
            n += 1
        t.ok(n == 1, "the member on node %s gets the message from b once (%d)" % (where, n))
    r = lc.iq("<query xmlns='%s#info'/>" % ML, "get", to=room)
    t.ok(r.get("type") == "result" and "Tent" in (r.findtext(".//{%s#info}roomname" % ML) or ""),
         "the room's info read on c")
    for x in (la, lb, lc):
        x.close()


def test_pubsub(t, nodes, redis, pg):
    a, b, c = nodes
    for u in ("pa", "pb"):
        register(pg, u)
    pa, pb = up(a, "pa"), up(b, "pb")
    r = pa.iq("<pubsub xmlns='%s'><create node='news'/></pubsub>" % PS, "set", PSSVC)
    t.ok(r.get("type") == "result", "node created on a")
    r = pb.iq("<pubsub xmlns='%s'><subscribe node='news' jid='%s'/></pubsub>" % (PS, pb.jid),
              "set", PSSVC)
    t.ok(r.get("type") == "result", "subscribed from b")
    r = pa.iq("<pubsub xmlns='%s'><publish node='news'><item id='i1'><entry xmlns='x'>hi"
              "</entry></item></publish></pubsub>" % PS, "set", PSSVC)
    t.ok(r.get("type") == "result", "item published on a")
    ev = pb.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and
                  e.find(q(PS_EVENT, "event")) is not None, 5)
    t.ok(ev is not None, "the subscriber on b gets the event")
    pc = Client(c, "pa", resource="c")
    r = pc.iq("<pubsub xmlns='%s'><items node='news'/></pubsub>" % PS, "get", PSSVC)
    ids = [i.get("id") for i in r.iter("{%s}item" % PS)]
    t.ok(r.get("type") == "result" and ids == ["i1"], "the item is read on c (%r)" % ids)
    for x in (pa, pb, pc):
        x.close()


def test_mam_ids(t, nodes, redis, pg):
    users = ("ma", "mb", "mc")
    for u in users:
        register(pg, u)
    cl = [up(n, u) for n, u in zip(nodes, users)]
    for i, x in enumerate(cl):
        to = "%s@localhost" % users[(i + 1) % 3]
        for k in range(5):
            x.send("<message to='%s' type='chat'><body>m%d</body></message>" % (to, k))
    for x in cl:
        n = 0
        while x.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and
                      e.findtext(q(NS_CLIENT, "body")) is not None, 1.5) is not None:
            n += 1
    # Each message is in its sender's and its recipient's archive: 30 rows,
    # written by three nodes; an ID identifies one message in an archive.
    sql = ("SELECT COUNT(*), COUNT(DISTINCT (username, id)), COUNT(DISTINCT id) "
           "FROM mam_user_message WHERE username IN ('ma', 'mb', 'mc')")
    wait_for(lambda: pg.sql(sql).split("|")[0] == "30", 10)
    total, per_archive, ids = pg.sql(sql).split("|")
    t.ok(total == "30" and per_archive == "30" and int(ids) >= 15,
         "30 archive rows written on three nodes, no ID twice in one archive, %s IDs for "
         "15 messages (%s rows, %s distinct per archive)" % (ids, total, per_archive))
    low = pg.sql("SELECT DISTINCT id % 256 FROM mam_user_message WHERE username IN "
                 "('ma', 'mb', 'mc') ORDER BY 1").split()
    t.ok(low == ["1", "2", "3"], "their low bytes are the three node numbers (%r)" % low)
    for x in cl:
        x.close()


def main():
    run_three_nodes(Tap(), MODULES, [
        ("muc light", test_muclight),
        ("pubsub", test_pubsub),
        ("mam ids", test_mam_ids),
        ("muc", test_muc),
        ("redis restart", test_redis_restart),
    ])


if __name__ == "__main__":
    main()
