#!/usr/bin/python3
"""XEP-0198 resumption on another cluster node (docs/clustering.md,
Resumption on another node): three nodes, one redis-server and one
PostgreSQL started here. A client of node a drops its connection while
messages keep coming (from a user of a and from a user of c), resumes on
node b: <resumed/>, every unacknowledged message once, in order per
sender, then new messages reach b, and one that still reaches a (from a
link peer) is forwarded to b once, not stored offline; its contact sees no unavailable and a
new resource of the contact sees it available; Redis points to b; dropped
again, it resumes on a (its id names a, which points to b). A node
stopped (SIGTERM) while its session moves leaves the queue to the new
node: each message once, none offline. Then
node a is killed (kill -9) under a detached session: the resumption on b
gets item-not-found, and the fresh session gets what a had stored
offline and what was sent after, once each. Skipped without
redis-server or PostgreSQL. Prints TAP; ignores --tap."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Tap, q  # noqa: E402
from clustertest import FakePeer, register, run_three_nodes, wait_for  # noqa: E402

NS_SM = "urn:xmpp:sm:3"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
MODULES = {"mod_roster": None, "mod_offline": None, "mod_carboncopy": None,
           "mod_stream_management": {"resume_timeout": 60}}
STANZAS = tuple(q(NS_CLIENT, n) for n in ("message", "presence", "iq"))


def body_of(e):
    return e.findtext(q(NS_CLIENT, "body"))


def is_chat(e):
    return (e.tag == q(NS_CLIENT, "message") and e.get("type") != "error" and
            body_of(e) is not None)


def chat(c, to, body):
    c.send("<message to='%s' type='chat' id='%s'><body>%s</body></message>" % (to, body, body))


def sessions(redis, bare):
    return redis.cli("HGETALL", "mk:s:" + bare) or []


def home_of(redis, bare, resource="r"):
    rec = sessions(redis, bare)
    return rec[rec.index(resource) + 1].split("\t")[0] if resource in rec[0::2] else None


def online(node, user, resource="r"):
    c = Client(node, user, resource=resource)
    c.roster_get()
    c.presence()
    return c


def known_everywhere(nodes, jid, redis):
    bare, res = jid.split("/", 1)
    if not wait_for(lambda: res in sessions(redis, bare)[0::2], 10):
        return False
    home = home_of(redis, bare, res)
    line = "cluster: %s on %s (available)" % (jid, home)
    return all(n.log_has(line, 10) for n in nodes
               if n.name != home and n.proc and n.proc.poll() is None)


def read_all(c, wait):
    """Every element the client gets until @wait seconds pass without one."""
    out = list(c.backlog)
    c.backlog = []
    while True:
        e = c.maybe(lambda e: True, wait)
        if e is None:
            return out
        out.append(e)


def test_move(t, nodes, redis, pg):
    a, b, c = nodes
    for u in ("sara", "tom", "uma"):
        register(pg, u)
    to = online(c, "tom")
    um = online(a, "uma")
    sa = online(a, "sara")
    for x in (to, um, sa):
        t.ok(known_everywhere(nodes, x.jid, redis), "%s is known on every node" % x.jid)
    # tom (c) follows sara's presence.
    to.presence("subscribe", "sara@localhost")
    sa.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("type") == "subscribe", 5)
    sa.presence("subscribed", "tom@localhost")
    t.ok(to.maybe(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == sa.jid and
                  e.get("type") is None, 5) is not None, "tom sees sara available")
    sa.drain(0.5)
    sa.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    previd = sa.expect(lambda e: e.tag == q(NS_SM, "enabled")).get("id")
    t.ok(previd.startswith("a~"), "the resumption id names node a (%s)" % previd)

    # Ten messages, from a user of c (to the full JID) and one of a (bare).
    for i in range(5):
        chat(to, sa.jid, "m%d" % i)
        chat(um, "sara@localhost", "u%d" % i)
    got, seen = [], []
    deadline = time.time() + 10
    while len(got) < 10 and time.time() < deadline:
        e = sa.maybe(lambda e: e.tag in STANZAS, 1)
        if e is not None:
            seen.append(e)
            if is_chat(e):
                got.append(body_of(e))
    t.ok(sorted(got) == sorted(["m%d" % i for i in range(5)] + ["u%d" % i for i in range(5)]),
         "sara on a gets the first ten (%s)" % got)
    # She acknowledges all but the last three stanzas (all chats).
    h = len(seen) - 3
    last3 = got[-3:]
    sa.drop()
    t.ok(a.log_has("connection lost; resumable", 10), "a keeps sara's session detached")
    for i in range(5, 10):
        chat(to, sa.jid, "m%d" % i)
        chat(um, "sara@localhost", "u%d" % i)

    s2 = Client(b, "sara", bind=False)
    s2.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h))
    # More while the session moves: to a, forwarded, or to b directly.
    for i in range(10, 15):
        chat(to, sa.jid, "m%d" % i)
        chat(um, "sara@localhost", "u%d" % i)
    res = s2.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")), 10)
    t.ok(res.tag == q(NS_SM, "resumed") and res.get("previd") == previd and
         res.get("h") == "0", "resuming a's session on b: <resumed previd h='0'/> (%s %s)" %
         (res.tag, dict(res.attrib)))
    s2.jid = sa.jid
    els = read_all(s2, 2.0)
    later = [body_of(e) for e in els if is_chat(e)]
    want = last3 + ["m%d" % i for i in range(5, 15)] + ["u%d" % i for i in range(5, 15)]
    t.ok(sorted(later) == sorted(want) and len(later) == len(set(later)),
         "every unacknowledged message once (got %s)" % later)
    for p in "mu":
        mine = [int(x[1:]) for x in later if x[0] == p]
        t.ok(mine == sorted(mine), "%s's messages in order (%s)" % (p, mine))
    t.ok(wait_for(lambda: home_of(redis, "sara@localhost") == "b", 5),
         "Redis: sara's session is on b")
    t.ok(a.log_has("resumed on another node (b)", 5), "a let the session go")
    t.ok(b.log_has("session resumed from node a", 5), "b took it over")
    chat(to, sa.jid, "after")
    chat(um, "sara@localhost", "after2")
    news_els = read_all(s2, 1.5)
    news = [body_of(e) for e in news_els if is_chat(e)]
    t.ok(sorted(news) == ["after", "after2"], "new messages reach b (%s)" % news)
    # A message that reaches a after the move, from a peer that still
    # routed to a's session, before a heard of the session's new record
    # (pub/sub lags the link): a looks the account up in Redis and
    # forwards it to b, once, rather than storing it offline. The lag is
    # made certain with a record of b's written without its announcement
    # (resource "late", what a does not know yet; b itself routes the
    # message to sara's session).
    bare = "sara@localhost"
    rec = sessions(redis, bare)
    mine = rec[rec.index("r") + 1].split("\t")
    ghost = "\t".join(["b", "987654321", "0", "0"] + mine[4:])
    redis.cli("HSET", "mk:s:" + bare, "late", ghost)
    offline = "SELECT COUNT(*) FROM offline_messages WHERE username = 'sara'"
    stored = int(pg.sql(offline))
    went_offline = 'meerkat_routed_stanzas_total{outcome="offline"}'
    offline_before = a.metrics().get(went_offline, 0)
    peer = FakePeer(a)
    peer.send_stanza(bare + "/late", "<message xmlns='jabber:client' from='%s' to='%s/late' "
                     "type='chat' id='late'><body>late</body></message>" % (to.jid, bare))
    late_els = read_all(s2, 1.5)
    late = [body_of(e) for e in late_els if is_chat(e)]
    news_els += late_els
    t.ok(late == ["late"], "a message that reaches node a for a session it does not know yet "
         "is forwarded to b, once (%s)" % late)
    t.ok(int(pg.sql(offline)) == stored, "... and not stored offline (%s rows, %d before)" %
         (pg.sql(offline), stored))
    t.ok(a.log_has("%s: 1 sessions found in Redis before their announcement" % bare, 5),
         "... found in Redis by a")
    t.ok(a.metrics().get(went_offline, 0) == offline_before and
         all(e.find("{urn:xmpp:delay}delay") is None for e in late_els if is_chat(e)),
         "... as is, not through a's offline storage (which, with no other session of "
         "sara's known, would have kept it)")
    peer.close()
    # The record goes as a session's end would (every node drops it).
    redis.cli("HDEL", "mk:s:" + bare, "late")
    redis.cli("PUBLISH", "mk:sess", "D\t%s\tlate\t%s" % (bare, ghost))
    t2 = online(b, "tom", "r2")
    t.ok(t2.maybe(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == sa.jid and
                  e.get("type") is None, 5) is not None,
         "a new resource of tom sees sara available")

    # Dropped again, and resumed on a, whose id it still is: a points to b.
    # Her h: what she acknowledged on a, then all she read on b (the
    # three resent ones included: she had not acknowledged them).
    rest = read_all(s2, 0.5)
    total = h + sum(1 for e in els + news_els + rest if e.tag in STANZAS)
    s2.drop()
    t.ok(b.log_has("connection lost; resumable", 10), "b keeps sara's session detached")
    chat(to, sa.jid, "back")
    s3 = Client(a, "sara", bind=False)
    s3.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, total))
    res = s3.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")), 10)
    t.ok(res.tag == q(NS_SM, "resumed"), "resumed again on a, from b (%s)" % res.tag)
    back = [body_of(e) for e in read_all(s3, 1.5) if is_chat(e)]
    t.ok(back == ["back"], "only the unacknowledged message comes (%s)" % back)
    t.ok(a.log_has("session resumed from node b", 5), "a took it back from b")
    unavail = [e for e in read_all(to, 0.5) if e.tag == q(NS_CLIENT, "presence") and
               e.get("from") == sa.jid and e.get("type") == "unavailable"]
    t.ok(not unavail, "tom saw no unavailable from sara")
    s3.close()
    t.ok(to.maybe(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == sa.jid and
                  e.get("type") == "unavailable", 5) is not None,
         "sara's logout: tom gets her unavailable")
    for x in (to, t2, um):
        x.close()


def test_stop_during_move(t, nodes, redis, pg):
    """SIGTERM of a between its RESUME_STATE and b's RESUME_DONE (held
    back by pausing Redis's writes, which b waits for): b has the queue
    and resends it; a must not route it again."""
    a, b, c = nodes
    register(pg, "xena")
    register(pg, "yuri")
    yu = online(c, "yuri")
    xe = online(a, "xena")
    for x in (yu, xe):
        t.ok(known_everywhere(nodes, x.jid, redis), "%s is known on every node" % x.jid)
    xe.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    previd = xe.expect(lambda e: e.tag == q(NS_SM, "enabled")).get("id")
    for i in range(5):
        chat(yu, xe.jid, "s%d" % i)
    got = [body_of(e) for e in read_all(xe, 1.0) if is_chat(e)]
    t.ok(got == ["s%d" % i for i in range(5)], "xena on a gets five, unacknowledged (%s)" % got)
    xe.drop()
    t.ok(a.log_has("connection lost; resumable", 10), "a keeps xena's session detached")
    offline = "SELECT COUNT(*) FROM offline_messages WHERE username = 'xena'"
    stored = int(pg.sql(offline))
    handed = a.log_text(0).count("unacknowledged stanzas handed over")
    redis.cli("CLIENT", "PAUSE", "4000", "WRITE")
    x2 = Client(b, "xena", bind=False)
    x2.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    t.ok(wait_for(lambda: a.log_text(0).count("unacknowledged stanzas handed over") > handed,
                  5), "a handed the session to b")
    a.stop(keep=True)
    res = x2.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")), 10)
    t.ok(res.tag == q(NS_SM, "resumed"), "the resumption on b succeeds (%s)" % res.tag)
    x2.jid = xe.jid
    again = [body_of(e) for e in read_all(x2, 3.0) if is_chat(e)]
    t.ok(sorted(again) == ["s%d" % i for i in range(5)],
         "b resends the five unacknowledged messages once each (%s)" % again)
    t.ok(a.log_has("ends while it moves to another node", 5),
         "a's stop ends the moving session quietly")
    t.ok(int(pg.sql(offline)) == stored,
         "... and a routed none of them again: nothing in offline storage (%s rows, %d before)" %
         (pg.sql(offline), stored))
    x2.close()
    yu.close()
    a.start()
    t.ok(wait_for(lambda: all(n.metrics().get("meerkat_cluster_links_up") == 2 for n in nodes),
                  15), "a is back and linked")


def test_dead(t, nodes, redis, pg):
    a, b, c = nodes
    register(pg, "vera")
    register(pg, "walt")
    wa = online(a, "walt")
    # Stored offline by a (vera has no session yet).
    for i in range(3):
        chat(wa, "vera@localhost", "o%d" % i)
    t.ok(wait_for(lambda: int(pg.sql("SELECT COUNT(*) FROM offline_messages"
                                     " WHERE username = 'vera'")) >= 3, 10),
         "a stored three messages offline for vera")
    # vera binds on a without presence (offline messages stay stored).
    ve = Client(a, "vera")
    ve.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    previd = ve.expect(lambda e: e.tag == q(NS_SM, "enabled")).get("id")
    ve.drop()
    t.ok(a.log_has("connection lost; resumable", 10), "a keeps vera's session detached")
    wa.close()
    a.kill()
    t.ok(wait_for(lambda: not sessions(redis, "vera@localhost"), 10),
         "vera's session on the dead node leaves Redis")
    tc = online(c, "walt", "r3")
    for i in range(3):
        chat(tc, "vera@localhost", "w%d" % i)
    t.ok(wait_for(lambda: int(pg.sql("SELECT COUNT(*) FROM offline_messages"
                                     " WHERE username = 'vera'")) >= 6, 10),
         "later messages go offline")
    v2 = Client(b, "vera", bind=False)
    v2.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    res = v2.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")), 5)
    t.ok(res.tag == q(NS_SM, "failed") and res.find(q(NS_STANZAS, "item-not-found")) is not None,
         "resuming the dead node's session on b: item-not-found")
    t.ok(v2.bind("again").get("type") == "result", "... then a fresh session binds")
    v2.presence()
    got = [body_of(e) for e in read_all(v2, 1.5) if is_chat(e)]
    t.ok(sorted(got) == ["o0", "o1", "o2", "w0", "w1", "w2"],
         "the fresh session gets the offline messages once each (%s)" % got)
    v2.close()
    tc.close()


def main():
    run_three_nodes(Tap(), MODULES, [
        ("resume on another node", test_move),
        ("SIGTERM during a move", test_stop_during_move),
        ("resume after kill -9", test_dead),
    ])


if __name__ == "__main__":
    main()
