#!/usr/bin/python3
"""Privacy-list sets on a 10,000-item roster (docs/security.md, "One
user's expensive request"): server CPU per set, and the round trip of
another pair's messages meanwhile (measured in a separate process, so
that this script's own parsing does not delay it). Not part of make
check or make bench; run from the build directory:

    SRC=.. MK_TOP_BUILDDIR=$PWD N=200 python3 ../tools/bench/bench-privacy.py
"""
import os
import statistics
import sys
import time
sys.path.insert(0, os.path.join(os.environ["SRC"], "tests/integration"))
from modtest import Client, Server, q, NS_CLIENT
N = int(os.environ.get("N", "200"))
ROSTER = 10000

def cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

srv = Server({"mod_roster": {"max_items": 100000, "max_bytes": 1310720}, "mod_privacy": {}})
try:
    for u in ("alice", "bob", "carol"):
        srv.register(u)
    import sqlite3
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=30)
    with db:
        db.executemany("INSERT INTO roster_items (username, domain, contact, subscription, in_roster)"
                       " VALUES ('alice', 'localhost', ?, 'both', 1)",
                       [("c%05d@localhost" % i,) for i in range(ROSTER)])
        db.executemany("INSERT INTO roster_groups (username, domain, contact, grp)"
                       " VALUES ('alice', 'localhost', ?, ?)",
                       [("c%05d@localhost" % i, "g%d" % (i % 10)) for i in range(ROSTER)])
    db.close()
    a = Client(srv, "alice")
    a.presence()
    b = Client(srv, "bob")
    c = Client(srv, "carol")
    # A default list so that every edit changes what the session applies.
    a.iq("<query xmlns='jabber:iq:privacy'><list name='d'><item type='jid' value='x@example.org'"
         " action='deny' order='1'><presence-out/></item></list></query>", "set")
    a.iq("<query xmlns='jabber:iq:privacy'><default name='d'/></query>", "set")
    a.drain()
    import multiprocessing
    lat = multiprocessing.Manager().list()
    stop = multiprocessing.Event()
    b.close(); c.close()
    def pingpong():
        b = Client(srv, "bob")
        c = Client(srv, "carol")
        i = 0
        while not stop.is_set():
            i += 1
            t0 = time.time()
            b.send("<message to='carol@localhost/r' type='chat' id='m%d'><body>x</body></message>" % i)
            c.expect(lambda e: e.get("id") == "m%d" % i, 10)
            lat.append(time.time() - t0)
            time.sleep(0.005)
    th = multiprocessing.Process(target=pingpong); th.start()
    time.sleep(1.5)
    base = list(lat)
    c0 = cpu(srv.proc.pid); t0 = time.time()
    ids = []
    for i in range(N):
        v = "y%d@example.org" % i
        ids.append("p%d" % i)
        a.send("<iq type='set' id='p%d'><query xmlns='jabber:iq:privacy'><list name='d'>"
               "<item type='jid' value='%s' action='deny' order='1'><presence-out/></item>"
               "<item type='group' value='g%d' action='%s' order='2'><presence-out/></item>"
               "</list></query></iq>" % (i, v, i % 10, "deny" if i % 2 else "allow"))
    for i in ids:
        a.expect(lambda e: e.get("id") == i, 120)
    t1 = time.time(); c1 = cpu(srv.proc.pid)
    stop.set(); th.join()
    during = list(lat)[len(base):]
    print("sets: %d in %.2f s wall, server CPU %.1f ms per set" % (N, t1 - t0, (c1 - c0) * 1000 / N))
    during.sort()
    print("other users' message round trip during the sets: p50 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d);"
          " before: p50 %.1f ms max %.1f" % (statistics.median(during) * 1000, during[int(len(during)*0.99)]*1000, max(during) * 1000, len(during),
                                     statistics.median(base) * 1000, max(base)*1000))
    print("'database is locked' in log:", open(srv.log_path).read().count("database is locked"))
except Exception:
    print(srv.log_text(15))
    raise
finally:
    srv.stop()
