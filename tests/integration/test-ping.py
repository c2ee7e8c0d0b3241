#!/usr/bin/python3
"""mod_ping (XEP-0199) with ping_interval: a silent client that answers
pings stays connected; a silent client that never answers is closed with
the stream error connection-timeout. Prints TAP; ignores --tap."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, NS_STREAM, NS_STREAMS_ERR, Client, Server, Tap, q  # noqa: E402


def is_ping(e):
    return (e.tag == q(NS_CLIENT, "iq") and e.get("type") == "get" and
            e.find(q("urn:xmpp:ping", "ping")) is not None)


def test_idle(t, srv):
    srv.register("kate")
    srv.register("liam")
    good = Client(srv, "kate")
    good.auto_pong = True
    bad = Client(srv, "liam")

    p = bad.expect(is_ping, timeout=6, what="a ping")
    t.ok(p is not None, "the silent client is pinged too")
    # ... and never answers.
    err = bad.expect(lambda e: e.tag == q(NS_STREAM, "error"), timeout=8, what="a stream error")
    t.ok(err.find(q(NS_STREAMS_ERR, "connection-timeout")) is not None,
         "an unanswered ping closes the stream with connection-timeout")
    t.ok(bad.closed.wait(3), "and the connection is closed")

    # The client that answered is still there and can talk.
    t.ok(len(good.pings) > 0 and good.pings[0].get("from") == "localhost" and
         good.pings[0].get("to") == good.jid,
         "the answering client was pinged %d times, from the server to its full JID"
         % len(good.pings))
    res = good.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    t.ok(res.get("type") == "result", "the client that answered is still connected")
    good.close()


def main():
    t = Tap()
    try:
        srv = Server({"mod_ping": {"ping_interval": 1, "ping_timeout": 2}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_ping starts")
        t.diag(e)
        t.done()
    try:
        t.run("idle pings", test_idle, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
