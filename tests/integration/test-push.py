#!/usr/bin/env python3
"""mod_push (XEP-0357) against a real meerkatd.

The app server is played by a client logged in as appserver@localhost/app:
its full JID is the push service's 'jid', so every notification the server
publishes reaches this test as an IQ, which it answers (result or an
error) itself. No pubsub service is involved.

- the account's disco#info lists urn:xmpp:push:0
- a chat message to an account with no session: one notification to each
  enabled node, with the summary (message-count, last-message-sender,
  last-message-body) and the publish-options the client gave, from the
  account's bare JID
- message-count grows per message, each message notified exactly once, and
  starts again after the user was online
- none while the user is online; a detached stream-management session
  gets them (chat and groupchat), its resource's enablements only
- include_body = false leaves the body out
- disable one node, disable a service
- item-not-found from the app server max_errors times removes the
  enablement (a log line, the row gone); a result in between resets the
  count
- max_enablements: resource-constraint
- malformed requests: bad-request; another account's: forbidden
- the rows go with the account (meerkatctl unregister)
- a MUC Light room's message to a member with no session is notified
- mod_event_pusher's "push" backend does the same
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (DOMAIN, NS_CLIENT, TOP_BUILDDIR, Client, Server, Tap, dump,  # noqa: E402
                     error_condition, q)

NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_XDATA = "jabber:x:data"
NS_DISCO = "http://jabber.org/protocol/disco#info"
NS_SM = "urn:xmpp:sm:3"
APP = "appserver@%s/app" % DOMAIN

FORM = ("<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value>"
        "</field><field var='secret'><value>s3cr3t</value></field></x>")


def enable(c, node, jid=APP, form=FORM):
    return c.iq("<enable xmlns='%s' jid='%s' node='%s'>%s</enable>" % (NS_PUSH, jid, node, form),
                type="set")


def disable(c, node=None, jid=APP):
    attr = " node='%s'" % node if node else ""
    return c.iq("<disable xmlns='%s' jid='%s'%s/>" % (NS_PUSH, jid, attr), type="set")


def chat(frm, to, body, type="chat"):
    frm.send("<message to='%s' type='%s'><body>%s</body></message>" % (to, type, body))


def is_publish(e):
    return (e.tag == q(NS_CLIENT, "iq") and e.get("type") == "set" and
            e.find(q(NS_PUBSUB, "pubsub")) is not None)


def fields(x):
    out = {}
    for f in x.findall(q(NS_XDATA, "field")):
        v = f.find(q(NS_XDATA, "value"))
        out[f.get("var")] = v.text if v is not None else None
    return out


class Note:
    """One notification as the app server got it."""

    def __init__(self, iq):
        self.iq = iq
        self.frm = iq.get("from")
        ps = iq.find(q(NS_PUBSUB, "pubsub"))
        pub = ps.find(q(NS_PUBSUB, "publish"))
        self.node = pub.get("node")
        x = pub.find("%s/%s/%s" % (q(NS_PUBSUB, "item"), q(NS_PUSH, "notification"),
                                   q(NS_XDATA, "x")))
        self.summary = fields(x) if x is not None else {}
        opts = ps.find("%s/%s" % (q(NS_PUBSUB, "publish-options"), q(NS_XDATA, "x")))
        self.options = fields(opts) if opts is not None else None
        self.body = self.summary.get("last-message-body")
        self.count = self.summary.get("message-count")


def take(app, answer="result", timeout=10):
    """The next notification; answered with a result or an error condition."""
    el = app.expect(is_publish, timeout, "a notification")
    if answer == "result":
        app.send("<iq type='result' id='%s' to='%s'/>" % (el.get("id"), el.get("from")))
    else:
        app.send("<iq type='error' id='%s' to='%s'><error type='cancel'><%s xmlns="
                 "'urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                 % (el.get("id"), el.get("from"), answer))
    return Note(el)


def take_until(app, body, timeout=10):
    """Every notification up to and including the one with @body."""
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        n = take(app, timeout=deadline - time.time())
        out.append(n)
        if n.body == body:
            return out
    raise AssertionError("no notification with body %r" % body)


def sm_detach(srv, user, resource):
    """A session with resumable stream management, then a dropped
    connection: the session stays, detached."""
    c = Client(srv, user, resource=resource)
    c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    c.expect(lambda e: e.tag == q(NS_SM, "enabled"), what="enabled")
    c.presence()
    return c


def log_count(srv, text):
    with open(srv.log_path, errors="replace") as f:
        return f.read().count(text)


def detach(srv, c):
    """Drops @c's connection and waits until the server detached it."""
    before = log_count(srv, "connection lost; resumable")
    c.drop()
    deadline = time.time() + 10
    while log_count(srv, "connection lost; resumable") == before:
        if time.time() > deadline:
            raise AssertionError("the session was not detached")
        time.sleep(0.05)


def wait_log(srv, text, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(srv.log_path, errors="replace") as f:
            if text in f.read():
                return True
        time.sleep(0.05)
    return False


def wait_rows(srv, sql, want, *args, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if srv.sql(sql, *args)[0][0] == want:
            return True
        time.sleep(0.05)
    return False


def test_disco(t, srv, app, bob):
    srv.register("dd")
    c = Client(srv, "dd")
    r = c.iq("<query xmlns='%s'/>" % NS_DISCO, to="dd@%s" % DOMAIN)
    feats = [f.get("var") for f in r.iter(q(NS_DISCO, "feature"))]
    t.ok(NS_PUSH in feats, "the account's disco#info lists urn:xmpp:push:0 (%s)" % feats)
    c.close()


def close_gone(c, watcher, timeout=20):
    """Closes @c and waits until the server has dropped its session (an IQ
    from @watcher to it bounces): a message sent before that may still be
    routed to the closing stream instead of the push path."""
    jid = c.jid
    c.close()
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            r = watcher.iq("<ping xmlns='urn:xmpp:ping'/>", to=jid, timeout=1)
        except AssertionError:
            continue
        if r.get("type") == "error":
            return
    raise AssertionError("%s: the session did not end" % jid)


def test_offline(t, srv, app, bob):
    srv.register("alice")
    a = Client(srv, "alice", resource="phone")
    r1 = enable(a, "n1")
    r2 = enable(a, "n2", form="")
    t.ok(r1.get("type") == "result" and r2.get("type") == "result", "enable answers result")
    close_gone(a, bob)
    chat(bob, "alice@%s" % DOMAIN, "hello")
    got = sorted([take(app), take(app)], key=lambda n: n.node)
    t.ok([n.node for n in got] == ["n1", "n2"], "one notification to each enabled node")
    n1 = got[0]
    t.ok(n1.frm == "alice@%s" % DOMAIN, "published from the account's bare JID (%s)" % n1.frm)
    t.ok(n1.summary.get("FORM_TYPE") == "urn:xmpp:push:summary" and n1.count == "1" and
         n1.summary.get("last-message-sender") == bob.jid and n1.body == "hello",
         "the summary: count 1, the sender's full JID, the body (%s)" % n1.summary)
    t.ok(n1.options == {"FORM_TYPE": "http://jabber.org/protocol/pubsub#publish-options",
                        "secret": "s3cr3t"}, "publish-options as enabled (%s)" % n1.options)
    t.ok(got[1].options is None, "no publish-options where none were given")
    tmp = Client(srv, "alice", resource="tmp")
    t.ok(disable(tmp, "n2").get("type") == "result", "disable one node")
    tmp.close()
    for i in range(5):
        chat(bob, "alice@%s" % DOMAIN, "m%d" % i)
    notes = take_until(app, "m4")
    t.ok([(n.node, n.body, n.count) for n in notes] ==
         [("n1", "m%d" % i, str(i + 1)) for i in range(5)],
         "each message once to the node left, counted from 1 after the last session (%s)"
         % [(n.node, n.body, n.count) for n in notes])
    # Online: nothing; back offline: counting starts again.
    a = Client(srv, "alice", resource="phone")
    a.presence()
    a.expect(lambda e: e.tag == q(NS_CLIENT, "presence"), what="its own presence")
    chat(bob, "alice@%s" % DOMAIN, "while online")
    a.expect(lambda e: e.tag == q(NS_CLIENT, "message") and
                 e.find(q(NS_CLIENT, "body")).text == "while online", what="the message")
    close_gone(a, bob)
    chat(bob, "alice@%s" % DOMAIN, "after")
    notes = take_until(app, "after")
    t.ok([(n.body, n.count) for n in notes] == [("after", "1")],
         "none while online; the count starts again after a session (%s)"
         % [(n.body, n.count) for n in notes])
    # A chat state only (no body): nothing.
    bob.send("<message to='alice@%s' type='chat'><active xmlns="
             "'http://jabber.org/protocol/chatstates'/></message>" % DOMAIN)
    chat(bob, "alice@%s" % DOMAIN, "sentinel")
    notes = take_until(app, "sentinel")
    t.ok([n.body for n in notes] == ["sentinel"], "no notification for a message without body")


def test_detached(t, srv, app, bob):
    srv.register("dora")
    d = sm_detach(srv, "dora", "phone")
    t.ok(enable(d, "dn").get("type") == "result", "enable from the phone")
    other = Client(srv, "dora", resource="desk")
    enable(other, "desk-node")
    other.presence()
    detach(srv, d)
    chat(bob, "dora@%s/phone" % DOMAIN, "to the sleeping phone")
    n = take(app)
    t.ok(n.node == "dn" and n.body == "to the sleeping phone",
         "a message queued in a detached session notifies that resource's node (%s %s)"
         % (n.node, n.body))
    chat(bob, "dora@%s/phone" % DOMAIN, "room talk", type="groupchat")
    n = take(app)
    t.ok(n.node == "dn" and n.body == "room talk", "groupchat to a detached occupant too")
    chat(bob, "dora@%s/desk" % DOMAIN, "to the desk")
    other.expect(lambda e: e.tag == q(NS_CLIENT, "message"), what="desk message")
    other.close()
    chat(bob, "dora@%s/phone" % DOMAIN, "sentinel2")
    notes = take_until(app, "sentinel2")
    t.ok([(n.node, n.body) for n in notes] == [("dn", "sentinel2")],
         "none for the online desk; the desk's node stays quiet (%s)"
         % [(n.node, n.body) for n in notes])


def test_disable_service(t, srv, app, bob):
    srv.register("erin")
    e = Client(srv, "erin")
    enable(e, "e1")
    enable(e, "e2")
    enable(e, "other", jid="otherapp@%s/x" % DOMAIN)
    t.ok(disable(e).get("type") == "result", "disable a whole service")
    rows = srv.sql("SELECT service FROM push_enablements WHERE username='erin'")
    t.ok(rows == [("otherapp@%s/x" % DOMAIN,)], "only the other service's row is left (%s)" % rows)
    enable(e, "e3")
    e.close()
    chat(bob, "erin@%s" % DOMAIN, "x1")
    notes = take_until(app, "x1")
    t.ok([n.node for n in notes] == ["e3"], "disabled nodes get nothing (%s)"
         % [n.node for n in notes])


def test_errors(t, srv, app, bob):
    srv.register("fred")
    f = Client(srv, "fred")
    enable(f, "gone")
    f.close()
    key = "SELECT COUNT(*) FROM push_enablements WHERE username='fred'"
    chat(bob, "fred@%s" % DOMAIN, "e1")
    take(app, "item-not-found")
    chat(bob, "fred@%s" % DOMAIN, "ok")
    take(app)  # a success resets the count
    chat(bob, "fred@%s" % DOMAIN, "e2")
    take(app, "item-not-found")
    t.ok(wait_rows(srv, "SELECT errors FROM push_enablements WHERE username='fred'", 1),
         "a result in between: one error counted, not two")
    t.ok(srv.sql(key)[0][0] == 1, "the enablement stays below max_errors")
    chat(bob, "fred@%s" % DOMAIN, "e3")
    take(app, "not-authorized")
    t.ok(wait_rows(srv, key, 0), "max_errors (2) errors in a row remove it")
    t.ok(wait_log(srv, "disabled after 2 errors in a row (last: not-authorized)"),
         "a log line says so")
    chat(bob, "fred@%s" % DOMAIN, "e4")
    t.ok(app.maybe(is_publish, 1.0) is None, "no notification afterwards")


def test_limits_and_bad(t, srv, app, bob):
    srv.register("gina")
    g = Client(srv, "gina")
    for i in range(3):
        enable(g, "l%d" % i)
    r = enable(g, "l3")
    t.ok(r.get("type") == "error" and error_condition(r) == "resource-constraint",
         "one over max_enablements: resource-constraint (%s)" % dump(r))
    t.ok(enable(g, "l1").get("type") == "result", "enabling a known node again is no new one")
    r = g.iq("<enable xmlns='%s' jid='%s'/>" % (NS_PUSH, APP), type="set")
    t.ok(error_condition(r) == "bad-request", "enable without node: bad-request")
    r = g.iq("<enable xmlns='%s' node='x'/>" % NS_PUSH, type="set")
    t.ok(error_condition(r) == "bad-request", "enable without jid: bad-request")
    r = g.iq("<enable xmlns='%s' jid='%s' node='x'><x xmlns='jabber:x:data' type='submit'>"
             "<field var='FORM_TYPE'><value>other</value></field></x></enable>"
             % (NS_PUSH, APP), type="set")
    t.ok(error_condition(r) == "bad-request", "a form that is not publish-options: bad-request")
    r = g.iq("<enable xmlns='%s' jid='%s' node='x'/>" % (NS_PUSH, APP), type="set",
             to="alice@%s" % DOMAIN)
    t.ok(error_condition(r) == "forbidden", "enabling for another account: forbidden")
    g.close()
    # The account goes, as an operator removes it: its enablements too.
    before = srv.sql("SELECT COUNT(*) FROM push_enablements WHERE username='gina'")[0][0]
    subprocess.run([os.path.join(TOP_BUILDDIR, "tools", "meerkatctl"), "-c", srv.conf,
                    "unregister", "gina", DOMAIN], check=True, capture_output=True)
    after = srv.sql("SELECT COUNT(*) FROM push_enablements WHERE username='gina'")[0][0]
    t.ok(before == 3 and after == 0,
         "meerkatctl unregister removes the account's enablements (%d -> %d)" % (before, after))


def test_muclight(t, srv, app, bob):
    """A MUC Light room's message to a member with no session."""
    ML = "urn:xmpp:muclight:0"
    srv.register("lena")
    lena = Client(srv, "lena", resource="phone")
    t.ok(enable(lena, "ln").get("type") == "result", "lena enables")
    lena.close()
    r = bob.iq("<query xmlns='%s#create'><configuration><roomname>r</roomname></configuration>"
               "<occupants><user affiliation='member'>lena@%s</user></occupants></query>"
               % (ML, DOMAIN), "set", to="pushroom@muclight.%s" % DOMAIN)
    t.ok(r.get("type") == "result", "bob makes a room with lena as member")
    room = "pushroom@muclight.%s" % DOMAIN
    bob.send("<message to='%s' type='groupchat'><body>to the room</body></message>" % room)
    n = take(app)
    t.ok(n.node == "ln" and n.body == "to the room" and n.count == "1" and
         n.summary.get("last-message-sender", "").startswith(room + "/"),
         "the offline member's node is notified, from the room (%s %s)"
         % (n.node, n.summary))
    chat(bob, "lena@%s" % DOMAIN, "sentinel-ml")
    notes = take_until(app, "sentinel-ml")
    t.ok([n.body for n in notes] == ["sentinel-ml"], "once (%s)" % [n.body for n in notes])


def test_no_body(t, srv, app, bob):
    srv.register("hank")
    h = Client(srv, "hank")
    enable(h, "h")
    h.close()
    chat(bob, "hank@%s" % DOMAIN, "secret text")
    n = take(app)
    t.ok(n.body is None and n.count == "1" and n.summary.get("last-message-sender") == bob.jid,
         "include_body = false: count and sender, no body (%s)" % n.summary)


def test_pusher_backend(t, srv, app, bob):
    srv.register("ivy")
    i = Client(srv, "ivy")
    r = i.iq("<query xmlns='%s'/>" % NS_DISCO, to="ivy@%s" % DOMAIN)
    t.ok(NS_PUSH in [f.get("var") for f in r.iter(q(NS_DISCO, "feature"))],
         "mod_event_pusher backends = push: the feature is there")
    t.ok(enable(i, "ivy-node").get("type") == "result", "enable through the push backend")
    i.close()
    chat(bob, "ivy@%s" % DOMAIN, "via pusher")
    n = take(app)
    t.ok(n.node == "ivy-node" and n.body == "via pusher" and n.count == "1" and
         n.options.get("secret") == "s3cr3t", "the same notification as mod_push's")


def main():
    t = Tap()
    srv = Server({"mod_push": {"max_errors": 2, "max_enablements": 3},
                  "mod_disco": {}, "mod_stream_management": {}, "mod_offline": {},
                  "mod_muc_light": {}})
    try:
        srv.register("appserver")
        srv.register("bob")
        app = Client(srv, "appserver", resource="app")
        bob = Client(srv, "bob")
        t.run("disco", test_disco, srv, app, bob)
        t.run("offline", test_offline, srv, app, bob)
        t.run("detached", test_detached, srv, app, bob)
        t.run("disable a service", test_disable_service, srv, app, bob)
        t.run("app server errors", test_errors, srv, app, bob)
        t.run("limits and bad requests", test_limits_and_bad, srv, app, bob)
        t.run("MUC Light", test_muclight, srv, app, bob)
        app.close()
        bob.close()
    finally:
        srv.stop()
    srv = Server({"mod_event_pusher": {"backends": "push"}, "mod_disco": {}})
    try:
        srv.register("appserver")
        srv.register("bob")
        app = Client(srv, "appserver", resource="app")
        bob = Client(srv, "bob")
        t.run("mod_event_pusher's push backend", test_pusher_backend, srv, app, bob)
        app.close()
        bob.close()
    finally:
        srv.stop()
    srv = Server({"mod_push": {"include_body": "false"}})
    try:
        srv.register("appserver")
        srv.register("bob")
        app = Client(srv, "appserver", resource="app")
        bob = Client(srv, "bob")
        t.run("no body", test_no_body, srv, app, bob)
        app.close()
        bob.close()
    finally:
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
