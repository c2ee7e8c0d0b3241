#!/usr/bin/python3
"""A three-node cluster on loopback (docs/clustering.md): one redis-server
and one PostgreSQL started here, nodes a, b and c on their own ports of
127.0.0.1, users spread over them. Messages (bare and full JID, in order,
each exactly once), presence subscriptions and roster pushes, carbons,
resource conflict across nodes, graceful leave, kill -9 of a node during
traffic (every message the server acknowledged is delivered, offline or
archived, none twice; survivors clean up within 5 s; stream management
resumption of the dead node's session gets item-not-found and the offline
messages), resumption on another node while the session's node lives,
Redis restarted and PostgreSQL restarted during traffic; the admin REST
API of one node lists and kicks the sessions of every node. Skipped without
redis-server or PostgreSQL. Prints TAP; ignores --tap."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, NS_STREAMS_ERR, Client, Tap, q, roster_item,  # noqa: E402
                     stream_error)
from clustertest import register, run_three_nodes, wait_for  # noqa: E402

NS_SM = "urn:xmpp:sm:3"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_SID = "urn:xmpp:sid:0"

# test_kill counts where each of 110 messages of one sender went: offline
# storage must take all of them (its per-sender quota is 50 by default, and
# on a slow machine more than 50 are routed after node c died).
ADMIN = ("admin", "cluster-adm1n")
MODULES = {"mod_roster": None, "mod_offline": {"max_sender_messages": 1000},
           "mod_carboncopy": None,
           "mod_stream_management": {"resume_timeout": 30},
           "mod_mam": {"flush_interval_ms": 50},
           "mod_rest_admin": {"password": ADMIN[1]}}


def body_of(e):
    return e.findtext(q(NS_CLIENT, "body"))


def is_chat(body=None, frm=None):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and e.get("type") != "error" and
                      body_of(e) is not None and (body is None or body_of(e) == body) and
                      (frm is None or e.get("from") == frm))


def is_presence(type=None, frm=None):
    return lambda e: (e.tag == q(NS_CLIENT, "presence") and e.get("type") == type and
                      (frm is None or e.get("from") == frm))


def bodies(c, wait=1.0):
    out = []
    while True:
        e = c.maybe(is_chat(), wait)
        if e is None:
            return out
        out.append(body_of(e))


def chat(c, to, body):
    c.send("<message to='%s' type='chat' id='%s'><body>%s</body></message>" % (to, body, body))


def sessions(redis, bare):
    return redis.cli("HGETALL", "mk:s:" + bare) or []


def online(node, user, resource="r"):
    c = Client(node, user, resource=resource)
    c.roster_get()
    c.presence()
    return c


def known_everywhere(nodes, jid, redis):
    """The session @jid is in Redis and every other running node has its
    stand-in, available (their debug log says so): every caller sent
    initial presence, and a stand-in known only from the bind is not
    routed to by bare JID."""
    bare, res = jid.split("/", 1)
    if not wait_for(lambda: res in sessions(redis, bare)[0::2], 10):
        return False
    rec = sessions(redis, bare)
    home = rec[rec.index(res) + 1].split("\t")[0]
    line = "cluster: %s on %s (available)" % (jid, home)
    return all(n.log_has(line, 10) for n in nodes
               if n.name != home and n.proc and n.proc.poll() is None)


def test_messages(t, nodes, redis, pg):
    a, b, c = nodes
    register(pg, "alice")
    register(pg, "bob")
    al = online(a, "alice")
    bo = online(b, "bob")
    t.ok(known_everywhere(nodes, bo.jid, redis), "bob's session on b is in Redis")
    rec = sessions(redis, "bob@localhost")
    t.ok(len(rec) == 2 and rec[1].startswith("b\t"), "its record names node b (%s)" % rec)
    for i in range(20):
        chat(al, "bob@localhost", "bare%d" % i)
    for i in range(20):
        chat(al, bo.jid, "full%d" % i)
    got = bodies(bo)
    want = ["bare%d" % i for i in range(20)] + ["full%d" % i for i in range(20)]
    t.ok(got == want, "40 messages a -> b (bare and full JID) arrive once each, in order "
         "(%d, first difference at %s)" % (len(got), next((i for i, (x, y) in enumerate(
             zip(got, want)) if x != y), None)))
    chat(bo, al.jid, "back")
    e = al.maybe(is_chat("back"), 5)
    t.ok(e is not None and e.get("from") == bo.jid, "b -> a: delivered with bob's full JID")
    # An IQ to a full JID on another node and its result.
    al.send("<iq type='get' id='v1' to='%s'><query xmlns='jabber:iq:version'/></iq>" % bo.jid)
    e = bo.maybe(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "v1", 5)
    t.ok(e is not None, "an IQ to a full JID on another node reaches it")
    if e is not None:
        bo.send("<iq type='result' id='v1' to='%s'/>" % al.jid)
        r = al.maybe(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "v1", 5)
        t.ok(r is not None and r.get("type") == "result", "... and its result comes back")
    # MAM IDs carry the node number of the node that archived.
    wait_for(lambda: pg.sql("SELECT COUNT(*) FROM mam_user_message WHERE username = 'bob'")
             == "41", 10)
    low = pg.sql("SELECT DISTINCT id % 256 FROM mam_user_message WHERE username = 'bob'"
                 " AND from_bare = 'alice@localhost'")
    t.ok(low == "1", "archive IDs written by node a end in its node number 1 (%r)" % low)
    al.close()
    bo.close()
    t.ok(wait_for(lambda: not sessions(redis, "bob@localhost"), 10),
         "a closed session leaves Redis")


def test_bind_visible(t, nodes, redis, pg):
    """A message another node routes right after the bind reaches the new
    session: the bind is answered once Redis has its record, and a node
    that does not know the session yet looks in Redis before offline."""
    a, b, c = nodes
    register(pg, "xena")
    register(pg, "yves")
    xa = online(a, "xena")
    missed = []
    for i in range(30):
        yb = Client(b, "yves", resource="v%d" % i)
        chat(xa, yb.jid, "v%d" % i)
        if yb.maybe(is_chat("v%d" % i), 5) is None:
            missed.append(i)
        yb.close()
    t.ok(not missed, "30 binds on b: xena's message from a right after each bind arrives "
         "(missed %s)" % missed)
    t.ok(pg.sql("SELECT COUNT(*) FROM offline_messages WHERE username = 'yves'") == "0",
         "... and none went to offline storage")
    xa.close()


def test_metrics(t, nodes, redis, pg):
    """The cluster's series, after everything above: a and b lived
    through it all, c was killed once and restarted."""
    a, b, c = nodes
    ma, mb, mc = a.metrics(), b.metrics(), c.metrics()
    sent = 'meerkat_cluster_link_stanzas_total{direction="sent"}'
    recv = 'meerkat_cluster_link_stanzas_total{direction="received"}'
    # b and c were restarted since test_messages: a's figures count from the start.
    t.ok(ma.get(sent, 0) >= 40 and ma.get(recv, 0) >= 1,
         "stanzas over links counted (a sent %d, received %d)" %
         (ma.get(sent, 0), ma.get(recv, 0)))
    t.ok(wait_for(lambda: all(n.metrics().get("meerkat_cluster_links_up") == 2 for n in nodes),
                  10), "every node has 2 links up")
    t.ok(all(m.get("meerkat_cluster_redis_up") == 1 for m in (ma, mb, mc)), "Redis up on every node")
    t.ok(ma.get("meerkat_cluster_redis_reconnects_total", 0) >= 1 and
         ma.get("meerkat_cluster_redis_errors_total", 0) >= 1,
         "a counted Redis's restart (reconnects %d, errors %d)" %
         (ma.get("meerkat_cluster_redis_reconnects_total", 0),
          ma.get("meerkat_cluster_redis_errors_total", 0)))
    reaped = (ma.get("meerkat_cluster_nodes_reaped_total", 0) +
              mb.get("meerkat_cluster_nodes_reaped_total", 0))
    sreaped = (ma.get("meerkat_cluster_sessions_reaped_total", 0) +
               mb.get("meerkat_cluster_sessions_reaped_total", 0))
    t.ok(reaped == 1 and sreaped >= 1,
         "one survivor reaped the killed node once (%d nodes, %d sessions)" % (reaped, sreaped))
    t.ok("meerkat_cluster_redis_pending_commands" in ma and
         "meerkat_cluster_session_updates_dropped_total" in ma and
         "meerkat_cluster_link_unreachable_total" in ma, "the other series are listed")


def test_rest_sessions(t, nodes, redis, pg):
    a, b = nodes[0], nodes[1]
    for u in ("rs1", "rs2"):
        register(pg, u)
    c1, c2 = online(a, "rs1"), online(b, "rs2")
    t.ok(known_everywhere(nodes, "rs1@localhost/r", redis) and
         known_everywhere(nodes, "rs2@localhost/r", redis), "both sessions are known everywhere")
    for n in (a, b):
        status, _, body = n.http("GET", "/api/sessions/localhost", auth=ADMIN)
        t.ok(status == 200 and {"rs1@localhost/r", "rs2@localhost/r"} <= set(body) and
             len(body) == len(set(body)),
             "GET /api/sessions on node %s lists the sessions of both nodes, once each (%r)" %
             (n.name, body))
    status, _, _ = a.http("DELETE", "/api/sessions/localhost/rs2/r", auth=ADMIN)
    t.ok(status == 204, "node a kicks rs2's session on node b: 204 (got %d)" % status)
    e = c2.maybe(lambda e: stream_error(e) is not None, 10)
    t.ok(stream_error(e) == "policy-violation",
         "rs2 gets its stream error policy-violation on node b")
    t.ok(wait_for(lambda: "rs2@localhost/r" not in
                  a.http("GET", "/api/sessions/localhost", auth=ADMIN)[2], 10),
         "and node a no longer lists it")
    c1.close()


def test_presence_roster(t, nodes, redis, pg):
    a, b, c = nodes
    register(pg, "carl")
    register(pg, "dora")
    ca = online(a, "carl")
    da = online(b, "dora", "desk")
    db = online(c, "dora", "phone")
    for j in (ca.jid, da.jid, db.jid):
        known_everywhere(nodes, j, redis)
    t.ok(da.maybe(is_presence(None, db.jid), 5) is not None,
         "dora's resource on b sees the initial presence of her resource on c")
    ca.presence("subscribe", "dora@localhost")
    p1 = da.maybe(is_presence("subscribe", "carl@localhost"), 5)
    p2 = db.maybe(is_presence("subscribe", "carl@localhost"), 5)
    t.ok(p1 is not None and p2 is not None,
         "a subscription request from node a reaches both of dora's resources (b and c)")
    da.presence("subscribed", "carl@localhost")
    # Roster pushes to dora's resource on the other node (c) too.
    got = db.maybe(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("type") == "set" and
                   roster_item(e, "carl@localhost") is not None, 5)
    t.ok(got is not None, "the roster push of dora's approval on b reaches her resource on c")
    if got is not None:
        db.send("<iq type='result' id='%s'/>" % got.get("id"))
    e = ca.maybe(is_presence(None, da.jid), 5)
    e2 = ca.maybe(is_presence(None, db.jid), 5)
    t.ok(e is not None and e2 is not None,
         "carl on a gets the presence of dora's resources on b and c after the approval")
    # Broadcast: dora's status change on c reaches carl on a.
    db.presence(extra="<show>away</show>")
    e = ca.maybe(lambda e: is_presence(None, db.jid)(e) and e.findtext(q(NS_CLIENT, "show")) ==
                 "away", 5)
    t.ok(e is not None, "a presence change on c is broadcast to the subscriber on a")
    # Directed presence across nodes, and its unavailable when the session ends.
    register(pg, "emil")
    em = online(b, "emil")
    known_everywhere(nodes, em.jid, redis)
    ca.presence(to=em.jid)
    t.ok(em.maybe(is_presence(None, ca.jid), 5) is not None, "directed presence a -> b")
    ca.close()
    t.ok(em.maybe(is_presence("unavailable", ca.jid), 5) is not None,
         "the directed presence's unavailable follows when the session on a ends")
    for x in (da, db, em):
        x.close()


def enable_carbons(c):
    return c.iq("<enable xmlns='%s'/>" % NS_CARBONS, "set").get("type") == "result"


def carbon(kind, body):
    def pred(e):
        w = e.find(q(NS_CARBONS, kind))
        if e.tag != q(NS_CLIENT, "message") or w is None:
            return False
        f = w.find(q(NS_FORWARD, "forwarded"))
        m = f.find(q(NS_CLIENT, "message")) if f is not None else None
        return m is not None and body_of(m) == body
    return pred


def test_carbons(t, nodes, redis, pg):
    a, b, c = nodes
    register(pg, "fred")
    register(pg, "gina")
    f1 = online(a, "fred", "one")
    f2 = online(c, "fred", "two")
    gi = online(b, "gina")
    for x in (f1, f2, gi):
        known_everywhere(nodes, x.jid, redis)
    t.ok(enable_carbons(f1) and enable_carbons(f2), "carbons enabled on a and c")
    # Both records carry the flag, then every node's cache has it: the
    # flag travels by pub/sub a moment after the client's answer (a
    # documented limit, docs/clustering.md), so warm-up messages are sent
    # until one is carbon-copied, and the checks below use a fresh one.
    wait_for(lambda: sum("mod_carboncopy" in r
                         for r in sessions(redis, "fred@localhost")[1::2]) == 2, 10)
    warm = 0
    while warm < 30 and f2.maybe(carbon("received", "warm%d" % (warm - 1)), 0.5) is None:
        chat(gi, f1.jid, "warm%d" % warm)
        warm += 1
    chat(gi, f1.jid, "to-one")
    t.ok(f1.maybe(is_chat("to-one"), 5) is not None, "gina (b) -> fred/one (a): delivered")
    t.ok(f2.maybe(carbon("received", "to-one"), 5) is not None,
         "fred/two on c gets the received carbon")
    chat(f1, gi.jid, "from-one")
    t.ok(gi.maybe(is_chat("from-one"), 5) is not None, "fred/one (a) -> gina (b): delivered")
    t.ok(f2.maybe(carbon("sent", "from-one"), 5) is not None,
         "fred/two on c gets the sent carbon")
    extra = [e for e in [f1.maybe(is_chat("to-one"), 0.5)] if e is not None]
    t.ok(not extra, "no second copy to fred/one")
    for x in (f1, f2, gi):
        x.close()


def test_conflict(t, nodes, redis, pg):
    a, b, c = nodes
    register(pg, "hugo")
    register(pg, "ines")
    old = online(a, "hugo", "same")
    known_everywhere(nodes, old.jid, redis)
    new = online(b, "hugo", "same")
    e = old.maybe(lambda e: e.tag == q("http://etherx.jabber.org/streams", "error"), 5)
    t.ok(e is not None and e.find(q(NS_STREAMS_ERR, "conflict")) is not None,
         "binding hugo/same on b closes the session on a with <conflict/>")
    t.ok(old.closed.wait(5), "... and the stream on a ends")
    rec = wait_for(lambda: [r for r in sessions(redis, "hugo@localhost")[1::2]
                            if r.startswith("b\t")], 5)
    t.ok(rec and len(sessions(redis, "hugo@localhost")) == 2,
         "Redis has one hugo/same, on b (%s)" % sessions(redis, "hugo@localhost"))
    ii = online(c, "ines")
    time.sleep(0.3)  # the old session's end reaches every cache
    chat(ii, "hugo@localhost/same", "after-conflict")
    t.ok(new.maybe(is_chat("after-conflict"), 5) is not None,
         "a message from c to hugo/same reaches the new session on b")
    new.close()
    ii.close()


def test_kill(t, nodes, redis, pg, extra):
    """kill -9 of node c while a sends to a user on c."""
    a, b, c = nodes
    register(pg, "jack")
    register(pg, "kate")
    register(pg, "lena")
    ja = online(a, "jack")
    ja.send("<enable xmlns='%s'/>" % NS_SM)
    ja.expect(lambda e: e.tag == q(NS_SM, "enabled"))
    kc = online(c, "kate")
    kc.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    previd = kc.expect(lambda e: e.tag == q(NS_SM, "enabled")).get("id")
    # lena (b) is subscribed to kate's presence.
    le = online(b, "lena")
    for x in (ja, kc, le):
        known_everywhere(nodes, x.jid, redis)
    le.presence("subscribe", "kate@localhost")
    kc.expect(is_presence("subscribe", "lena@localhost"), 5)
    kc.presence("subscribed", "lena@localhost")
    t.ok(le.maybe(is_presence(None, kc.jid), 5) is not None, "lena on b sees kate on c")

    sent = []
    received = []
    for i in range(100):
        chat(ja, "kate@localhost", "k%d" % i)
        sent.append("k%d" % i)
        if i == 40:
            # Traffic flows: kate got some before her node dies.
            while len(received) < 20:
                e = kc.maybe(is_chat(), 5)
                if e is None:
                    break
                received.append(body_of(e))
        if i == 60:
            c.kill()
            killed = time.time()
    # Everything jack sent was handled by a: its <a/> says so.
    ja.send("<r xmlns='%s'/>" % NS_SM)
    h = ja.expect(lambda e: e.tag == q(NS_SM, "a"), 10).get("h")
    acked = int(h)
    t.ok(acked >= 100, "a acknowledged all 100 of jack's messages (h=%d)" % acked)
    t.ok(wait_for(lambda: not sessions(redis, "kate@localhost"), 10),
         "kate's session on the dead node leaves Redis")
    cleaned = time.time() - killed
    t.ok(cleaned < 5.0 + 1.0, "... within 5 s of the kill (%.1f s, 1 s of test polling)" %
         cleaned)
    u = le.maybe(is_presence("unavailable", kc.jid), 10)
    t.ok(u is not None, "lena gets kate's unavailable on her behalf")
    t.ok(a.log_has("node c is gone", 5) or b.log_has("node c is gone", 5),
         "a survivor says node c is gone")
    for i in range(100, 110):
        chat(ja, "kate@localhost", "k%d" % i)
        sent.append("k%d" % i)

    # Count: what kate's client got, what is offline, what is archived.
    while True:
        e = kc.maybe(is_chat(), 0.5)
        if e is None:
            break
        received.append(body_of(e))

    def offline():
        return pg.sql("SELECT xml FROM offline_messages WHERE username = 'kate'").splitlines()

    wait_for(lambda: sum(1 for x in offline() if ">k10" in x) >= 10, 10)
    off = []
    for x in offline():
        for s in sent:
            if "<body>%s</body>" % s in x:
                off.append(s)
    wait_for(lambda: int(pg.sql("SELECT COUNT(*) FROM mam_user_message WHERE username = 'kate'"
                                " AND from_bare = 'jack@localhost'")) >= 110, 10)
    arch_rows = pg.sql("SELECT xml FROM mam_user_message WHERE username = 'kate'"
                       " AND from_bare = 'jack@localhost'").splitlines()
    archived = set()
    for x in arch_rows:
        for s in sent:
            if "<body>%s</body>" % s in x:
                archived.add(s)
    dup_recv = len(received) != len(set(received))
    dup_off = len(off) != len(set(off))
    both = set(received) & set(off)
    t.ok(not dup_recv and not dup_off and not both,
         "no message twice (received %d, offline %d, in both %d)" %
         (len(received), len(off), len(both)))
    lost = [s for s in sent if s not in received and s not in off and s not in archived]
    t.ok(not lost, "every acknowledged message is delivered, offline or archived "
         "(%d received, %d offline, %d archived, lost %s)" %
         (len(received), len(off), len(archived), lost[:5]))
    bounced = ja.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("type") == "error",
                       0.5)
    t.ok(bounced is None, "none of jack's messages bounced (%s)" %
         (bounced.get("id") if bounced is not None else "none"))
    t.ok(all("k%d" % i in off for i in range(100, 110)),
         "messages sent after the cleanup went to offline storage (offline: %s)" %
         " ".join(sorted(off, key=lambda x: int(x[1:]))))

    # kate reconnects to a survivor and tries to resume her session on c.
    k2 = Client(a, "kate", bind=False)
    k2.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    res = k2.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")), 5)
    t.ok(res.tag == q(NS_SM, "failed") and res.find(q(NS_STANZAS, "item-not-found")) is not None,
         "resuming the dead node's session on a: failed with item-not-found")
    r = k2.bind("again")
    t.ok(r.get("type") == "result", "... then a fresh session binds")
    k2.presence()
    got = bodies(k2)
    t.ok(sorted(got) == sorted(off) and len(got) == len(set(got)),
         "the fresh session gets the %d offline messages once each (got %d)" %
         (len(off), len(got)))
    k2.close()
    ja.close()
    le.close()
    # Node c comes back under the same name; its old sessions are gone.
    c.start()
    t.ok(wait_for(lambda: a.log_text(0).count("link to c up") >= 2, 15),
         "node c rejoins; a links to it again")


def test_resume_elsewhere(t, nodes, redis, pg):
    """A client of b loses its connection and resumes on c while b lives:
    the session moves (test-cluster-resume.py has the details)."""
    a, b, c = nodes
    register(pg, "sara")
    register(pg, "tom")
    to = online(a, "tom")
    sa = online(b, "sara")
    sa.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    previd = sa.expect(lambda e: e.tag == q(NS_SM, "enabled")).get("id")
    t.ok(previd.startswith("b~"), "in a cluster the resumption id names its node (%s)" % previd)
    for x in (to, sa):
        known_everywhere(nodes, x.jid, redis)
    for i in range(5):
        chat(to, sa.jid, "s%d" % i)
    got = [body_of(sa.expect(is_chat("s%d" % i), 5)) for i in range(5)]
    sa.drop()  # gone without a word: b keeps the session for resumption
    t.ok(b.log_has("connection lost; resumable", 10), "b keeps sara's session detached")
    for i in range(5, 8):
        chat(to, "sara@localhost", "s%d" % i)
    started = time.time()
    s2 = Client(c, "sara", bind=False)
    s2.send("<resume xmlns='%s' previd='%s' h='5'/>" % (NS_SM, previd))
    res = s2.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")), 10)
    t.ok(res.tag == q(NS_SM, "resumed") and res.get("previd") == previd,
         "resuming b's session on c: <resumed/>")
    later = bodies(s2, 2.0)
    t.ok(sorted(later) == ["s5", "s6", "s7"],
         "the messages b held unacknowledged reach c once each (got %s)" % later)
    t.ok(wait_for(lambda: [v.split("\t")[0] for v in sessions(redis, "sara@localhost")[1::2]]
                  == ["c"], 5),
         "Redis: the session is on c")
    t.ok(time.time() - started < 15, "without waiting for the 30 s resumption timeout")
    t.ok(b.log_has("resumed on another node", 5), "b ended the old session")
    t.ok(got == ["s0", "s1", "s2", "s3", "s4"] and not any(x in later for x in got),
         "what the client acknowledged is not sent again")
    s2.close()
    to.close()


def test_leave(t, nodes, redis, pg):
    a, b, c = nodes
    register(pg, "mona")
    mo = online(b, "mona")
    known_everywhere(nodes, mo.jid, redis)
    b.stop(keep=True)
    t.ok(not sessions(redis, "mona@localhost") and
         "b" not in (redis.cli("SMEMBERS", "mk:nodes") or []),
         "SIGTERM: node b removed its sessions and itself from Redis before exiting")
    t.ok(a.log_has("node b left", 5), "a sees b leave")
    ups = [n.log_text(0).count("link to b up") for n in (a, c)]
    b.start()
    t.ok(wait_for(lambda: a.log_text(0).count("link to b up") > ups[0] and
                  c.log_text(0).count("link to b up") > ups[1], 15),
         "b restarts under the same name and the others link to it again")


def test_redis_restart(t, nodes, redis, pg):
    a, b, c = nodes
    register(pg, "nina")
    register(pg, "otto")
    register(pg, "ulla")
    ni = online(a, "nina")
    ot = online(b, "otto")
    u1 = online(b, "ulla", "one")
    u2 = online(c, "ulla", "two")
    for x in (ni, ot, u1, u2):
        known_everywhere(nodes, x.jid, redis)
    lefts = [n.log_text(0).count(" left\n") for n in nodes]
    redis.down()
    u1.close()  # ends while Redis is away: a cannot hear of it then
    for i in range(10):
        chat(ni, ot.jid, "r%d" % i)
    got = bodies(ot)
    t.ok(got == ["r%d" % i for i in range(10)],
         "Redis down: sessions known before still reach each other across nodes (%d)" %
         len(got))
    register(pg, "paul")
    pa = online(c, "paul")
    t.ok(pa.jid is not None, "Redis down: logins still work on every node")
    redis.up()
    t.ok(wait_for(lambda: "r" in sessions(redis, "paul@localhost")[0::2] and
                  "r" in sessions(redis, "nina@localhost")[0::2], 15),
         "Redis back: the nodes write their sessions again without a restart")
    t.ok(a.log_has("Redis at", 10) and a.log_has("reachable again", 10),
         "node a logs that Redis is back")
    # a learns of paul's session (bound on c while Redis was away) from
    # c's rewrite: its session table says when, not a fixed wait.
    wait_for(lambda: str(pa.jid) in a.http("GET", "/api/sessions/localhost", auth=ADMIN)[2], 15)
    chat(ni, pa.jid, "after-redis")
    t.ok(pa.maybe(is_chat("after-redis"), 15) is not None,
         "a session bound while Redis was away is reachable from another node afterwards")
    # Either on b's R event or in a's own full read, if b had rewritten
    # its sessions before a subscribed again; or on the D event of b's
    # removal of its old records, if a subscribed again before that: the
    # session table that a's admin API lists says which, not a log line.
    t.ok(wait_for(lambda: "ulla@localhost/one" not in
                  a.http("GET", "/api/sessions/localhost", auth=ADMIN)[2], 10),
         "a drops its stand-in of the resource that ended on b while Redis was away")
    chat(ni, "ulla@localhost", "to-ulla")
    t.ok(u2.maybe(is_chat("to-ulla"), 5) is not None and u2.maybe(is_chat("to-ulla"), 1) is None,
         "a message to ulla's bare JID reaches her remaining resource on c once")
    time.sleep(0.5)
    t.ok(pg.sql("SELECT COUNT(*) FROM offline_messages WHERE username = 'ulla'") == "0",
         "and is not stored offline for the resource that ended while Redis was away")
    u2.close()
    t.ok(not any("is gone" in n.log_text(0) for n in nodes),
         "no node took another for dead while Redis was away")
    t.ok([n.log_text(0).count(" left\n") for n in nodes] == lefts,
         "nor for departed when the restarted Redis listed no node yet")
    for x in (ni, ot, pa):
        x.close()


def test_pg_restart(t, nodes, redis, pg):
    a, b, c = nodes
    register(pg, "quin")
    register(pg, "rosa")
    qu = online(a, "quin")
    ro = online(c, "rosa")
    for x in (qu, ro):
        known_everywhere(nodes, x.jid, redis)
    pg.down()
    for i in range(10):
        chat(qu, ro.jid, "p%d" % i)
    got = bodies(ro)
    t.ok(got == ["p%d" % i for i in range(10)],
         "PostgreSQL down: cross-node messages still flow (%d)" % len(got))
    pg.up()
    for i in range(10, 20):
        chat(qu, ro.jid, "p%d" % i)
    got = bodies(ro)
    t.ok(got == ["p%d" % i for i in range(10, 20)], "PostgreSQL back: and after (%d)" % len(got))
    qu.close()
    ro.close()


def main():
    run_three_nodes(Tap(), MODULES, [
        ("messages", test_messages),
        ("bind visible at once", test_bind_visible),
        ("rest sessions", test_rest_sessions),
        ("presence and rosters", test_presence_roster),
        ("carbons", test_carbons),
        ("conflict", test_conflict),
        ("resume elsewhere", test_resume_elsewhere),
        ("graceful leave", test_leave),
        ("redis restart", test_redis_restart),
        ("postgresql restart", test_pg_restart),
        ("kill -9", test_kill, None),
        ("metrics", test_metrics),
    ])


if __name__ == "__main__":
    main()
