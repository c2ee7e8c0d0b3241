#!/usr/bin/python3
"""Node links in TLS (docs/clustering.md, "Node links"): certificates made
here with openssl (a CA, the nodes' certificates, and a second CA that
the nodes do not trust). Nodes a and b with `link_tls = true` link over
TLS and carry messages in order; a node whose certificate another CA
signed is refused (certificate), a node with the right certificate and
the wrong secret is refused (secret), a plain peer speaking the link
handshake to a TLS listener is refused (protocol) -- each with a log line
and meerkat_cluster_link_refused_total{reason}. One redis-server and one
PostgreSQL for the whole program. Skipped without redis-server,
PostgreSQL or openssl. Prints TAP; ignores --tap."""
import os
import shutil
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Tap, q  # noqa: E402
from clustertest import Certs, Node, Pg, Redis, register, stop_nodes, wait_for  # noqa: E402

MODULES = {"mod_roster": None}


def refused(node, reason):
    return node.metrics().get('meerkat_cluster_link_refused_total{reason="%s"}' % reason, 0)


def test_traffic(t, a, b, pg):
    t.ok(a.log_has("cluster: link to b up (TLS)") and b.log_has("cluster: link to a up (TLS)"),
         "a and b link to each other over TLS")
    register(pg, "alice")
    register(pg, "bob")
    al = Client(a, "alice")
    bo = Client(b, "bob")
    al.presence()
    bo.presence()
    t.ok(wait_for(lambda: "cluster: %s on b (available)" % bo.jid in a.log_text(0), 10),
         "a knows bob's session on b")
    for i in range(30):
        al.send("<message to='%s' type='chat'><body>m%d</body></message>" % (bo.jid, i))
    got = []
    while True:
        e = bo.maybe(lambda e: e.tag == q(NS_CLIENT, "message"), 3)
        if e is None:
            break
        got.append(e.findtext(q(NS_CLIENT, "body")))
    t.ok(got == ["m%d" % i for i in range(30)],
         "30 messages a -> b over the TLS link, in order, once each (%d)" % len(got))
    bo.send("<message to='%s' type='chat'><body>back</body></message>" % al.jid)
    e = al.maybe(lambda e: e.tag == q(NS_CLIENT, "message"), 5)
    t.ok(e is not None and e.findtext(q(NS_CLIENT, "body")) == "back", "b -> a too")
    al.close()
    bo.close()


def test_untrusted(t, a, b, c):
    t.ok(a.log_has("link from c refused") or a.log_has("link to c refused"),
         "a refuses node c whose certificate another CA signed (log)")
    t.ok(wait_for(lambda: refused(a, "certificate") >= 1, 10),
         "... counted as reason=certificate")
    t.ok("link to c up" not in a.log_text(0) and "link from c up" not in a.log_text(0),
         "... and no link with c comes up")


def test_wrong_secret(t, a, d):
    t.ok(a.log_has("d does not know the secret"), "a refuses node d with the wrong secret (log)")
    t.ok(wait_for(lambda: refused(a, "secret") >= 1, 10), "... counted as reason=secret")
    t.ok("link to d up" not in a.log_text(0) and "link from d up" not in a.log_text(0),
         "... and no link with d comes up")
    # d redials every 0.5 s and is refused each time: counted each time,
    # logged once (then at most once a minute).
    t.ok(wait_for(lambda: refused(a, "secret") >= 6, 15),
         "d keeps being refused (%d refusals counted)" % refused(a, "secret"))
    lines = [ln for ln in a.log_text(0).splitlines()
             if "refused" in ln and "d does not know the secret" in ln]
    t.ok(len(lines) == 1, "... and a logs that refusal once (%d lines)" % len(lines))
    lines = [ln for ln in d.log_text(0).splitlines()
             if "refused" in ln and "a does not know the secret" in ln]
    t.ok(len(lines) == 1, "... as d logs its refusal of a once (%d lines)" % len(lines))


def test_plain_peer(t, a):
    before = refused(a, "protocol")
    s = socket.create_connection(("127.0.0.1", a.link_port), 5)
    # A plain node's first frame (AUTH) where TLS is expected.
    payload = b"\x02x\x00" + b"0" * 64 + b"\x00" + b"0" * 64
    s.sendall(struct.pack(">I", len(payload)) + payload)
    s.settimeout(5)
    closed = False
    try:
        while s.recv(4096):
            pass
        closed = True
    except OSError:
        closed = True
    s.close()
    t.ok(closed, "a TLS listener closes a plain peer's connection")
    t.ok(wait_for(lambda: refused(a, "protocol") > before, 10),
         "... refused as reason=protocol (%s)" % refused(a, "protocol"))
    t.ok(a.log_has("does not speak TLS"), "... with a log line")


def main():
    t = Tap()
    if (not shutil.which("redis-server") or not os.path.isdir("/usr/lib/postgresql") or
            not shutil.which("openssl")):
        print("1..0 # SKIP no redis-server, PostgreSQL or openssl")
        return
    redis = pg = certs = other = None
    nodes = []
    try:
        redis = Redis()
        pg = Pg()
        certs = Certs()
        os.makedirs(os.path.join(certs.dir, "other"))
        other = Certs(os.path.join(certs.dir, "other"), "mk-other-ca")
        a = Node("a", 1, redis, pg, MODULES, cluster_keys=certs.link_keys("a"))
        nodes.append(a)
        b = Node("b", 2, redis, pg, MODULES, cluster_keys=certs.link_keys("b"))
        nodes.append(b)
        t.run("traffic over TLS", test_traffic, a, b, pg)
        # c trusts our CA but its own certificate is the other CA's.
        ck = other.link_keys("c", ca=certs.ca)
        c = Node("c", 3, redis, pg, MODULES, cluster_keys=ck)
        nodes.append(c)
        t.run("untrusted certificate", test_untrusted, a, b, c)
        c.stop()
        nodes.remove(c)
        d = Node("d", 4, redis, pg, MODULES, cluster_keys=certs.link_keys("d"),
                 secret="another-secret-0123456789")
        nodes.append(d)
        t.run("wrong secret", test_wrong_secret, a, d)
        t.run("plain peer", test_plain_peer, a)
    except Exception as e:
        t.ok(False, "nodes start: %s" % e)
    finally:
        stop_nodes(t, nodes, pg, redis, certs)
    t.done()


if __name__ == "__main__":
    main()
