#!/usr/bin/python3
"""mod_privacy (XEP-0016): list get/set with the XEP's errors, pushes,
active lists per session and the default list, the conflict rules, and
enforcement: denied messages bounce and do not arrive, per-session active
lists, subscription rules read from the roster, presence-out denial.
Prints TAP; ignores --tap."""
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, Client, Server, Tap, error_condition, is_presence,  # noqa: E402
                     q)

NS_PRIVACY = "jabber:iq:privacy"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def subscribe_both(srv, a, b):
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10)
    with db:
        for user, contact in ((a, b), (b, a)):
            db.execute("INSERT INTO roster_items (username, domain, contact, subscription)"
                       " VALUES (?, 'localhost', ?, 'both')", (user, contact + "@localhost"))
    db.close()


def query(c, body, type="get"):
    return c.iq("<query xmlns='%s'>%s</query>" % (NS_PRIVACY, body), type)


def set_list(c, name, items):
    return query(c, "<list name='%s'>%s</list>" % (name, items), "set")


def ok(res):
    return res.get("type") == "result"


def err(res, cond):
    return res.get("type") == "error" and error_condition(res) == cond


def is_push(name):
    def pred(e):
        if e.tag != q(NS_CLIENT, "iq") or e.get("type") != "set":
            return False
        lst = e.find("%s/%s" % (q(NS_PRIVACY, "query"), q(NS_PRIVACY, "list")))
        return lst is not None and lst.get("name") == name
    return pred


def is_message(frm, body=None, type="chat"):
    def pred(e):
        if e.tag != q(NS_CLIENT, "message") or e.get("type") != type:
            return False
        f = e.get("from") or ""
        if f != frm and f.split("/")[0] != frm:
            return False
        b = e.find(q(NS_CLIENT, "body"))
        return body is None or (b is not None and b.text == body)
    return pred


def msg(c, to, body):
    c.send("<message to='%s' type='chat'><body>%s</body></message>" % (to, body))


def names(res):
    qu = res.find(q(NS_PRIVACY, "query"))
    act = qu.find(q(NS_PRIVACY, "active"))
    dft = qu.find(q(NS_PRIVACY, "default"))
    return (act.get("name") if act is not None else None,
            dft.get("name") if dft is not None else None,
            sorted(x.get("name") for x in qu.findall(q(NS_PRIVACY, "list"))))


DENY_BOB = "<item type='jid' value='bob@localhost' action='deny' order='1'><message/></item>"


def test_lists(t, srv):
    srv.register("alice")
    srv.register("bob")
    a1 = Client(srv, "alice", resource="one")
    a2 = Client(srv, "alice", resource="two")
    b = Client(srv, "bob")
    for c in (a1, a2, b):
        c.presence()
    info = a1.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="localhost")
    t.ok(any(f.get("var") == NS_PRIVACY for f in info.iter(q(NS_DISCO_INFO, "feature"))),
         "disco#info of the server announces jabber:iq:privacy")
    t.ok(names(query(a1, "")) == (None, None, []), "no lists at first")

    t.ok(ok(set_list(a1, "nobob", DENY_BOB + "<item action='allow' order='9'/>")),
         "a list is created")
    t.ok(a1.expect(is_push("nobob")) is not None and a2.expect(is_push("nobob")) is not None,
         "the list push reaches every resource")
    res = query(a2, "<list name='nobob'/>")
    items = res.findall(".//%s" % q(NS_PRIVACY, "item"))
    t.ok(ok(res) and len(items) == 2 and items[0].get("value") == "bob@localhost" and
         items[0].get("action") == "deny" and items[0].find(q(NS_PRIVACY, "message")) is not None
         and items[1].get("order") == "9", "the list reads back as written")

    t.ok(err(query(a1, "<list name='nope'/>"), "item-not-found"), "get of a missing list")
    t.ok(err(query(a1, "<list name='a'/><list name='b'/>"), "bad-request"),
         "get of two lists is bad-request")
    t.ok(err(query(a1, "<active name='nobob'/><default name='nobob'/>", "set"), "bad-request"),
         "a set with two children is bad-request")
    t.ok(err(set_list(a1, "dup", "<item action='deny' order='1'/><item action='allow' order='1'/>"),
             "bad-request"), "duplicate orders are bad-request")
    t.ok(err(set_list(a1, "g", "<item type='group' value='Nobody' action='deny' order='1'/>"),
             "item-not-found"), "a group not in the roster is item-not-found")
    t.ok(err(query(a1, "<active name='nope'/>", "set"), "item-not-found"),
         "activating a missing list is item-not-found")

    # Active on one resource only.
    t.ok(ok(query(a1, "<active name='nobob'/>", "set")), "list made active on one")
    t.ok(names(query(a1, "")) == ("nobob", None, ["nobob"]) and
         names(query(a2, ""))[0] is None, "the active list belongs to that session")
    a1.drain()
    a2.drain()
    msg(b, a1.jid, "to one")
    e = b.expect(is_message("alice@localhost", type="error"), what="an error")
    t.ok(error_condition(e) == "service-unavailable", "a denied message bounces")
    t.ok(a1.maybe(is_message("bob@localhost"), 0.5) is None, "and does not arrive")
    msg(b, a2.jid, "to two")
    t.ok(a2.expect(is_message("bob@localhost", "to two")) is not None,
         "the other session has no list: delivered")
    msg(b, "alice@localhost", "to bare")
    t.ok(a2.expect(is_message("bob@localhost", "to bare")) is not None and
         a1.maybe(is_message("bob@localhost", "to bare"), 0.5) is None,
         "to the bare JID: each session's own list decides")

    # Default list, and the conflict rules.
    t.ok(ok(query(a1, "<default name='nobob'/>", "set")), "default list set")
    msg(b, a2.jid, "default")
    t.ok(b.expect(is_message("alice@localhost", type="error")) is not None and
         a2.maybe(is_message("bob@localhost", "default"), 0.5) is None,
         "the default list applies to a session without an active list")
    t.ok(err(query(a2, "<list name='nobob'/>", "set"), "conflict"),
         "removing a list active on another resource: conflict")
    t.ok(err(query(a2, "<default/>", "set"), "conflict"),
         "declining a default in use by another resource: conflict")
    a1.close()
    # The server ends the session just after the stream: retry while it
    # still counts.
    for _ in range(20):
        res = query(a2, "<default/>", "set")
        if not err(res, "conflict"):
            break
        time.sleep(0.1)
    t.ok(ok(res), "alone, the resource may decline the default")
    t.ok(ok(query(a2, "<list name='nobob'/>", "set")) and a2.expect(is_push("nobob")) is not None,
         "and remove the list (pushed)")
    t.ok(names(query(a2, "")) == (None, None, []), "no lists left")
    msg(b, a2.jid, "free")
    t.ok(a2.expect(is_message("bob@localhost", "free")) is not None, "delivery is back")
    msg(a2, "bob@localhost", "hi")
    b.expect(is_message("alice@localhost", "hi"))
    a2.close()
    b.close()


def test_outbound(t, srv):
    srv.register("carol")
    srv.register("dan")
    srv.register("eve")
    srv.register("ivan")
    subscribe_both(srv, "carol", "dan")
    subscribe_both(srv, "carol", "eve")
    subscribe_both(srv, "carol", "ivan")
    i = Client(srv, "ivan")
    i.presence()
    d = Client(srv, "dan")
    d.presence()
    e = Client(srv, "eve")
    e.presence()
    c = Client(srv, "carol")
    c.presence()
    for x in (d, e, i):
        x.expect(is_presence(None, "carol@localhost"), what="carol's initial presence")
        x.drain(0.1)  # also the unavailable that answered their probes before carol came
    set_list(c, "hide", "<item type='jid' value='dan@localhost' action='deny' order='1'>"
                        "<presence-out/></item>"
                        "<item type='jid' value='eve@localhost' action='deny' order='2'/>")
    query(c, "<default name='hide'/>", "set")
    t.ok(d.expect(is_presence("unavailable", "carol@localhost")).get("from") == c.jid,
         "a subscriber the default list starts hiding from gets unavailable")
    t.ok(e.expect(is_presence("unavailable", "carol@localhost")) is not None,
         "also through an all-stanza item")
    t.ok(i.maybe(is_presence("unavailable", "carol@localhost"), 0.3) is None,
         "a subscriber the list does not name gets nothing")
    c.presence(extra="<status>here</status>")
    t.ok(i.expect(is_presence(None, "carol@localhost")) is not None,
         "a subscriber the list does not name sees the broadcast")
    t.ok(d.maybe(is_presence(None, "carol@localhost"), 0.7) is None,
         "presence-out denial: the contact does not see the broadcast")
    t.ok(e.maybe(is_presence(None, "carol@localhost"), 0.3) is None,
         "an all-stanza item also stops presence out")
    msg(c, "dan@localhost", "still talking")
    t.ok(d.expect(is_message("carol@localhost", "still talking")) is not None,
         "presence-out does not stop messages")
    msg(c, "eve@localhost", "no")
    res = c.expect(is_message("eve@localhost", type="error"), what="an error")
    t.ok(error_condition(res) == "not-acceptable",
         "a message to a JID the user's list denies: not-acceptable")
    t.ok(e.maybe(is_message("carol@localhost", "no"), 0.5) is None, "and it is not sent")
    query(c, "<default/>", "set")
    p = d.expect(is_presence(None, "carol@localhost"), what="carol's presence again")
    t.ok(p.get("from") == c.jid, "declining the list shows the presence again")
    for x in (c, d, e, i):
        x.close()


def test_subscription(t, srv):
    srv.register("fay")
    srv.register("gus")
    srv.register("hal")
    subscribe_both(srv, "fay", "gus")
    f = Client(srv, "fay")
    f.presence()
    set_list(f, "friends", "<item type='subscription' value='none' action='deny' order='5'>"
                           "<message/></item>")
    query(f, "<active name='friends'/>", "set")
    g = Client(srv, "gus")
    h = Client(srv, "hal")
    msg(g, f.jid, "from a friend")
    t.ok(f.expect(is_message("gus@localhost", "from a friend")) is not None,
         "a subscribed contact passes a subscription='none' deny")
    msg(h, f.jid, "from a stranger")
    t.ok(h.expect(is_message("fay@localhost", type="error")) is not None and
         f.maybe(is_message("hal@localhost"), 0.5) is None,
         "someone not in the roster is denied")
    for x in (f, g, h):
        x.close()


def main():
    t = Tap()
    try:
        srv = Server({"mod_roster": {}, "mod_disco": {}, "mod_privacy": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_privacy starts")
        t.diag(e)
        t.done()
    try:
        t.run("lists", test_lists, srv)
        t.run("outbound", test_outbound, srv)
        t.run("subscription", test_subscription, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
