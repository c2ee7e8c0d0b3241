#!/usr/bin/python3
"""mod_ping (XEP-0199) with ping_interval: a silent client that answers
pings stays connected; a silent client that never answers is closed with
the stream error connection-timeout; a session detached by stream
management (XEP-0198) is neither pinged nor closed while it waits for
resumption. Prints TAP; ignores --tap."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, NS_STREAM, NS_STREAMS_ERR, Client, Server, Tap,  # noqa: E402
                     error_condition, q)


NS_SM = "urn:xmpp:sm:3"
PING_INTERVAL = 1
PING_TIMEOUT = 2
RESUME_TIMEOUT = 30  # far longer than any wait below


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


def sm_enable(c):
    c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    e = c.expect(lambda e: e.tag in (q(NS_SM, "enabled"), q(NS_SM, "failed")),
                 what="enabled or failed")
    return e.get("id") if e.tag == q(NS_SM, "enabled") else None


def sm_resume(srv, user, previd):
    c = Client(srv, user, bind=False)
    c.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    res = c.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")),
                   what="resumed or failed")
    return c, res.tag == q(NS_SM, "resumed")


def test_detached(t, srv):
    srv.register("mona")
    phone = Client(srv, "mona", resource="phone")
    previd = sm_enable(phone)
    t.ok(previd is not None, "stream management enabled with resumption")

    # Detached at once, before any ping: long enough for a sweep to ping
    # it and for that ping to time out, had it been pinged.
    phone.drop()
    time.sleep(2 * PING_INTERVAL + PING_TIMEOUT + 1.5)
    again, resumed = sm_resume(srv, "mona", previd)
    t.ok(resumed, "a detached session is not pinged away: resumed after %d s" %
         (2 * PING_INTERVAL + PING_TIMEOUT + 1.5))

    # Pinged, then the connection drops before the answer: the ping's
    # timeout while detached does not end the session either.
    p = again.expect(is_ping, timeout=6, what="a ping on the resumed stream")
    t.ok(p is not None, "the resumed session is pinged again when silent")
    again.drop()
    time.sleep(PING_TIMEOUT + 1.5)
    last, resumed = sm_resume(srv, "mona", previd)
    t.ok(resumed, "a ping unanswered because the connection dropped does not end the session")
    last.auto_pong = True
    res = last.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    t.ok(res.get("type") == "result", "the resumed session works")
    last.close()


def wait_log(srv, text, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(srv.log_path, errors="replace") as f:
            if text in f.read():
                return True
        time.sleep(0.05)
    return False


def test_stopped(t, srv):
    """mod_ping stops (SIGHUP without its conf.d file) with two pings in
    flight: one answered after the stop, one never. Their completions
    still run with the module's data (the core keeps it until they
    ended; an AddressSanitizer build would report a use after free
    otherwise) and close nobody."""
    srv.register("nora")
    srv.register("otto")
    late = Client(srv, "nora")
    mute = Client(srv, "otto")
    p1 = late.expect(is_ping, timeout=6, what="a ping")
    mute.expect(is_ping, timeout=6, what="a ping")
    os.unlink(os.path.join(srv.dir, "conf.d", "mod_ping.conf"))
    srv.proc.send_signal(signal.SIGHUP)
    t.ok(wait_log(srv, "stopping module mod_ping"), "mod_ping stops with two pings in flight")
    late.send("<iq type='result' id='%s' to='localhost'/>" % p1.get("id"))
    t.ok(wait_log(srv, "the ping of %s ended after the module stopped" % late.jid),
         "the ping answered after the stop completes")
    t.ok(wait_log(srv, "the ping of %s ended after the module stopped" % mute.jid),
         "the ping never answered times out after the stop")
    res = mute.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    t.ok(error_condition(res) == "service-unavailable" and not mute.closed.is_set(),
         "the silent client was not closed by the stopped module (and pings are gone)")
    late.close()
    mute.close()


def main():
    t = Tap()
    try:
        srv = Server({"mod_ping": {"ping_interval": PING_INTERVAL, "ping_timeout": PING_TIMEOUT},
                      "mod_stream_management": {"resume_timeout": RESUME_TIMEOUT}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_ping starts")
        t.diag(e)
        t.done()
    try:
        t.run("idle pings", test_idle, srv)
        t.run("detached sessions", test_detached, srv)
        t.run("stopped with pings in flight", test_stopped, srv)  # last: mod_ping stops
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
