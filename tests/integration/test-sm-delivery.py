#!/usr/bin/python3
"""Delivery that neither loses nor repeats, with stream management
(XEP-0198) and offline storage (issue 10, sections 1 and 5).

- slixmpp and nbxmpp: 20 logins and clean logouts each with stream
  management on, a stored and a live message each round: every message
  arrives exactly once, stored ones with exactly one XEP-0203 delay.
  (libstrophe: tests/integration/test-sm-strophe.c.)
- A raw client: the server asks for acknowledgements by itself; resent
  stanzas carry a delay; a final <a/> written after the client's
  </stream:stream> is honoured; what is
  left unacknowledged is stored once and keeps one delay with the
  original time however often it moves; carbon copies are not stored.
- max_unacked = 2 and a burst of offline messages: no policy-violation.
- kill -9 right after <a h='50'/> for 50 messages to an offline user:
  all 50 arrive after the restart, over several cycles.
- A detached session over max_detached_bytes ends and its queue is
  stored; sessions per account are capped (resource-constraint).
- Offline caps per sender (count and bytes): one sender cannot fill
  another user's store.
Prints TAP; ignores --tap."""
import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (DOMAIN, NS_CLIENT, NS_STREAM, NS_STREAMS_ERR, TOP_BUILDDIR,  # noqa: E402
                     Client, Server, Tap, error_condition, q)

NS_SM = "urn:xmpp:sm:3"
NS_DELAY = "urn:xmpp:delay"
NS_CARBONS = "urn:xmpp:carbons:2"
ROUNDS = 20
STANZAS = (q(NS_CLIENT, "message"), q(NS_CLIENT, "presence"), q(NS_CLIENT, "iq"))


class SmServer(Server):
    """A Server that can take extra [general] keys and be killed and
    started again on the same directory."""

    def __init__(self, modules, general=None, workers=2):
        Server.__init__(self, modules, workers)
        if general:
            with open(self.conf, "a") as f:
                f.write("\n[general]\n")
                for k, v in general.items():
                    f.write("%s = %s\n" % (k, v))
            self.restart()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def log_count(self, text):
        with open(self.log_path, errors="replace") as f:
            return f.read().count(text)


class SmClient(Client):
    """A raw client that counts the stanzas it receives and, when
    auto_ack is set, answers the server's <r/> at once."""

    def __init__(self, *args, **kwargs):
        self.h = 0
        self.auto_ack = True
        self.rs = 0
        Client.__init__(self, *args, **kwargs)

    def _read_loop(self):
        try:
            self.sock.settimeout(None)
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                for el in self._feed(data):
                    if el.tag == q(NS_SM, "enabled"):
                        self.h = 0  # counting starts here
                    if el.tag in STANZAS:
                        self.h += 1
                    if el.tag == q(NS_SM, "r"):
                        self.rs += 1
                        if self.auto_ack:
                            self.send("<a xmlns='%s' h='%d'/>" % (NS_SM, self.h))
                            continue
                    self.queue.put(el)
        except (OSError, ValueError):
            pass
        self.closed.set()
        self.queue.put(None)

    def enable(self, resume=False):
        self.send("<enable xmlns='%s'%s/>" % (NS_SM, " resume='true'" if resume else ""))
        return self.expect(lambda e: e.tag in (q(NS_SM, "enabled"), q(NS_SM, "failed")),
                           what="enabled")


def is_msg(body=None):
    def pred(e):
        if e.tag != q(NS_CLIENT, "message"):
            return False
        b = e.find(q(NS_CLIENT, "body"))
        return b is not None and (body is None or b.text == body)
    return pred


def body_of(e):
    b = e.find(q(NS_CLIENT, "body"))
    return b.text if b is not None else None


def delays_of(e):
    return e.findall(q(NS_DELAY, "delay"))


def bodies(c, wait=1.0):
    out = []
    while True:
        e = c.maybe(is_msg(), wait)
        if e is None:
            return out
        out.append(e)


def chat(frm, to, body):
    frm.send("<message to='%s' type='chat'><body>%s</body></message>" % (to, body))


def wait_offline_rows(srv, user, n, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = srv.sql("SELECT COUNT(*) FROM offline_messages WHERE username = ?", user)
        if rows[0][0] >= n:
            return True
        time.sleep(0.05)
    return False


def tally(t, name, seen, want_stored, want_live):
    """seen: list of (body, delays). Every wanted body exactly once."""
    counts = {}
    for body, d in seen:
        counts.setdefault(body, []).append(d)
    missing = [b for b in want_stored + want_live if b not in counts]
    dups = {b: len(v) for b, v in counts.items() if len(v) > 1}
    extra = [b for b in counts if b not in want_stored + want_live]
    bad = [b for b in want_stored if b in counts and counts[b][0] != 1]
    bad += [b for b in want_live if b in counts and counts[b][0] != 0]
    t.ok(not missing, "%s: no message missing (%s)" % (name, missing))
    t.ok(not dups and not extra, "%s: each message exactly once (duplicates %s, others %s)"
         % (name, dups, extra))
    t.ok(not bad, "%s: stored messages with exactly one delay, live ones with none (%s)"
         % (name, bad))


# ---- real clients ------------------------------------------------------

LOOP = None
DIAG = []


def slix_session(port, jid, want, timeout=20):
    """One slixmpp login with XEP-0198 until every body in @want came,
    then a clean logout. Returns [(body, delays)]."""
    import slixmpp
    x = slixmpp.ClientXMPP(jid, "secret")
    x.register_plugin("xep_0198")
    x["feature_mechanisms"].unencrypted_plain = True
    got = []
    done = LOOP.create_future()
    def on_start(_ev):
        x.send_presence()

    def on_msg(m):
        got.append((m["body"], len(m.xml.findall("{%s}delay" % NS_DELAY))))
        if all(any(b == w for b, _ in got) for w in want) and not done.done():
            # A busy machine may take a while to answer the close; the
            # default 2 s would abort the connection (the session would
            # then wait for a resume).
            x.disconnect(wait=15)

    def on_disc(_ev):
        if not done.done():
            done.set_result(True)

    x.add_event_handler("session_start", on_start)
    x.add_event_handler("message", on_msg)
    x.add_event_handler("disconnected", on_disc)
    x.connect(("127.0.0.1", port), disable_starttls=True, force_starttls=False)
    LOOP.run_until_complete(asyncio.wait_for(done, timeout))
    return got


def nbx_session(srv, user, resource, want, ended, timeout=20):
    """The same with nbxmpp. It acknowledges only when asked; the logout
    waits until it has answered for everything it received (a user reads,
    then logs out), a condition on the client, not a time."""
    from gi.repository import GLib
    from nbxmpp.client import Client as NbClient
    from nbxmpp.const import ConnectionProtocol, ConnectionType
    from nbxmpp.protocol import Presence
    from nbxmpp.structs import StanzaHandler
    loop = GLib.MainLoop()
    c = NbClient()
    c.set_domain(DOMAIN)
    c.set_username(user)
    c.set_resource(resource)
    c.set_password("secret")
    c.set_custom_host("127.0.0.1:%d" % srv.port, ConnectionProtocol.TCP, ConnectionType.PLAIN)
    c.set_connection_types([ConnectionType.PLAIN])
    c.set_mechs(["PLAIN"])
    got = []
    state = {"sm": False, "leaving": False}

    def on_connected(client, _signal):
        client.send_stanza(Presence())

    def try_leave():
        sm = c._smacks
        if sm.enabled and sm._acked_h != sm._in_h:
            return True  # poll again: the server's <r/> is on its way
        state["sm"] = sm.enabled
        c.disconnect()
        return False

    def on_msg(_client, stanza, _props):
        delays = [ch for ch in stanza.getChildren()
                  if ch.getName() == "delay" and ch.getNamespace() == NS_DELAY]
        got.append((stanza.getBody(), len(delays)))
        if all(any(b == w for b, _ in got) for w in want) and not state["leaving"]:
            state["leaving"] = True
            GLib.timeout_add(10, try_leave)

    c.subscribe("connected", on_connected)
    c.subscribe("disconnected", lambda *_: loop.quit())
    c.subscribe("connection-failed", lambda *_: loop.quit())
    c.register_handler(StanzaHandler(name="message", callback=on_msg))
    c.connect()
    timed_out = []
    src = GLib.timeout_add_seconds(timeout, lambda: timed_out.append(1) or loop.quit())
    loop.run()
    if not timed_out:
        GLib.source_remove(src)
        # nbxmpp writes </stream:stream> and shuts the socket down
        # asynchronously: keep its context running until the server has
        # ended the session (the @ended-th time), or a busy machine leaves
        # the logout half done when the next round starts.
        mark = "%s@%s/%s] stream management session ended" % (user, DOMAIN, resource)
        deadline = time.time() + 15
        ctx = GLib.MainContext.default()
        while srv.log_count(mark) < ended and time.time() < deadline:
            if not ctx.iteration(False):
                time.sleep(0.01)
        if srv.log_count(mark) < ended:
            DIAG.append("nbxmpp: the server did not see the logout")
    else:
        sm = c._smacks
        DIAG.append("nbxmpp timed out: got %s, in_h %s, acked_h %s, enabled %s, leaving %s"
                    % (got, sm._in_h, sm._acked_h, sm.enabled, state["leaving"]))
    return got, state["sm"]


def test_real_clients(t, srv):
    global LOOP
    LOOP = asyncio.new_event_loop()
    asyncio.set_event_loop(LOOP)
    for name in ("slixmpp", "nbxmpp"):
        user = "rc" + name[:3]
        srv.register(user)
        srv.register(user + "s")
        sender = Client(srv, user + "s")
        seen = []
        stored, live = [], []
        for i in range(ROUNDS):
            off, on = "%s-off-%d" % (name, i), "%s-live-%d" % (name, i)
            stored.append(off)
            live.append(on)
            chat(sender, "%s@%s" % (user, DOMAIN), off)
            if not wait_offline_rows(srv, user, 1):
                t.diag("round %d: the message was not stored" % i)
            # The live one goes out once the session is up: sent by the
            # sender when the client's presence reaches the server.
            threading.Thread(target=send_when_online,
                             args=(srv, sender, user, on, i + 1), daemon=True).start()
            if name == "slixmpp":
                got = slix_session(srv.port, "%s@%s/phone" % (user, DOMAIN), [off, on])
            else:
                got, _ = nbx_session(srv, user, "phone", [off, on], i + 1)
            seen += got
            for d in DIAG:
                t.diag("round %d: %s" % (i, d))
            del DIAG[:]
        # Whatever the logouts left behind would come at the next login.
        c = SmClient(srv, user, resource="last")
        c.enable()
        c.presence()
        seen += [(body_of(e), len(delays_of(e))) for e in bodies(c, 1.5)]
        c.close()
        enabled = srv.log_count("%s@%s/phone] stream management enabled" % (user, DOMAIN))
        t.ok(enabled == ROUNDS, "%s: stream management was on in every round (%d of %d)"
             % (name, enabled, ROUNDS))
        tally(t, "%s, %d logins and logouts" % (name, ROUNDS), seen, stored, live)
        sender.close()


def send_when_online(srv, sender, user, body, n):
    """Sends @body to user/phone once its @n-th session is bound."""
    deadline = time.time() + 20
    mark = "%s@%s/phone] session bound" % (user, DOMAIN)
    while time.time() < deadline and srv.log_count(mark) < n:
        time.sleep(0.02)
    chat(sender, "%s@%s/phone" % (user, DOMAIN), body)


# ---- raw clients -------------------------------------------------------

def test_asks_and_final_a(t, srv):
    srv.register("fa")
    srv.register("fb")
    fb = Client(srv, "fb")
    fa = SmClient(srv, "fa")
    fa.auto_ack = False
    fa.enable()
    fa.presence()
    chat(fb, fa.jid, "one")
    fa.expect(is_msg("one"), what="one")
    r = fa.expect(lambda e: e.tag == q(NS_SM, "r"), what="<r/>")
    t.ok(r is not None, "after sending a stanza the server asks for an acknowledgement by itself")
    # Answer only after our </stream:stream>, as a client still reading.
    fa.send("</stream:stream>")
    fa.expect(lambda e: e.tag == q(NS_SM, "r"), what="the final <r/>")
    fa.send("<a xmlns='%s' h='%d'/>" % (NS_SM, fa.h))
    fa.closed.wait(5)
    again = SmClient(srv, "fa", resource="again")
    again.enable()
    again.presence()
    t.ok(bodies(again, 1.0) == [], "a final <a/> after </stream:stream> counts: nothing comes back")
    again.close()
    fb.close()


def test_moved_once_one_delay(t, srv):
    srv.register("ma")
    srv.register("mb")
    mb = Client(srv, "mb")
    ma = SmClient(srv, "ma", resource="p1")
    ma.auto_ack = False
    ma.enable()
    ma.presence()
    chat(mb, ma.jid, "keep")
    ma.expect(is_msg("keep"))
    ma.close()  # never acknowledged: stored once
    wait_offline_rows(srv, "ma", 1)
    stamps = []
    ok = True
    for i in range(3):
        c = SmClient(srv, "ma", resource="p%d" % (i + 2))
        c.auto_ack = i == 2  # twice more unacknowledged, then acknowledged
        c.enable()
        c.presence()
        got = bodies(c, 1.0)
        if [body_of(e) for e in got] != ["keep"] or len(delays_of(got[0])) != 1:
            ok = False
            t.diag("login %d: %s" % (i, [(body_of(e), len(delays_of(e))) for e in got]))
        else:
            stamps.append(delays_of(got[0])[0].get("stamp"))
        c.close()
    t.ok(ok, "an unacknowledged message comes back once per login until acknowledged, "
         "each time with exactly one delay")
    t.ok(len(set(stamps)) == 1 and stamps,
         "its delay keeps the original time however often it moves (%s)" % stamps)
    c = SmClient(srv, "ma", resource="p9")
    c.enable()
    c.presence()
    t.ok(bodies(c, 1.0) == [], "once acknowledged it is gone")
    c.close()
    mb.close()


def test_resend_has_delay(t, srv):
    """Stanzas sent again on resumption carry one XEP-0203 delay."""
    srv.register("ra")
    srv.register("rb")
    rb = Client(srv, "rb")
    ra = SmClient(srv, "ra", resource="phone")
    ra.auto_ack = False
    previd = ra.enable(resume=True).get("id")
    chat(rb, ra.jid, "again")
    ra.expect(is_msg("again"))
    ra.drop()
    c = SmClient(srv, "ra", bind=False)
    c.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    res = c.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")), what="resumed")
    e = c.expect(is_msg("again"), what="the resent message")
    d = delays_of(e)
    t.ok(res.tag == q(NS_SM, "resumed") and len(d) == 1 and d[0].get("from") == DOMAIN and
         d[0].get("stamp"), "a stanza resent on resumption carries one delay (%d)" % len(d))
    c.close()
    rb.close()


def test_carbons_not_stored(t, srv):
    srv.register("ca")
    srv.register("cb")
    cb = Client(srv, "cb")
    desk = SmClient(srv, "ca", resource="desk")
    desk.presence()
    laptop = SmClient(srv, "ca", resource="laptop")
    laptop.auto_ack = False
    laptop.enable()
    laptop.iq("<enable xmlns='%s'/>" % NS_CARBONS, type="set")
    laptop.presence()
    # Carbons go to available resources: wait until the laptop is one.
    laptop.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == laptop.jid,
                  what="own presence")
    chat(cb, desk.jid, "for the desk")
    desk.expect(is_msg("for the desk"))
    e = laptop.expect(lambda e: e.tag == q(NS_CLIENT, "message") and
                      e.find(q(NS_CARBONS, "received")) is not None, what="a carbon")
    t.ok(e is not None, "the laptop gets a carbon copy")
    desk.close()  # first: the copy must not simply move to the desk
    laptop.close()  # unacknowledged
    later = SmClient(srv, "ca", resource="later")
    later.enable()
    later.presence()
    got = bodies(later, 1.0) + [e for e in [later.maybe(
        lambda e: e.tag == q(NS_CLIENT, "message"), 0.5)] if e is not None]
    rows = srv.sql("SELECT xml FROM offline_messages WHERE username = 'ca'")
    t.ok(not got and not rows, "an unacknowledged carbon copy is not stored as new (%d rows)"
         % len(rows))
    later.close()
    cb.close()


def test_burst_small_max_unacked(t, srv):
    srv.register("ba")
    srv.register("bb")
    bb = Client(srv, "bb")
    for i in range(10):
        chat(bb, "ba@%s" % DOMAIN, "b%d" % i)
    wait_offline_rows(srv, "ba", 10)
    ba = SmClient(srv, "ba")
    ba.enable()
    ba.presence()
    got = [body_of(e) for e in bodies(ba, 1.0)]
    t.ok(got == ["b%d" % i for i in range(10)],
         "max_unacked = 2: a burst of 10 offline messages arrives (%s)" % got)
    t.ok(ba.maybe(lambda e: e.tag == q(NS_STREAM, "error"), 0.3) is None and not ba.closed.is_set(),
         "and the server does not close the stream for its own burst")
    ba.close()
    bb.close()


def test_never_acks(t, srv):
    """A client that leaves the <r/> unanswered past ack_timeout while
    max_unacked stanzas wait is closed."""
    srv.register("na")
    srv.register("nb")
    nb = Client(srv, "nb")
    na = SmClient(srv, "na")
    na.auto_ack = False
    na.enable()
    na.presence()
    chat(nb, na.jid, "n0")
    na.expect(is_msg("n0"))
    na.expect(lambda e: e.tag == q(NS_SM, "r"), what="<r/>")
    deadline = time.time() + 15
    err = None
    i = 1
    while time.time() < deadline and err is None:
        chat(nb, na.jid, "n%d" % i)
        i += 1
        err = na.maybe(lambda e: e.tag == q(NS_STREAM, "error"), 0.2)
    t.ok(err is not None and err.find(q(NS_STREAMS_ERR, "policy-violation")) is not None,
         "a client that never answers <r/> is closed with policy-violation after ack_timeout")
    na.close()
    nb.close()


def test_kill9_after_ack(t, srv):
    """50 messages to an offline user, <r/>, <a h='50'/>, kill -9 at once;
    after the restart the recipient gets all 50. Several cycles."""
    srv.register("ka")
    srv.register("kb")
    results = []
    for cycle in range(4):
        kb = SmClient(srv, "kb", resource="k%d" % cycle)
        kb.enable()
        for i in range(50):
            chat(kb, "ka@%s" % DOMAIN, "c%d-%d" % (cycle, i))
        kb.send("<r xmlns='%s'/>" % NS_SM)
        a = kb.expect(lambda e: e.tag == q(NS_SM, "a"), timeout=20, what="<a/>")
        h = int(a.get("h"))
        srv.kill9()
        srv.launch()
        ka = SmClient(srv, "ka", resource="k%d" % cycle)
        ka.enable()
        ka.presence()
        got = [body_of(e) for e in bodies(ka, 1.5)]
        want = ["c%d-%d" % (cycle, i) for i in range(50)]
        results.append((h, got == want, len(got)))
        ka.close()
    t.ok(all(h == 50 for h, _, _ in results), "each <a/> counted the 50 messages (%s)"
         % [h for h, _, _ in results])
    t.ok(all(ok for _, ok, _ in results),
         "kill -9 right after <a h='50'/>: all 50 arrive after the restart, in order, "
         "in each of %d cycles (%s)" % (len(results), [n for _, _, n in results]))


def test_detached_overflow(t, srv):
    srv.register("da")
    srv.register("db")
    dbc = Client(srv, "db")
    da = SmClient(srv, "da", resource="phone")
    previd = da.enable(resume=True).get("id")
    da.presence()
    da.drop()
    blob = "x" * 1000
    for i in range(8):  # ~8 KB over a 4 KiB budget
        chat(dbc, "da@%s/phone" % DOMAIN, "d%d %s" % (i, blob))
    ok = wait_offline_rows(srv, "da", 8)
    t.ok(ok, "a detached session over max_detached_bytes ends at once and its queue is stored "
         "(resume_timeout is 300 s)")
    c = SmClient(srv, "da", bind=False)
    c.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    res = c.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")), what="failed")
    t.ok(res.tag == q(NS_SM, "failed"), "that session can no longer be resumed")
    c.bind("again")
    c.enable()
    c.presence()
    got = [body_of(e).split()[0] for e in bodies(c, 1.0)]
    t.ok(sorted(got) == sorted("d%d" % i for i in range(8)),
         "each queued message arrives once (%s)" % got)
    c.close()
    dbc.close()


def test_detached_then_other_resource(t, srv):
    """A message to the bare JID queued in a detached session is not
    lost when that session ends after another resource came online: the
    newcomer was not there to get it, so it is routed again."""
    srv.register("ea")
    srv.register("eb")
    eb = Client(srv, "eb")
    old = SmClient(srv, "ea", resource="old")
    old.enable(resume=True)
    old.presence()
    old.drop()
    chat(eb, "ea@%s" % DOMAIN, "while detached")
    new = SmClient(srv, "ea", resource="new")
    new.enable()
    new.presence()
    # Over max_detached_bytes: the detached session ends now.
    chat(eb, "ea@%s/old" % DOMAIN, "big " + "z" * 5000)
    got = [body_of(e).split()[0] for e in bodies(new, 1.5)]
    t.ok(got.count("while") == 1 and got.count("big") == 1,
         "the detached session's messages reach the resource that came later, once each (%s)"
         % got)
    new.close()
    eb.close()


def test_sessions_per_account(t, srv):
    srv.register("sa")
    cs = [Client(srv, "sa", resource="s%d" % i) for i in range(3)]
    extra = Client(srv, "sa", bind=False)
    res = extra.bind("s3")
    t.ok(res.get("type") == "error" and error_condition(res) == "resource-constraint",
         "max_sessions_per_account = 3: a fourth resource gets resource-constraint")
    res = extra.bind("s0")
    t.ok(res.get("type") == "result", "binding an existing resource again still replaces it")
    for c in cs + [extra]:
        c.close()


def test_offline_sender_caps(t, srv):
    srv.register("oa")
    srv.register("ob")
    srv.register("oc")
    ob = Client(srv, "ob")
    oc = Client(srv, "oc")
    for i in range(100):  # max_messages = 100, max_sender_messages = 50
        chat(ob, "oa@%s" % DOMAIN, "spam %d" % i)
    errors = []
    for _ in range(50):
        e = ob.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("type") == "error", 5)
        if e is not None:
            errors.append(error_condition(e))
    t.ok(len(errors) == 50 and set(errors) == {"resource-constraint"},
         "a sender past max_sender_messages gets resource-constraint (%s)" % errors[:3])
    chat(oc, "oa@%s" % DOMAIN, "legit")
    t.ok(wait_offline_rows(srv, "oa", 51), "another sender's message is still stored")
    t.ok(oc.maybe(lambda e: e.get("type") == "error", 0.5) is None, "... without an error")
    big = "y" * 60000
    srv.register("od")
    od = Client(srv, "od")
    for i in range(6):  # max_sender_bytes = 262144: the fifth 60 KB one is over
        chat(od, "oa@%s" % DOMAIN, "big %d %s" % (i, big))
    e = od.expect(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("type") == "error",
                  10, "an error")
    t.ok(error_condition(e) == "resource-constraint",
         "a sender past max_sender_bytes gets resource-constraint")
    n = srv.sql("SELECT COUNT(*) FROM offline_messages WHERE username = 'oa' AND sender LIKE 'od@%'")
    t.ok(n[0][0] == 4, "four 60 KB messages of that sender were kept (%d)" % n[0][0])
    for c in (ob, oc, od):
        c.close()


def main():
    t = Tap()
    try:
        srv = SmServer({"mod_stream_management": {}, "mod_offline": {},
                        "mod_carboncopy": {}})
    except Exception as e:
        t.ok(False, "meerkatd starts")
        t.diag(e)
        t.done()
    try:
        t.run("real clients", test_real_clients, srv)
        t.run("asks, final a", test_asks_and_final_a, srv)
        t.run("moved once, one delay", test_moved_once_one_delay, srv)
        t.run("carbons", test_carbons_not_stored, srv)
        t.run("resend has a delay", test_resend_has_delay, srv)
        t.run("kill -9", test_kill9_after_ack, srv)
        t.run("offline caps", test_offline_sender_caps, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    try:
        srv = SmServer({"mod_stream_management": {"max_unacked": 2, "ack_timeout": 1,
                                                  "max_detached_bytes": 4096},
                        "mod_offline": {}}, general={"max_sessions_per_account": 3})
    except Exception as e:
        t.ok(False, "meerkatd with small limits starts")
        t.diag(e)
        t.done()
    try:
        t.run("burst, max_unacked 2", test_burst_small_max_unacked, srv)
        t.run("never acks", test_never_acks, srv)
        t.run("detached overflow", test_detached_overflow, srv)
        t.run("detached, then another resource", test_detached_then_other_resource, srv)
        t.run("sessions per account", test_sessions_per_account, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
