#!/usr/bin/python3
"""mod_stream_management (XEP-0198): enable, <r/>/<a/> counting, resumption
after a dropped connection (also onto the other worker, and while the old
connection is still open), failures (enable before bind or twice, unknown
resumption id), a graceful close, and what happens to unacknowledged
stanzas when the resumption timeout expires (another resource, a bounce,
or mod_offline's storage), and stanzas a client pipelines after <resume/>. Prints TAP; ignores --tap."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, NS_STREAM, NS_STREAMS_ERR, Client, Server, Tap,  # noqa: E402
                     error_condition, is_presence, q)

NS_SM = "urn:xmpp:sm:3"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
RESUME_TIMEOUT = 2


def sm(name):
    return lambda e: e.tag == q(NS_SM, name)


def failed_condition(el):
    for child in el:
        if child.tag.startswith("{%s}" % NS_STANZAS):
            return child.tag.split("}")[1]
    return None


def is_msg(body, frm=None):
    def pred(e):
        if e.tag != q(NS_CLIENT, "message"):
            return False
        b = e.find(q(NS_CLIENT, "body"))
        return b is not None and b.text == body and (frm is None or e.get("from") == frm)
    return pred


def bodies(client, wait=0.5):
    """Bodies of every message received within @wait seconds, in order."""
    out = []
    while True:
        e = client.maybe(lambda e: e.tag == q(NS_CLIENT, "message"), wait)
        if e is None:
            return out
        b = e.find(q(NS_CLIENT, "body"))
        out.append(b.text if b is not None else None)


def enable(c):
    c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    return c.expect(lambda e: e.tag in (q(NS_SM, "enabled"), q(NS_SM, "failed")),
                    what="enabled or failed")


def ask_h(c):
    c.send("<r xmlns='%s'/>" % NS_SM)
    return int(c.expect(sm("a"), what="<a/>").get("h"))


def message(frm, to, body):
    frm.send("<message to='%s' type='chat'><body>%s</body></message>" % (to, body))


def resume(srv, user, previd, h):
    c = Client(srv, user, bind=False)
    c.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h))
    res = c.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")),
                   what="resumed or failed")
    return c, res


def test_enable(t, srv):
    srv.register("ann")
    c = Client(srv, "ann", bind=False)
    t.ok(c.features.find(q(NS_SM, "sm")) is not None,
         "<sm xmlns='urn:xmpp:sm:3'/> is offered after SASL")
    res = enable(c)
    t.ok(res.tag == q(NS_SM, "failed") and failed_condition(res) == "unexpected-request",
         "enable before bind: failed with unexpected-request")
    t.ok(c.bind("r").get("type") == "result", "the stream can still bind afterwards")
    res = enable(c)
    t.ok(res.tag == q(NS_SM, "enabled") and res.get("resume") == "true" and res.get("id") and
         res.get("max") == str(RESUME_TIMEOUT),
         "enable resume='true' after bind: enabled with an id, resume='true', max='%d'"
         % RESUME_TIMEOUT)
    res = enable(c)
    t.ok(res.tag == q(NS_SM, "failed") and failed_condition(res) == "unexpected-request",
         "enable twice: failed with unexpected-request")
    t.ok(ask_h(c) == 0, "<r/> right after enable: h=0 (nonzas are not counted)")
    # Stanzas the core answers itself count too: the legacy session IQ.
    c.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
    c.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    c.send("<message to='nobody@elsewhere.example'><body>x</body></message>")
    t.ok(ask_h(c) == 3, "three stanzas later (session IQ, IQ, message): h=3")
    c.send("<a xmlns='%s' h='99'/>" % NS_SM)
    err = c.expect(lambda e: e.tag == q(NS_STREAM, "error"), what="a stream error")
    t.ok(err.find(q(NS_STREAMS_ERR, "undefined-condition")) is not None,
         "acknowledging more than was sent closes the stream (undefined-condition)")
    c.close()


def test_resume(t, srv):
    srv.register("bea")
    srv.register("cid")
    laptop = Client(srv, "bea", resource="laptop")
    laptop.presence()
    phone = Client(srv, "bea", resource="phone")
    cid = Client(srv, "cid", resource="r")
    previd = enable(phone).get("id")
    phone.presence()
    phone.expect(is_presence(None, frm=phone.jid), what="own presence")
    laptop.expect(is_presence(None, frm=phone.jid), what="the phone's presence")
    for i in range(1, 6):
        message(cid, phone.jid, "m%d" % i)
    got = [phone.expect(is_msg("m%d" % i), what="m%d" % i) for i in range(1, 6)]
    t.ok(len(got) == 5, "five messages arrive on the phone")
    # Acknowledge the presence echo, m1 and m2 only.
    phone.send("<a xmlns='%s' h='3'/>" % NS_SM)
    t.ok(ask_h(phone) == 1, "the server counted the phone's one stanza (its presence)")
    phone.drop()
    time.sleep(0.3)
    message(cid, phone.jid, "m6")  # while detached
    time.sleep(0.2)
    c, res = resume(srv, "bea", previd, 3)
    t.ok(res.tag == q(NS_SM, "resumed") and res.get("previd") == previd and res.get("h") == "1",
         "resume: resumed with previd and h=1 (%s)" % res.attrib)
    t.ok(bodies(c) == ["m3", "m4", "m5", "m6"],
         "exactly the unacknowledged m3..m5 and m6 (sent while detached) arrive, once, in order")
    t.ok(laptop.maybe(is_presence("unavailable", frm=phone.jid), 0.3) is None,
         "the other resource saw no unavailable presence")
    message(c, cid.jid, "hello from the resumed phone")
    e = cid.expect(is_msg("hello from the resumed phone"), what="the message")
    t.ok(e.get("from") == phone.jid, "the resumed session has the same full JID")
    t.ok(ask_h(c) == 2, "the count goes on after the resume (h=2)")
    # Ack everything so far: 1 presence + 6 messages.
    c.send("<a xmlns='%s' h='7'/>" % NS_SM)
    t.ok(ask_h(c) == 2, "an exact acknowledgement is accepted")

    # Resume while the old connection is still open: it is replaced.
    c2, res = resume(srv, "bea", previd, 7)
    t.ok(res.tag == q(NS_SM, "resumed") and res.get("h") == "2",
         "resume while the old connection is open: resumed")
    err = c.expect(lambda e: e.tag == q(NS_STREAM, "error"), what="a stream error")
    t.ok(err.find(q(NS_STREAMS_ERR, "conflict")) is not None,
         "the old connection is closed with conflict")
    message(cid, phone.jid, "after replace")
    t.ok(bodies(c2) == ["after replace"], "messages reach the new connection")

    # A graceful close ends the session: no resumption afterwards.
    c2.close()
    e = laptop.expect(is_presence("unavailable", frm=phone.jid), what="unavailable")
    t.ok(e is not None, "</stream:stream> ends the session (unavailable presence)")
    c3, res = resume(srv, "bea", previd, 7)
    t.ok(res.tag == q(NS_SM, "failed") and failed_condition(res) == "item-not-found",
         "no resumption after a graceful close")
    for x in (c3, laptop, cid):
        x.close()


def test_other_worker(t, srv):
    """The resuming connection lands on either worker (SO_REUSEPORT); loop
    until the log shows one that moved, asserting every resumption."""
    srv.register("dan")
    srv.register("eve")
    eve = Client(srv, "eve")
    dan = Client(srv, "dan", resource="d")
    previd = enable(dan).get("id")
    jid = dan.jid
    h_out = 0
    moved = False
    ok = True
    for i in range(20):
        message(eve, jid, "w%d" % i)
        dan.expect(is_msg("w%d" % i))
        dan.drop()
        time.sleep(0.1)
        dan, res = resume(srv, "dan", previd, h_out)
        got = bodies(dan, 0.3)
        if res.tag != q(NS_SM, "resumed") or got != ["w%d" % i]:
            ok = False
            t.diag("round %d: %s %s" % (i, res.attrib, got))
            break
        h_out += 1
        with open(srv.log_path) as f:
            moved = "connection moved to worker" in f.read()
        if moved and i >= 3:
            break
    t.ok(ok, "repeated resumptions each resend exactly the one unacknowledged message")
    t.ok(moved, "at least one resumption moved the connection to the session's worker")
    message(eve, jid, "final")
    t.ok(bodies(dan) == ["final"], "the session works after moving")
    dan.close()
    eve.close()


def arrivals(client, until, timeout=5):
    """Every element received, in order, up to the first matching @until."""
    out = []
    while True:
        el = client.expect(lambda e: True, timeout, "anything")
        out.append(el)
        if until(el):
            return out


def test_pipelined(t, srv):
    """XEP-0198 lets a client send stanzas right after <resume/>, before
    <resumed/> arrives. Each round writes <resume/>, a complete message and
    half of a second one in one send(), and the rest later. Rounds go on
    until both cases were seen: the resuming connection on the session's
    worker, and on the other one (it then moves, with those bytes)."""
    srv.register("lea")
    srv.register("max")
    mx = Client(srv, "max")
    lea = Client(srv, "lea", resource="p")
    previd = enable(lea).get("id")
    jid = lea.jid
    seen = {True: 0, False: 0}
    ok = True
    for i in range(24):
        message(mx, jid, "in%d" % i)
        lea.expect(is_msg("in%d" % i), what="in%d" % i)
        lea.drop()
        time.sleep(0.1)
        with open(srv.log_path) as f:
            moves_before = f.read().count("connection moved to worker")
        lea = Client(srv, "lea", bind=False)
        # Acknowledges in0..in(i-1): in<i> is sent again.
        lea.send("<resume xmlns='%s' previd='%s' h='%d'/>"
                 "<message to='%s' type='chat'><body>p%da</body></message>"
                 "<message to='%s' type='chat'><bo" % (NS_SM, previd, i, mx.jid, i, mx.jid))
        lea.expect(sm("resumed"), what="resumed")
        lea.send("dy>p%db</body></message><r xmlns='%s'/>" % (i, NS_SM))
        # The server's own <r/> after the resend is not part of the order.
        got = [e for e in arrivals(lea, sm("a")) if e.tag != q(NS_SM, "r")]
        got_max = [mx.maybe(is_msg("p%da" % i, frm=jid), 3) is not None,
                   mx.maybe(is_msg("p%db" % i, frm=jid), 3) is not None]
        with open(srv.log_path) as f:
            moved = f.read().count("connection moved to worker") > moves_before
        order = [e.tag.split("}")[1] for e in got]
        want_h = str(2 * (i + 1))
        if (order != ["message", "a"] or not is_msg("in%d" % i)(got[0]) or
                got[1].get("h") != want_h or got_max != [True, True]):
            ok = False
            t.diag("round %d (%s): after <resumed/>: %s, h=%s (want %s); max got %s" % (
                i, "moved" if moved else "same worker", order, got[-1].get("h"), want_h,
                got_max))
            break
        seen[moved] += 1
        if seen[True] >= 2 and seen[False] >= 2:
            break
    t.ok(ok, "stanzas pipelined after <resume/> (a whole one and one split across writes) "
         "reach their recipient, after <resumed/> and the resend, and are counted")
    t.ok(seen[True] >= 1, "... also when the connection moved to the session's worker (%d rounds)"
         % seen[True])
    t.ok(seen[False] >= 1, "... and when it resumed on its own worker (%d rounds)" % seen[False])
    lea.close()
    mx.close()


def test_unknown_id(t, srv):
    srv.register("fay")
    c, res = resume(srv, "fay", "bm90LWFuLWlk", 0)
    t.ok(res.tag == q(NS_SM, "failed") and failed_condition(res) == "item-not-found",
         "resume with an unknown id: failed with item-not-found")
    t.ok(c.bind("r").get("type") == "result", "the stream can still bind afterwards")
    # Someone else's id is unknown too.
    other = Client(srv, "fay", resource="o")
    previd = enable(other).get("id")
    srv.register("gus")
    g, res = resume(srv, "gus", previd, 0)
    t.ok(res.tag == q(NS_SM, "failed") and failed_condition(res) == "item-not-found",
         "another account cannot resume the session")
    for x in (c, other, g):
        x.close()


def test_timeout(t, srv):
    srv.register("hal")
    srv.register("ivy")
    ivy = Client(srv, "ivy")
    laptop = Client(srv, "hal", resource="laptop")
    laptop.presence()
    phone = Client(srv, "hal", resource="phone")
    enable(phone)
    phone.presence()
    laptop.expect(is_presence(None, frm=phone.jid), what="the phone's presence")
    message(ivy, phone.jid, "x1")
    phone.expect(is_msg("x1"))
    phone.drop()
    start = time.time()
    e = laptop.expect(is_presence("unavailable", frm=phone.jid), timeout=RESUME_TIMEOUT + 5,
                      what="unavailable")
    t.ok(e is not None and time.time() - start >= RESUME_TIMEOUT - 0.5,
         "after the resumption timeout the other resource sees unavailable")
    e = laptop.expect(is_msg("x1"), what="the rerouted message")
    t.ok(e.get("from") == ivy.jid,
         "the unacknowledged message goes to the account's other available resource")
    laptop.close()

    # No other resource and no offline storage: back to the sender.
    phone = Client(srv, "hal", resource="phone")
    enable(phone)
    phone.presence()
    message(ivy, phone.jid, "y1")
    ivy.send("<iq type='get' id='q1' to='%s'><query xmlns='jabber:iq:version'/></iq>" % phone.jid)
    phone.expect(is_msg("y1"))
    phone.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "q1")
    phone.drop()
    e = ivy.expect(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("type") == "error",
                   timeout=RESUME_TIMEOUT + 5, what="a bounced message")
    b = e.find(q(NS_CLIENT, "body"))
    t.ok(b is not None and b.text == "y1" and error_condition(e) == "service-unavailable",
         "alone and without offline storage, it bounces to the sender (service-unavailable)")
    e = ivy.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "q1",
                   what="an IQ error")
    t.ok(e.get("type") == "error" and error_condition(e) == "service-unavailable",
         "the unanswered IQ request gets an error reply")
    ivy.close()


def test_offline(t, srv):
    """With mod_offline, an expired session's unacknowledged message is
    stored and delivered at the next login, not bounced."""
    srv.register("jon")
    srv.register("kim")
    kim = Client(srv, "kim")
    phone = Client(srv, "jon", resource="phone")
    enable(phone)
    phone.presence()
    message(kim, phone.jid, "z1")
    phone.expect(is_msg("z1"))
    phone.drop()
    time.sleep(RESUME_TIMEOUT + 1.5)
    t.ok(kim.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and e.get("type") == "error",
                   0.3) is None, "with offline storage the sender gets no error")
    again = Client(srv, "jon", resource="phone2")
    again.presence()
    e = again.expect(is_msg("z1"), what="the stored message")
    t.ok(e.get("from") == kim.jid, "the unacknowledged message was stored offline and delivered")
    again.close()
    kim.close()


def main():
    t = Tap()
    try:
        srv = Server({"mod_stream_management": {"resume_timeout": RESUME_TIMEOUT,
                                                "max_unacked": 100}}, workers=2)
    except Exception as e:
        t.ok(False, "meerkatd with mod_stream_management starts")
        t.diag(e)
        t.done()
    try:
        t.run("enable", test_enable, srv)
        t.run("resume", test_resume, srv)
        t.run("resume on the other worker", test_other_worker, srv)
        t.run("stanzas pipelined after resume", test_pipelined, srv)
        t.run("unknown id", test_unknown_id, srv)
        t.run("timeout", test_timeout, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    try:
        srv = Server({"mod_stream_management": {"resume_timeout": RESUME_TIMEOUT},
                      "mod_offline": {}}, workers=2)
    except Exception as e:
        t.ok(False, "meerkatd with mod_stream_management and mod_offline starts")
        t.diag(e)
        t.done()
    try:
        t.run("offline", test_offline, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
