#!/usr/bin/python3
"""mod_global_distrib (docs/mod_global_distrib.md): two regions of the
domain localhost on loopback, "eu" and "us", each a single meerkatd with
its own sqlite database, and one global redis-server started here. The
mapping in Redis (bind, refresh, unbind, expiry), messages both ways in
order and once, an IQ to a full JID in the other region and its result,
a presence subscription across regions, the hop limit on an artificial
loop, a user who moves between regions in the middle of a conversation
(nothing lost, nothing twice), offline storage in the user's home
region, a user bound in both regions at once (stanzas for her bare JID
reach both), and the loss of a region (kill -9). The links run in TLS
(link_tls, certificates made here with openssl) when openssl is there;
test-global-distrib-cluster.py keeps the plain links. Skipped without
redis-server. Prints TAP; ignores --tap."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, Client, Tap, error_condition, is_presence, q,
                     subscribe)  # noqa: E402
from clustertest import Certs, Redis, wait_for  # noqa: E402
from gdtest import region, stop_all  # noqa: E402

EXPIRE = 4  # gdtest.gd_conf's expire_after
MODULES = {"mod_roster": None, "mod_offline": None}


def body_of(e):
    return e.findtext(q(NS_CLIENT, "body"))


def is_chat(body=None):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and e.get("type") != "error" and
                      body_of(e) is not None and (body is None or body_of(e) == body))


def bodies(c, wait=1.5):
    out = []
    while True:
        e = c.maybe(is_chat(), wait)
        if e is None:
            return out
        out.append(body_of(e))


def chat(c, to, body, type="chat"):
    c.send("<message to='%s' type='%s' id='%s'><body>%s</body></message>" % (to, type, body, body))


def mapped(redis, jid):
    return redis.cli("GET", "gd:j:" + jid)


def offline_count(srv, user):
    return srv.sql("SELECT COUNT(*) FROM offline_messages WHERE username = ?", user)[0][0]


def test_mapping(t, eu, us, redis):
    al = Client(eu, "alice")
    t.ok(wait_for(lambda: mapped(redis, al.jid) == "eu", 10),
         "a bound session's full JID is in Redis as living in eu")
    t.ok(mapped(redis, "alice@localhost") == "eu", "and its bare JID")
    t.ok(redis.cli("GET", "gd:h:alice@localhost") == "eu", "and eu is her home region")
    ttl = redis.cli("PTTL", "gd:j:" + al.jid)
    t.ok(0 < ttl <= EXPIRE * 1000, "the record expires (PTTL %d ms)" % ttl)
    low = [ttl]

    def refreshed():
        v = redis.cli("PTTL", "gd:j:" + al.jid)
        low[0] = min(low[0], v)
        return v > low[0] + 200
    t.ok(wait_for(refreshed, 10), "and is refreshed before it expires")
    eps = redis.cli("ZRANGE", "gd:ep:us", "0", "-1")
    t.ok(eps == ["%s:%d" % (us.address, us.link_port)], "us advertises its endpoint (%s)" % eps)
    al2 = Client(eu, "alice", resource="two")
    t.ok(wait_for(lambda: mapped(redis, al2.jid) == "eu", 10), "a second resource is recorded")
    al2.close()
    t.ok(wait_for(lambda: mapped(redis, al2.jid) is None, 10), "its end removes its record")
    t.ok(mapped(redis, "alice@localhost") == "eu",
         "but not the bare JID's while another resource is bound")
    al.close()
    t.ok(wait_for(lambda: mapped(redis, "alice@localhost") is None and
                  mapped(redis, al.jid) is None, 10),
         "the last resource's end removes both")
    t.ok(redis.cli("GET", "gd:h:alice@localhost") == "eu", "the home region stays")


def test_messages(t, eu, us, redis):
    al = Client(eu, "alice")
    bo = Client(us, "bob")
    al.presence()
    bo.presence()
    wait_for(lambda: mapped(redis, bo.jid) == "us" and mapped(redis, al.jid) == "eu", 10)
    for i in range(20):
        chat(al, "bob@localhost", "bare%d" % i)
    for i in range(20):
        chat(al, bo.jid, "full%d" % i)
    got = bodies(bo)
    want = ["bare%d" % i for i in range(20)] + ["full%d" % i for i in range(20)]
    t.ok(got == want, "40 messages eu -> us (bare and full JID) arrive once each, in order "
         "(%d)" % len(got))
    for i in range(20):
        chat(bo, al.jid, "back%d" % i)
    got = bodies(al)
    t.ok(got == ["back%d" % i for i in range(20)], "20 messages us -> eu, in order (%d)" % len(got))
    e = al.maybe(is_chat("back0"), 0.1)
    t.ok(e is None, "nothing twice")
    # An IQ to a full JID in the other region, and its result.
    al.send("<iq type='get' id='v1' to='%s'><query xmlns='jabber:iq:version'/></iq>" % bo.jid)
    e = bo.maybe(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "v1", 5)
    t.ok(e is not None and e.get("from") == al.jid,
         "an IQ to a full JID in the other region reaches it, from the sender's full JID")
    bo.send("<iq type='result' id='v1' to='%s'><query xmlns='jabber:iq:version'>"
            "<name>test</name></query></iq>" % al.jid)
    r = al.maybe(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "v1", 5)
    t.ok(r is not None and r.get("type") == "result" and r.get("from") == bo.jid,
         "... and its result comes back")
    # A resource that exists nowhere: the region that holds the account answers.
    al.send("<iq type='get' id='v2' to='bob@localhost/nope'><ping xmlns='urn:xmpp:ping'/></iq>")
    r = al.maybe(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "v2", 5)
    t.ok(r is not None and r.get("type") == "error" and
         error_condition(r) == "service-unavailable",
         "an IQ to a resource bound nowhere gets service-unavailable")
    status, _, text = eu.http("GET", "/metrics")
    out = metric(text, 'meerkat_mod_global_distrib_stanzas_out_total{host_type="default",'
                 'region="us"}')
    inn = metric(text, 'meerkat_mod_global_distrib_stanzas_in_total{host_type="default",'
                 'region="us"}')
    t.ok(status == 200 and out is not None and out >= 42 and inn is not None and inn >= 21,
         "eu counts the stanzas it sent to and got from region us (%s, %s)" % (out, inn))
    al.close()
    bo.close()


def metric(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def test_presence(t, eu, us, redis):
    ca = Client(eu, "carl")
    da = Client(us, "dora")
    for c in (ca, da):
        c.roster_get()
        c.presence()
    wait_for(lambda: mapped(redis, da.jid) == "us" and mapped(redis, ca.jid) == "eu", 10)
    try:
        subscribe(ca, da)
        ok = True
    except Exception as e:  # expect() raises on a timeout
        ok = False
        t.diag(str(e))
    t.ok(ok, "carl (eu) subscribes to dora (us) and she approves: requests and pushes cross")
    t.ok(ca.maybe(is_presence(None, da.jid), 5) is not None,
         "carl gets dora's presence from the other region")
    t.ok(eu.sql("SELECT COUNT(*) FROM roster_items WHERE username = 'carl'")[0][0] == 1 and
         us.sql("SELECT COUNT(*) FROM roster_items WHERE username = 'dora'")[0][0] == 1 and
         eu.sql("SELECT COUNT(*) FROM roster_items WHERE username = 'dora'")[0][0] == 0,
         "each roster is kept in its owner's region only")
    da.presence(extra="<status>away</status>")
    e = ca.maybe(lambda e: e.tag == q(NS_CLIENT, "presence") and
                 e.findtext(q(NS_CLIENT, "status")) == "away", 5)
    t.ok(e is not None, "a presence change of dora reaches her subscriber in eu")
    da.close()
    e = ca.maybe(is_presence("unavailable", da.jid), 5)
    t.ok(e is not None, "and her unavailable presence too")
    ca.close()


def test_hop_limit(t, eu, us, redis):
    """eu caches its lookups for long, us not at all: a record changed in
    Redis without the invalidation makes them disagree, a loop."""
    ed = Client(eu, "edna")
    redis.cli("SET", "gd:j:ghost@localhost", "us")
    # An IQ to a resource of ghost: eu looks ghost up (and caches "us"),
    # us answers it; once the error is back, eu's cache is set.
    ed.send("<iq type='get' id='prime' to='ghost@localhost/x'><ping xmlns='urn:xmpp:ping'/></iq>")
    r = ed.maybe(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "prime", 10)
    t.ok(r is not None and r.get("type") == "error",
         "an IQ for an account held in us (per Redis) is answered there")
    redis.cli("SET", "gd:j:ghost@localhost", "eu")
    chat(ed, "ghost@localhost", "loop")
    e = ed.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("type") == "error", 10)
    t.ok(e is not None and error_condition(e) == "service-unavailable",
         "a message caught in a loop between regions comes back as an error (%s)" %
         (error_condition(e) if e is not None else None))
    t.ok(wait_for(lambda: "crossed 4 links" in eu.log_text(300) or
                  "crossed 4 links" in us.log_text(300), 5),
         "after 4 links")
    t.ok(offline_count(eu, "ghost") == 0 and offline_count(us, "ghost") == 0,
         "and is stored nowhere")
    redis.cli("DEL", "gd:j:ghost@localhost")
    ed.close()


def test_moving(t, eu, us, redis):
    fr = Client(eu, "fred")
    gi = Client(us, "gina")
    gi.presence()
    wait_for(lambda: mapped(redis, gi.jid) == "us", 10)
    for i in range(10):
        chat(fr, "gina@localhost", "m%d" % i)
    first = bodies(gi)
    gi.close()
    t.ok(wait_for(lambda: mapped(redis, "gina@localhost") is None, 10),
         "gina logs out of us")
    for i in range(10, 20):
        chat(fr, "gina@localhost", "m%d" % i)
    g2 = Client(eu, "gina")
    g2.presence()
    for i in range(20, 30):
        chat(fr, "gina@localhost", "m%d" % i)
    second = bodies(g2, 3)
    t.ok(first == ["m%d" % i for i in range(10)], "before the move: 10 messages in us (%d)" %
         len(first))
    t.ok(sorted(second) == sorted("m%d" % i for i in range(10, 30)) and
         len(second) == len(set(second)),
         "after logging in to eu she gets the 20 others, each once (%d, %s)" % (
             len(second), second))
    t.ok(offline_count(eu, "gina") == 0 and offline_count(us, "gina") == 0,
         "none went to offline storage")
    # Nobody catches it: after the bounce retries, offline in the home region.
    g2.close()
    wait_for(lambda: mapped(redis, "gina@localhost") is None, 10)
    chat(fr, "gina@localhost", "later")
    t.ok(wait_for(lambda: offline_count(eu, "gina") == 1, 10) and offline_count(us, "gina") == 0,
         "a message for her while she is offline is stored once, in her home region (eu)")
    fr.close()


def test_two_regions(t, eu, us, redis):
    """mia is bound in both regions at once: stanzas for her bare JID
    reach her resources in both, each once."""
    me = Client(eu, "mia", resource="e")
    mu = Client(us, "mia", resource="u")
    ni = Client(eu, "nils")
    ol = Client(us, "olga")
    for c in (me, mu, ni, ol):
        c.roster_get()
        c.presence()
    t.ok(wait_for(lambda: sorted(redis.cli("ZRANGE", "gd:r:mia@localhost", "0", "-1") or []) ==
                  ["eu", "us"], 10),
         "mia's region set in Redis names both regions")
    for i in range(5):
        chat(ni, "mia@localhost", "from-eu%d" % i)
        chat(ol, "mia@localhost", "from-us%d" % i)
    got_e, got_u = bodies(me), bodies(mu)
    want = sorted(["from-eu%d" % i for i in range(5)] + ["from-us%d" % i for i in range(5)])
    t.ok(sorted(got_e) == want, "messages to her bare JID from both regions reach her eu "
         "resource, once each (%s)" % got_e)
    t.ok(sorted(got_u) == want, "... and her us resource, once each (%s)" % got_u)
    t.ok([b for b in got_e if b.startswith("from-eu")] == ["from-eu%d" % i for i in range(5)] and
         [b for b in got_u if b.startswith("from-eu")] == ["from-eu%d" % i for i in range(5)],
         "in the order they were sent")
    chat(ni, mu.jid, "only-u")
    t.ok(mu.maybe(is_chat("only-u"), 5) is not None and me.maybe(is_chat("only-u"), 1) is None,
         "a message to one full JID reaches that resource only")
    # nils's presence reaches both of her resources.
    try:
        subscribe(me, ni)
        ok = True
    except Exception as e:
        ok = False
        t.diag(str(e))
    t.ok(ok, "mia (eu resource) subscribes to nils (eu) and he approves")
    ni.presence(extra="<status>lunch</status>")

    def status_from(frm, text):
        return lambda e: (e.tag == q(NS_CLIENT, "presence") and e.get("from") == frm and
                          e.findtext(q(NS_CLIENT, "status")) == text)
    t.ok(me.maybe(status_from(ni.jid, "lunch"), 5) is not None and
         mu.maybe(status_from(ni.jid, "lunch"), 5) is not None,
         "a presence change of nils reaches mia's resources in both regions")
    mu.close()
    t.ok(wait_for(lambda: redis.cli("ZRANGE", "gd:r:mia@localhost", "0", "-1") == ["eu"] and
                  mapped(redis, "mia@localhost") == "eu", 10),
         "mia leaves us: the set and her bare JID's record name eu only")
    chat(ol, "mia@localhost", "after")
    t.ok(me.maybe(is_chat("after"), 5) is not None and offline_count(us, "mia") == 0,
         "a message from us to her bare JID now reaches eu, nothing stored in us")
    for c in (me, ni, ol):
        c.close()


def test_redis_restart(t, eu, us, redis):
    ka = Client(eu, "karl")
    lu = Client(us, "luna")
    lu.presence()
    wait_for(lambda: mapped(redis, lu.jid) == "us" and mapped(redis, ka.jid) == "eu", 10)
    redis.down()
    redis.up()  # empty: no persistence
    t.ok(wait_for(lambda: mapped(redis, lu.jid) == "us" and mapped(redis, ka.jid) == "eu" and
                  redis.cli("GET", "gd:h:luna@localhost") == "us" and
                  redis.cli("ZCARD", "gd:ep:us") == 1, 15),
         "Redis restarted empty: each region writes its records and endpoint again")
    t.ok(wait_for(lambda: "reachable again" in eu.log_text(400), 10),
         "and eu logs that Redis is back")
    for i in range(5):
        chat(ka, "luna@localhost", "r%d" % i)
        chat(lu, ka.jid, "s%d" % i)
    got_l = bodies(lu)
    got_k = bodies(ka)
    t.ok(got_l == ["r%d" % i for i in range(5)] and got_k == ["s%d" % i for i in range(5)],
         "messages cross both ways afterwards, once each, in order (%d, %d)" % (
             len(got_l), len(got_k)))
    ka.close()
    lu.close()


def test_region_loss(t, eu, us, redis):
    hu = Client(eu, "hugo")
    ir = Client(us, "iris")
    ir.presence()
    wait_for(lambda: mapped(redis, ir.jid) == "us", 10)
    chat(hu, ir.jid, "before")
    t.ok(ir.maybe(is_chat("before"), 5) is not None, "hugo (eu) reaches iris (us)")
    us.proc.kill()
    us.proc.wait()
    for i in range(5):
        chat(hu, "iris@localhost", "lost%d" % i)
    t.ok(wait_for(lambda: offline_count(eu, "iris") == 5, 15),
         "us killed: messages for its users are stored in eu once its link timed out (%d)" %
         offline_count(eu, "iris"))
    t.ok(wait_for(lambda: mapped(redis, ir.jid) is None and
                  mapped(redis, "iris@localhost") is None, EXPIRE + 5),
         "the dead region's records expire from Redis")
    ju = Client(eu, "juno")
    ju.presence()
    chat(hu, ju.jid, "still")
    t.ok(ju.maybe(is_chat("still"), 5) is not None, "eu keeps serving its own users")
    hu.close()
    ju.close()


def main():
    t = Tap()
    if not shutil.which("redis-server"):
        print("1..0 # SKIP no redis-server")
        return
    redis = eu = us = certs = None
    try:
        redis = Redis()
        tls = {"eu": {}, "us": {}}
        if shutil.which("openssl"):
            certs = Certs()
            tls = {name: certs.link_keys(name) for name in tls}
        eu = region("eu", redis, "127.0.0.1", MODULES, http={"metrics": "true"},
                    cache_lifetime_ms=600000, **tls["eu"])
        us = region("us", redis, "127.0.0.2", MODULES, http={"metrics": "true"},
                    cache_lifetime_ms=0, **tls["us"])
        for srv in (eu, us):
            for u in ("alice", "bob", "carl", "dora", "edna", "fred", "gina", "hugo", "iris",
                      "juno", "karl", "luna", "mia", "nils", "olga"):
                srv.register(u)
        t.ok(wait_for(lambda: redis.cli("ZCARD", "gd:ep:eu") == 1 and
                      redis.cli("ZCARD", "gd:ep:us") == 1, 15),
             "both regions advertise their link endpoint")
        t.run("mapping", test_mapping, eu, us, redis)
        t.run("messages and IQ", test_messages, eu, us, redis)
        if certs:
            t.ok(wait_for(lambda: "to region us up (TLS)" in eu.log_text(0) and
                          "from region eu up (TLS)" in us.log_text(0), 15),
                 "the messages went over TLS links")
        t.run("presence subscription", test_presence, eu, us, redis)
        t.run("hop limit", test_hop_limit, eu, us, redis)
        t.run("moving user", test_moving, eu, us, redis)
        t.run("user in two regions", test_two_regions, eu, us, redis)
        t.run("redis restart", test_redis_restart, eu, us, redis)
        t.run("region loss", test_region_loss, eu, us, redis)
    except Exception as e:
        t.ok(False, "regions start: %s" % e)
    finally:
        stop_all(t, (eu, us), redis, certs)
    t.done()


if __name__ == "__main__":
    main()
