#!/usr/bin/python3
"""The connection and session gauges (docs/metrics.md) through stream
management's odd paths (XEP-0198): a session whose connection dropped
still counts as a session but no longer as a connection; resumed, on
either worker (the connection then moves between workers), it counts
once again as both; resumed while the old connection is still open, the
old one's close takes nothing of the session; a detached session that
times out, and a graceful close, take it away. Read from the [metrics]
textfile with prometheus_client's parser. Prints TAP; ignores --tap."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, NS_STREAM, Client, Server, Tap, q  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

NS_SM = "urn:xmpp:sm:3"
RESUME_TIMEOUT = 2


def scrape(srv):
    path = os.path.join(srv.state, "metrics.prom")
    if os.path.exists(path):
        os.unlink(path)
    srv.proc.send_signal(signal.SIGUSR1)
    deadline = time.time() + 10
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.02)
    with open(path) as f:
        text = f.read()
    conns = sessions = None
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "meerkat_connections" and s.labels.get("listener") == "c2s":
                conns = int(s.value)
            if s.name == "meerkat_sessions" and s.labels.get("host_type") == "default":
                sessions = int(s.value)
    return conns, sessions


def settle(srv, want, timeout=10):
    """Scrapes until (connections, sessions) is @want; returns the last."""
    deadline = time.time() + timeout
    got = scrape(srv)
    while got != want and time.time() < deadline:
        time.sleep(0.05)
        got = scrape(srv)
    return got


def enable(c):
    c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    return c.expect(lambda e: e.tag == q(NS_SM, "enabled"), what="enabled").get("id")


def resume(srv, user, previd, h):
    c = Client(srv, user, bind=False)
    c.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h))
    res = c.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")),
                   what="resumed or failed")
    return c, res


def is_msg(body):
    def pred(e):
        b = e.find(q(NS_CLIENT, "body"))
        return e.tag == q(NS_CLIENT, "message") and b is not None and b.text == body
    return pred


def test_gauges(t, srv):
    srv.register("dan")
    srv.register("eve")
    eve = Client(srv, "eve")
    dan = Client(srv, "dan", resource="d")
    previd = enable(dan)
    jid = dan.jid  # a resuming client binds nothing and so knows no JID
    t.ok(settle(srv, (2, 2)) == (2, 2), "two connections, two sessions")

    # Drop and resume until a resumption moved the connection to the
    # session's worker (SO_REUSEPORT spreads the new connections).
    h_out, moved, ok = 0, False, True
    for i in range(20):
        eve.send("<message to='%s' type='chat'><body>w%d</body></message>" % (jid, i))
        dan.expect(is_msg("w%d" % i))
        dan.drop()
        got = settle(srv, (1, 2))
        if got != (1, 2):
            ok = False
            t.diag("round %d, detached: %s" % (i, got))
            break
        dan, res = resume(srv, "dan", previd, h_out)
        h_out += 1
        got = settle(srv, (2, 2))
        if res.tag != q(NS_SM, "resumed") or got != (2, 2):
            ok = False
            t.diag("round %d, resumed: %s %s" % (i, res.attrib, got))
            break
        with open(srv.log_path) as f:
            moved = "connection moved to worker" in f.read()
        if moved and i >= 2:
            break
    t.ok(ok, "each drop leaves (1 connection, 2 sessions), each resumption (2, 2)")
    t.ok(moved, "one of the resumptions moved the connection to the other worker")

    # Resumed while the old connection is open: the old one is closed
    # with conflict, the session stays one.
    dan.send("<a xmlns='%s' h='%d'/>" % (NS_SM, h_out))
    dan2, res = resume(srv, "dan", previd, h_out)
    dan.expect(lambda e: e.tag == q(NS_STREAM, "error"), what="the conflict")
    t.ok(res.tag == q(NS_SM, "resumed") and settle(srv, (2, 2)) == (2, 2),
         "resumed over a live connection: still 2 connections, 2 sessions")

    # A graceful close ends it.
    dan2.close()
    t.ok(settle(srv, (1, 1)) == (1, 1), "</stream:stream>: 1 connection, 1 session")

    # A dropped session that is never resumed leaves when it expires.
    fay = Client(srv, srv.register("fay").split("@")[0])
    enable(fay)
    t.ok(settle(srv, (2, 2)) == (2, 2), "fay: 2 connections, 2 sessions")
    fay.drop()
    t.ok(settle(srv, (1, 2)) == (1, 2), "fay dropped: 1 connection, still 2 sessions")
    t.ok(settle(srv, (1, 1), timeout=RESUME_TIMEOUT + 10) == (1, 1),
         "after resume_timeout: 1 connection, 1 session")
    eve.close()
    t.ok(settle(srv, (0, 0)) == (0, 0), "everyone gone: 0, 0")


def main():
    t = Tap()
    srv = Server({"mod_stream_management": {"resume_timeout": RESUME_TIMEOUT}}, workers=2,
                 extra_conf="\n[metrics]\ntextfile = metrics.prom\ntextfile_interval = 3600\n")
    try:
        t.run("gauges", test_gauges, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
