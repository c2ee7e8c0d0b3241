#!/usr/bin/python3
"""mod_global_distrib with a region that is a cluster: region "eu" is two
meerkatd nodes (PostgreSQL and a cluster Redis of their own), region "us"
a single node on sqlite, one global redis-server; all started here, on
loopback. Both eu nodes advertise a link endpoint; stanzas from us reach
users on either eu node (through eu's cluster when they land on the
other node), in order and once, and answers come back from both nodes;
a bare JID's record stays while the account has a resource on another
node of the region; when the eu node us is linked to is killed (kill -9),
us links to the other one and its users keep getting their messages.
Skipped without redis-server or PostgreSQL. Prints TAP; ignores --tap."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Server, Tap, free_port, q  # noqa: E402
from clustertest import Node, Pg, Redis, register, stop_nodes, wait_for  # noqa: E402
from gdtest import gd_conf  # noqa: E402

USERS = ("kim", "lea", "max", "ned")


def body_of(e):
    return e.findtext(q(NS_CLIENT, "body"))


def bodies(c, wait=1.5):
    out = []
    while True:
        e = c.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and body_of(e) is not None and
                    e.get("type") != "error", wait)
        if e is None:
            return out
        out.append((e.get("from"), body_of(e)))


def chat(c, to, body):
    c.send("<message to='%s' type='chat' id='%s'><body>%s</body></message>" % (to, body, body))


def mapped(redis, jid):
    return redis.cli("GET", "gd:j:" + jid)


def run(t, eu, us, gredis):
    a, b = eu
    t.ok(wait_for(lambda: gredis.cli("ZCARD", "gd:ep:eu") == 2 and
                  gredis.cli("ZCARD", "gd:ep:us") == 1, 15),
         "both nodes of eu and the node of us advertise a link endpoint")
    ki = Client(a, "kim")
    le = Client(b, "lea")
    mx = Client(us, "max")
    for c in (ki, le, mx):
        c.presence()
    t.ok(wait_for(lambda: mapped(gredis, ki.jid) == "eu" and mapped(gredis, le.jid) == "eu" and
                  mapped(gredis, mx.jid) == "us", 10),
         "sessions on both eu nodes are recorded as living in eu")
    for i in range(15):
        chat(mx, "kim@localhost", "k%d" % i)
        chat(mx, "lea@localhost", "l%d" % i)
    gk = [m for f, m in bodies(ki)]
    gl = [m for f, m in bodies(le)]
    t.ok(gk == ["k%d" % i for i in range(15)] and gl == ["l%d" % i for i in range(15)],
         "us -> users on either eu node: each message once, in order (%d, %d)" % (
             len(gk), len(gl)))
    linked = [n for n in (a, b) if "link from region us up" in n.log_text(0)]
    t.ok(len(linked) == 1, "us sends to eu on one link, to node %s" % (
        linked[0].name if linked else None))
    chat(ki, mx.jid, "from-a")
    chat(le, mx.jid, "from-b")
    got = sorted(bodies(mx))
    t.ok(got == sorted([(ki.jid, "from-a"), (le.jid, "from-b")]),
         "both eu nodes reach us (%s)" % got)
    # A second resource of lea on node a: her bare record stays while one
    # of her resources is bound anywhere in eu.
    l2 = Client(a, "lea", resource="two")
    wait_for(lambda: mapped(gredis, l2.jid) == "eu", 10)
    # Node b must know that session (its stand-in) when lea's resource
    # there ends: a session a few milliseconds old may be missed, and its
    # node writes the bare record again at its next refresh.
    b.log_has("cluster: %s on a (" % l2.jid, 10)
    le.close()
    t.ok(wait_for(lambda: mapped(gredis, le.jid) is None, 10) and
         mapped(gredis, "lea@localhost") == "eu",
         "lea's resource on b ends: her bare record stays (a resource on a is left)")
    l2.close()
    t.ok(wait_for(lambda: mapped(gredis, "lea@localhost") is None, 10),
         "her last resource ends: the bare record goes")
    # Lose the eu node us is linked to: us links to the other one.
    if not linked:
        return
    dead = linked[0]
    alive = b if dead is a else a
    ne = Client(alive, "ned")
    ne.presence()
    wait_for(lambda: mapped(gredis, ne.jid) == "eu", 10)
    dead.kill()
    for i in range(10):
        chat(mx, "ned@localhost", "n%d" % i)
    got = [m for f, m in bodies(ne, 8)]
    t.ok(got == ["n%d" % i for i in range(10)],
         "eu node %s killed: us links to %s and ned there gets every message once, in order "
         "(%s)" % (dead.name, alive.name, got))
    t.ok(alive.log_has("link from region us up", 10), "the new link is to the surviving node")
    for c in (ki, ne, mx):
        c.close()


def main():
    t = Tap()
    if not shutil.which("redis-server") or not os.path.isdir("/usr/lib/postgresql"):
        print("1..0 # SKIP no redis-server or no PostgreSQL")
        return
    gredis = credis = pg = us = None
    eu = []
    try:
        gredis = Redis()
        credis = Redis()
        pg = Pg()
        for i, name in enumerate("ab"):
            mods = {"mod_roster": None, "mod_offline": None,
                    "mod_global_distrib": gd_conf("eu", gredis, "127.0.0.1", free_port(),
                                                  queue_timeout_ms=10000)}
            eu.append(Node(name, i + 1, credis, pg, mods))
        us = Server({"mod_roster": None, "mod_offline": None,
                     # One connection: the failover below kills the node it goes to.
                     "mod_global_distrib": gd_conf("us", gredis, "127.0.0.1", free_port(),
                                                   queue_timeout_ms=10000,
                                                   connections_per_endpoint=1)})
        for u in USERS:
            register(pg, u)
            us.register(u)
        t.ok(wait_for(lambda: all("cluster: link to" in n.log_text(0) for n in eu), 15),
             "the eu nodes form a cluster")
        t.run("regions", run, eu, us, gredis)
    except Exception as e:
        t.ok(False, "regions start: %s" % e)
    finally:
        us_node = [us] if us else []
        stop_nodes(t, eu + us_node, gredis, credis, pg)
    t.done()


if __name__ == "__main__":
    main()
