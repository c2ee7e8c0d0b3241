#!/usr/bin/python3
"""mod_disco (XEP-0030): the server's disco#info lists its identity and
the features of every loaded module (mod_ping's among them), disco#items
answers, unknown nodes get item-not-found, and an account's bare JID
answers account/registered. mod_ping (XEP-0199) answers pings. Prints TAP;
ignores --tap."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Client, Server, Tap, error_condition, q  # noqa: E402

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"


def features(res):
    query = res.find(q(NS_INFO, "query"))
    return set() if query is None else {f.get("var") for f in query.findall(q(NS_INFO, "feature"))}


def identities(res):
    query = res.find(q(NS_INFO, "query"))
    return set() if query is None else {
        (i.get("category"), i.get("type"), i.get("name"))
        for i in query.findall(q(NS_INFO, "identity"))}


def test_disco(t, srv):
    srv.register("ivy")
    srv.register("jack")
    c = Client(srv, "ivy")

    res = c.iq("<query xmlns='%s'/>" % NS_INFO, to="localhost")
    t.ok(res.get("type") == "result" and res.get("from") == "localhost",
         "disco#info to the server answered")
    t.ok(("server", "im", "Meerkat") in identities(res), "identity server/im 'Meerkat'")
    f = features(res)
    for var in (NS_INFO, NS_ITEMS, "urn:xmpp:ping"):
        t.ok(var in f, "feature %s listed" % var)
    t.diag("features: %s" % sorted(f))

    res = c.iq("<query xmlns='%s'/>" % NS_ITEMS, to="localhost")
    t.ok(res.get("type") == "result" and res.find(q(NS_ITEMS, "query")) is not None,
         "disco#items to the server answered")

    res = c.iq("<query xmlns='%s' node='no-such-node'/>" % NS_INFO, to="localhost")
    t.ok(error_condition(res) == "item-not-found", "an unknown node: item-not-found")

    res = c.iq("<query xmlns='%s'/>" % NS_INFO, to="jack@localhost")
    t.ok(res.get("type") == "result" and ("account", "registered", None) in identities(res),
         "another account's bare JID: identity account/registered")
    res = c.iq("<query xmlns='%s'/>" % NS_INFO)
    t.ok(res.get("type") == "result" and ("account", "registered", None) in identities(res),
         "the user's own account (no 'to'): account/registered")
    res = c.iq("<query xmlns='%s'/>" % NS_ITEMS, to="jack@localhost")
    query = res.find(q(NS_ITEMS, "query"))
    t.ok(res.get("type") == "result" and query is not None and len(query) == 0,
         "an account's disco#items is empty")
    res = c.iq("<query xmlns='%s'/>" % NS_INFO, to="nobody@localhost")
    t.ok(res.get("type") == "error", "a JID that is no account: error (%s)" % error_condition(res))

    res = c.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    t.ok(res.get("type") == "result" and len(res) == 0, "a ping to the server: empty result")
    c.close()


def main():
    t = Tap()
    try:
        srv = Server({"mod_disco": {}, "mod_ping": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_disco and mod_ping starts")
        t.diag(e)
        t.done()
    try:
        t.run("disco", test_disco, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
