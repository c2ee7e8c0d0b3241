#!/usr/bin/python3
"""Unauthenticated connections cannot exhaust the server (docs/security.md,
"Authentication and connections"), through raw sockets:

- preauth_timeout: a silent connection, or one that opened a stream and
  did not authenticate, is closed with connection-timeout; a logged-in
  session on the same server is not;
- tls_handshake_timeout: a client that sends <starttls/> and then
  nothing is dropped;
- max_preauth_per_address: beyond the cap, a new connection from the
  address is closed at once; other addresses, and the address once it
  has fewer, are served; authenticated streams do not count;
- descriptors: with RLIMIT_NOFILE 128, new connections are closed at once
  when only the reserve is left; the sessions already logged in keep
  working (messages, roster reads), a reload (SIGHUP) loads a module, and
  logins work again once the flood is gone; with the limit lowered under
  the running server (prlimit), connections at the limit itself are
  closed at once too (a spare descriptor);
- the counters core.c2s.* in the metrics logged at shutdown.

Prints TAP; ignores --tap."""
import os
import resource
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Server, Tap, q  # noqa: E402
from rawstream import Raw, log_text, stop_with_metrics  # noqa: E402

def alive(client):
    """The session answers a roster get (a database read)."""
    res = client.iq("<query xmlns='jabber:iq:roster'/>", timeout=10)
    return res is not None and res.get("type") == "result"


def test_preauth_timeout(t):
    srv = Server({"mod_roster": {}}, listen={"preauth_timeout": 2})
    try:
        srv.register("alice")
        alice = Client(srv, "alice")
        silent = Raw(srv)
        opened = Raw(srv)
        t.ok(opened.open(), "a stream opens and stops before SASL")
        t.ok(silent.closed(20), "a silent connection is closed")
        t.ok(opened.wait(rb"<stream:error><connection-timeout", 20) is not None,
             "an unauthenticated stream gets connection-timeout")
        t.ok(opened.closed(5), "and is closed")
        t.ok(alive(alice), "a logged-in session is not affected")
        silent.close()
        opened.close()
        alice.close()
    finally:
        m = stop_with_metrics(srv)
    t.ok(m.get("core.c2s.preauth_timeouts") == 2,
         "metric core.c2s.preauth_timeouts = 2 (%s)" % m.get("core.c2s.preauth_timeouts"))


def test_tls_timeout(t):
    srv = Server({}, listen={"tls": "optional", "tls_handshake_timeout": 2,
                             "preauth_timeout": 120})
    try:
        r = Raw(srv)
        t.ok(r.open(), "stream opened")
        r.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        t.ok(r.wait(rb"<proceed") is not None, "<proceed/>")
        t.ok(r.closed(20), "no ClientHello: dropped after tls_handshake_timeout")
        r.close()
    finally:
        m = stop_with_metrics(srv)
    t.ok(m.get("core.c2s.tls_handshake_timeouts") == 1,
         "metric core.c2s.tls_handshake_timeouts = 1 (%s)" %
         m.get("core.c2s.tls_handshake_timeouts"))


def test_per_address_cap(t):
    srv = Server({}, auth={"throttle_loopback": "true"},
                 listen={"max_preauth_per_address": 3})
    try:
        srv.register("bob")
        held = [Raw(srv, "127.0.0.7") for _ in range(3)]
        t.ok(all(r.open() for r in held), "three unauthenticated streams from 127.0.0.7")
        extra = Raw(srv, "127.0.0.7")
        t.ok(extra.closed(10) and not extra.buf, "a fourth is closed at once, without a byte")
        extra.close()
        other = Raw(srv, "127.0.0.8")
        t.ok(other.open(), "another address is served")
        other.close()
        held.pop().close()
        deadline = time.time() + 20
        ok = False
        while not ok and time.time() < deadline:
            r = Raw(srv, "127.0.0.7")
            ok = r.open(2)
            if ok:
                held.append(r)
            else:
                r.close()
                time.sleep(0.1)
        t.ok(ok, "once one went, the address is served again")
        # Logged-in streams do not count.
        logged = []
        for i in range(4):
            r = Raw(srv, "127.0.0.9")
            r.open()
            r.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                   "AGJvYgBzZWNyZXQ=</auth>")
            logged.append(r.wait(rb"<success") is not None)
            held.append(r)
        t.ok(all(logged), "four logins from one address: authenticated streams do not count")
        for r in held:
            r.close()
    finally:
        m = stop_with_metrics(srv)
    t.ok(m.get("core.c2s.preauth_refused", 0) >= 1,
         "metric core.c2s.preauth_refused counts (%s)" % m.get("core.c2s.preauth_refused"))


def flood_until_refused(srv, t, what):
    """Opens silent streams until three are refused; TRUE when the refused
    ones were closed at once (no features, EOF) rather than left
    hanging. Returns the open streams."""
    flood, refused, hung = [], 0, 0
    for _ in range(400):
        r = Raw(srv)
        flood.append(r)
        # A refused stream ends at once (EOF or reset); the long wait is
        # for a server slowed by a sanitizer and a busy machine to answer.
        if not r.open(30):
            refused += 1
            hung += 0 if r.eof else 1
            if refused >= 3:
                break
    t.ok(refused >= 3 and not hung,
         "%s: new connections are closed at once (%d held, %d refused, %d left hanging)" %
         (what, len(flood) - refused, refused, hung))
    return flood


def wait_login(srv, user):
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            Client(srv, user, resource="again").close()
            return True
        except Exception:
            time.sleep(0.2)
    return False


def test_descriptors(t):
    # RLIMIT_NOFILE 128 from the start: the reserve is max(32, 5%) = 32.
    srv = Server({"mod_roster": {}}, listen={"max_preauth_per_address": 0}, nofile=128)
    flood = []
    try:
        srv.register("carol")
        srv.register("dave")
        carol = Client(srv, "carol")
        dave = Client(srv, "dave")
        flood = flood_until_refused(srv, t, "RLIMIT_NOFILE 128")
        t.ok(len(os.listdir("/proc/%d/fd" % srv.proc.pid)) <= 128 - 30,
             "the reserve stays free")
        carol.send("<message to='dave@localhost/r' type='chat' id='m1'><body>still here</body>"
                   "</message>")
        got = dave.expect(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("id") == "m1",
                          timeout=10, what="the message")
        t.ok(got is not None, "sessions already logged in still exchange messages")
        t.ok(alive(carol), "and read from the database")
        # The operator's reload opens files and a module's .so.
        with open(os.path.join(srv.dir, "conf.d", "mod_disco.conf"), "w") as f:
            f.write("[mod_disco]\n")
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while time.time() < deadline and "started module mod_disco" not in log_text(srv):
            time.sleep(0.1)
        t.ok("started module mod_disco" in log_text(srv),
             "a reload (SIGHUP) at the limit loads a module")
        for r in flood:
            r.close()
        flood = []
        t.ok(wait_login(srv, "carol"), "once the flood is gone, a login works again")
        carol.close()
        dave.close()
    finally:
        for r in flood:
            r.close()
        m = stop_with_metrics(srv)
    t.ok(m.get("core.c2s.fd_reserve_refused", 0) >= 3,
         "metric core.c2s.fd_reserve_refused counts (%s)" % m.get("core.c2s.fd_reserve_refused"))

    # The limit lowered under a running server (prlimit): at the limit
    # itself the spare descriptor closes each new connection at once.
    srv = Server({}, listen={"max_preauth_per_address": 0})
    flood = []
    try:
        srv.register("erin")
        erin = Client(srv, "erin")
        used = len(os.listdir("/proc/%d/fd" % srv.proc.pid))
        resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, (used + 40, used + 40))
        flood = flood_until_refused(srv, t, "limit lowered to %d at run time" % (used + 40))
        for r in flood:
            r.close()
        flood = []
        t.ok(wait_login(srv, "erin"), "once the flood is gone, a login works again")
        erin.close()
    finally:
        for r in flood:
            r.close()
        m = stop_with_metrics(srv)
    t.ok(m.get("core.c2s.fd_limit_dropped", 0) >= 1,
         "metric core.c2s.fd_limit_dropped counts (%s)" % m.get("core.c2s.fd_limit_dropped"))


def main():
    t = Tap()
    t.run("preauth timeout", test_preauth_timeout)
    t.run("tls timeout", test_tls_timeout)
    t.run("per-address cap", test_per_address_cap)
    t.run("descriptors", test_descriptors)
    t.done()


if __name__ == "__main__":
    main()
