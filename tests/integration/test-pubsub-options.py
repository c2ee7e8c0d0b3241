#!/usr/bin/python3
"""mod_pubsub at pubsub.localhost, through raw stanzas: subscription
options (XEP-0060 6.3, 6.4, 12.18: pubsub#deliver, pubsub#expire leases,
pubsub#show-values, the default form, the refused fields and their
errors), pubsub#purge_offline (a publisher's items go when it goes
offline), pubsub#itemreply (the item's publisher attribute and XEP-0033
replyto), collection nodes refused with XEP-0248's error, transient nodes
(item-forbidden, persistent-items), pending-subscription, disco showing
only the nodes one may see, and the per-user subscription limit with its
error and metric. Prints TAP; ignores --tap."""
import datetime
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Client, Server, Tap, error_condition, online, q  # noqa: E402
from pubsubtest import (NS, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_EVENT, NS_XDATA,  # noqa: E402
                        SERVICE, app_error, form, is_event, items, node_config, owner, ps,
                        publish)

ENTRY = "<entry xmlns='urn:example:news'>%s</entry>"
NS_ADDRESS = "http://jabber.org/protocol/address"
SUBOPT = NS + "#subscribe_options"
MAX_USER_SUBS = 8


def metric(srv, name):
    """mod_pubsub.NAME as meerkatd logs it on SIGUSR1 (-1: none in 10 s)."""
    want = re.compile(r"metric \S+\.mod_pubsub\.%s (\d+)" % name)

    def found():
        with open(srv.log_path, errors="replace") as f:
            return want.findall(f.read())
    before = len(found())
    srv.proc.send_signal(signal.SIGUSR1)
    deadline = time.time() + 10
    while time.time() < deadline:
        now = found()
        if len(now) > before:
            return int(now[-1])
        time.sleep(0.05)
    return -1


def sub(c, node, jid=None, opts=None):
    """Subscribes (with an options form's fields); the <subscription/>
    or the error reply."""
    jid = jid or c.bare
    extra = "<options>%s</options>" % form(SUBOPT, opts) if opts is not None else ""
    res = c.iq(ps("<subscribe node='%s' jid='%s'/>%s" % (node, jid, extra)), "set", to=SERVICE)
    p = res.find(q(NS, "pubsub"))
    return (p.find(q(NS, "subscription")) if p is not None else None), res


def set_options(c, node, fields, jid=None, subid=None):
    attr = " subid='%s'" % subid if subid else ""
    return c.iq(ps("<options node='%s' jid='%s'%s>%s</options>" %
                   (node, jid or c.bare, attr, form(SUBOPT, fields))), "set", to=SERVICE)


def get_options(c, node, jid=None, subid=None):
    """The options form as {var: [values]}, and the reply."""
    attr = " subid='%s'" % subid if subid else ""
    res = c.iq(ps("<options node='%s' jid='%s'%s/>" % (node, jid or c.bare, attr)), to=SERVICE)
    p = res.find(q(NS, "pubsub"))
    x = p.find(q(NS, "options")).find(q(NS_XDATA, "x")) if p is not None else None
    if x is None:
        return None, res
    return {f.get("var"): [v.text for v in f.findall(q(NS_XDATA, "value"))]
            for f in x.findall(q(NS_XDATA, "field"))}, res


def create(c, node, **cfg):
    conf = "<configure>%s</configure>" % node_config(**cfg) if cfg else ""
    return c.iq(ps("<create node='%s'/>%s" % (node, conf)), "set", to=SERVICE)


def event_item(ev):
    return ev.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "items")).find(q(NS_EVENT, "item"))


def options(t, srv):
    for u in ("alice", "bob", "carol", "dave"):
        srv.register(u)
    a, b, c = online(srv, "alice"), online(srv, "bob"), online(srv, "carol")

    res = a.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=SERVICE)
    feats = {f.get("var") for f in res.find(q(NS_DISCO_INFO, "query"))
             .findall(q(NS_DISCO_INFO, "feature"))}
    t.ok({NS + "#subscription-options", NS + "#leased-subscription",
          NS + "#retrieve-default-sub"} <= feats and NS + "#collections" not in feats,
         "the service advertises subscription options, leases and their defaults")

    create(a, "feed")
    s, _ = sub(b, "feed")
    fields, res = get_options(b, "feed")
    t.ok(fields is not None and fields.get("FORM_TYPE") == [SUBOPT] and
         fields.get("pubsub#deliver") == ["1"] and "pubsub#expire" in fields and
         "pubsub#show-values" in fields, "the options form: deliver, expire, show-values")
    t.ok("pubsub#digest" not in fields and "pubsub#include_body" not in fields,
         "and nothing the service does not do (digest, include_body)")
    res = b.iq(ps("<default node='feed'/>"), to=SERVICE)
    d = res.find(q(NS, "pubsub"))
    t.ok(d is not None and d.find(q(NS, "default")).find(q(NS_XDATA, "x")) is not None,
         "the default subscription options come as a form (6.4)")
    res = b.iq(ps("<default node='nowhere'/>"), to=SERVICE)
    t.ok(error_condition(res) == "item-not-found", "defaults of a missing node: item-not-found")

    # ---- pubsub#deliver
    res = set_options(b, "feed", {"pubsub#deliver": "0"})
    t.ok(res.get("type") == "result", "deliver=0 is taken")
    publish(a, "feed", ENTRY % "quiet", "q1")
    t.ok(b.maybe(is_event("feed", "items"), 1.0) is None, "deliver=0: no notification")
    set_options(b, "feed", {"pubsub#deliver": "1"})
    publish(a, "feed", ENTRY % "loud", "q2")
    ev = b.expect(is_event("feed", "items"), what="the notification after deliver=1")
    t.ok(event_item(ev).get("id") == "q2", "deliver=1 again: notified")

    # ---- refused options: bad-request + invalid-options, nothing changed
    for fields, what in (({"pubsub#digest": "1"}, "digest"),
                         ({"pubsub#include_body": "1"}, "include_body"),
                         ({"pubsub#subscription_type": "nodes"}, "subscription_type nodes"),
                         ({"pubsub#subscription_depth": "all"}, "subscription_depth all"),
                         ({"pubsub#expire": "next tuesday"}, "an expire that is no DateTime"),
                         ({"pubsub#show-values": "sleeping"}, "an unknown show"),
                         ({"pubsub#deliver": "0", "pubsub#frequency": "1"}, "an unknown field")):
        res = set_options(b, "feed", fields)
        t.ok(error_condition(res) == "bad-request" and app_error(res) == "invalid-options",
             "options with %s: bad-request + invalid-options" % what)
    fields, _ = get_options(b, "feed")
    t.ok(fields.get("pubsub#deliver") == ["1"], "a refused form changed nothing")
    s, res = sub(c, "feed", opts={"pubsub#digest": "true"})
    t.ok(error_condition(res) == "bad-request" and app_error(res) == "invalid-options",
         "subscribing with a refused option: bad-request + invalid-options")
    res = c.iq(ps("<subscriptions node='feed'/>"), to=SERVICE)
    t.ok(len(res.find(q(NS, "pubsub")).find(q(NS, "subscriptions"))) == 0,
         "and no subscription was made")

    # ---- options errors (6.3.4)
    res = set_options(c, "feed", {"pubsub#deliver": "0"})
    t.ok(error_condition(res) == "unexpected-request" and app_error(res) == "not-subscribed",
         "options without a subscription: unexpected-request + not-subscribed")
    res = set_options(c, "feed", {"pubsub#deliver": "0"}, jid="bob@localhost")
    t.ok(error_condition(res) == "forbidden", "options of someone else's subscription: forbidden")
    fields, res = get_options(b, "feed", subid="nope")
    t.ok(error_condition(res) == "not-acceptable" and app_error(res) == "invalid-subid",
         "options with a wrong subid: not-acceptable + invalid-subid")
    s2, _ = sub(b, "feed", opts={"pubsub#deliver": "0"})
    fields, res = get_options(b, "feed")
    t.ok(error_condition(res) == "bad-request" and app_error(res) == "subid-required",
         "options without a subid when there are two: bad-request + subid-required")
    fields, res = get_options(b, "feed", subid=s2.get("subid"))
    t.ok(fields and fields.get("pubsub#deliver") == ["0"],
         "options given with the subscription apply to it (6.3.7)")
    b.drain()
    publish(a, "feed", ENTRY % "one sub", "q3")
    ev = b.expect(is_event("feed", "items"), what="the notification for one of two")
    t.ok(ev.find(q("http://jabber.org/protocol/shim", "headers")) is None,
         "two subscriptions, one delivering: one notification without headers")
    b.iq(ps("<unsubscribe node='feed' jid='bob@localhost' subid='%s'/>" % s2.get("subid")), "set",
         to=SERVICE)

    # ---- pubsub#show-values
    b2 = Client(srv, "bob", resource="busy")
    b2.presence(extra="<show>dnd</show>")
    create(a, "alerts")
    s, _ = sub(b, "alerts", opts={"pubsub#show-values": ["dnd", "xa"]})
    t.ok(s is not None and s.get("subscription") == "subscribed",
         "subscribing with show-values dnd and xa")
    b.drain()
    b2.drain()
    publish(a, "alerts", ENTRY % "busy", "al1")
    ev = b2.expect(is_event("alerts", "items"), what="the notification to the dnd resource")
    t.ok(ev.get("to") == "bob@localhost/busy", "the resource whose show is dnd gets it")
    t.ok(b.maybe(is_event("alerts", "items"), 1.0) is None,
         "the plainly available resource does not")
    b2.presence()  # now plainly available too
    b2.drain()
    publish(a, "alerts", ENTRY % "nobody", "al2")
    t.ok(b.maybe(is_event("alerts", "items"), 1.0) is None and
         b2.maybe(is_event("alerts", "items"), 0.3) is None,
         "with no resource in dnd or xa: nobody gets it")
    b.presence(extra="<show>xa</show>")
    b.drain()
    publish(a, "alerts", ENTRY % "away", "al3")
    ev = b.expect(is_event("alerts", "items"), what="the notification once xa")
    t.ok(ev.get("to") == "bob@localhost/r", "the resource that became xa gets the next one")
    b.presence()
    b2.close()

    # ---- pubsub#expire (leases, 12.18)
    create(a, "lease")
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))
    s, _ = sub(c, "lease", opts={"pubsub#expire": later.strftime("%Y-%m-%dT%H:%M:%SZ")})
    fields, _ = get_options(c, "lease")
    t.ok(fields and fields.get("pubsub#expire") == [later.strftime("%Y-%m-%dT%H:%M:%SZ")],
         "a lease: the options show when it ends")
    c.drain()
    publish(a, "lease", ENTRY % "leased", "l1")
    t.ok(c.maybe(is_event("lease", "items"), 3) is not None, "a running lease: notified")
    res = set_options(c, "lease", {"pubsub#expire": "2001-01-01T00:00:00Z"})
    t.ok(res.get("type") == "result", "the lease is set to have ended")
    publish(a, "lease", ENTRY % "after", "l2")
    t.ok(c.maybe(is_event("lease", "items"), 1.0) is None, "an ended lease: no notification")
    res = c.iq(ps("<subscriptions node='lease'/>"), to=SERVICE)
    t.ok(len(res.find(q(NS, "pubsub")).find(q(NS, "subscriptions"))) == 0,
         "and the subscription is gone")

    # ---- pending-subscription (6.1.3.7)
    create(a, "club", access_model="authorize")
    s, _ = sub(c, "club")
    a.drain()
    s, res = sub(c, "club")
    t.ok(error_condition(res) == "not-authorized" and app_error(res) == "pending-subscription",
         "subscribing again while pending: not-authorized + pending-subscription")

    # ---- disco shows the nodes one may see (5.2, 5.3)
    create(a, "secret", access_model="whitelist")
    res = c.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=SERVICE)
    seen = {i.get("node") for i in res.find(q(NS_DISCO_ITEMS, "query"))}
    t.ok("feed" in seen and "club" in seen and "secret" not in seen,
         "disco#items: a stranger sees open and authorize nodes, not a whitelist one")
    res = a.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=SERVICE)
    seen = {i.get("node") for i in res.find(q(NS_DISCO_ITEMS, "query"))}
    t.ok("secret" in seen, "its owner sees it")
    res = c.iq("<query xmlns='%s' node='secret'/>" % NS_DISCO_INFO, to=SERVICE)
    t.ok(error_condition(res) == "item-not-found",
         "disco#info of a node one may not see: item-not-found")

    # ---- collections (XEP-0248) are not supported
    res = create(a, "coll", node_type="collection")
    err = res.find("{jabber:client}error")
    unsupported = err.find(q(NS + "#errors", "unsupported")) if err is not None else None
    t.ok(error_condition(res) == "feature-not-implemented" and unsupported is not None and
         unsupported.get("feature") == "collections",
         "creating a collection node: feature-not-implemented + unsupported 'collections'")
    res = a.iq(owner("<configure node='feed'>%s</configure>" % node_config(collection="parent")),
               "set", to=SERVICE)
    err = res.find("{jabber:client}error")
    unsupported = err.find(q(NS + "#errors", "unsupported")) if err is not None else None
    t.ok(error_condition(res) == "feature-not-implemented" and unsupported is not None and
         unsupported.get("feature") == "collections",
         "putting a node in a collection: the same error")

    # ---- transient nodes (7.1.3.6, 6.5.9.4, 8.5.3.3)
    create(a, "pulse", persist_items="0", deliver_payloads="0")
    sub(b, "pulse")
    b.drain()
    res = publish(a, "pulse", ENTRY % "x", "p1")
    t.ok(error_condition(res) == "bad-request" and app_error(res) == "item-forbidden",
         "an item to a transient notification-only node: bad-request + item-forbidden")
    res = a.iq(ps("<publish node='feed'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "bad-request" and app_error(res) == "item-required",
         "no item to a persistent node: bad-request + item-required")
    res = a.iq(ps("<publish node='feed'><item id='e'/></publish>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "bad-request" and app_error(res) == "payload-required",
         "an item without payload there: bad-request + payload-required")
    res = a.iq(ps("<publish node='pulse'/>"), "set", to=SERVICE)
    ev = b.expect(is_event("pulse", "items"), what="the payload-less notification")
    t.ok(res.get("type") == "result" and event_item(ev) is not None,
         "a publish without an item there: result, subscribers notified")
    res, ids = items(b, "pulse")
    err = res.find("{jabber:client}error")
    t.ok(error_condition(res) == "feature-not-implemented" and
         err.find(q(NS + "#errors", "unsupported")).get("feature") == "persistent-items",
         "items of a transient node: feature-not-implemented + unsupported persistent-items")
    res = a.iq(owner("<purge node='pulse'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "feature-not-implemented", "purging a transient node: the same")
    res = a.iq(ps("<retract node='pulse'><item id='p1'/></retract>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "feature-not-implemented", "retracting there: the same")

    # ---- the per-user subscription limit
    d = online(srv, "dave")
    before = metric(srv, "limit_refusals")
    made = refused = 0
    for i in range(MAX_USER_SUBS + 2):
        create(a, "many%d" % i)
        s, res = sub(d, "many%d" % i, jid="dave@localhost/r" if i % 2 else None)
        if s is not None:
            made += 1
        elif error_condition(res) == "policy-violation" and \
                app_error(res) == "too-many-subscriptions":
            refused += 1
    held = srv.sql("SELECT COUNT(*) FROM pubsub_subscriptions"
                   " WHERE jid LIKE 'dave@localhost%'")[0][0]
    t.ok(held == MAX_USER_SUBS and refused == 2 and made == MAX_USER_SUBS,
         "max_user_subscriptions: dave holds %d (bare and full JIDs together), the rest "
         "policy-violation + too-many-subscriptions (%d refused)" % (held, refused))
    after = metric(srv, "limit_refusals")
    t.ok(after - before == refused, "each refusal counted in mod_pubsub.limit_refusals "
         "(%d -> %d)" % (before, after))

    # ---- publish-only (4.1): publishes and retracts its own, nothing else
    a.iq(owner("<affiliations node='feed'><affiliation jid='dave@localhost'"
               " affiliation='publish-only'/></affiliations>"), "set", to=SERVICE)
    res = publish(d, "feed", ENTRY % "dave's", "d1")
    t.ok(res.get("type") == "result", "publish-only: publishes")
    s, res = sub(d, "feed")
    t.ok(error_condition(res) == "forbidden", "publish-only: subscribing is forbidden")
    res, ids = items(d, "feed")
    t.ok(error_condition(res) == "forbidden", "publish-only: retrieving items is forbidden")
    res = d.iq(ps("<retract node='feed'><item id='q2'/></retract>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "forbidden", "publish-only: retracting another's item: forbidden")
    res = d.iq(ps("<retract node='feed'><item id='d1'/></retract>"), "set", to=SERVICE)
    t.ok(res.get("type") == "result", "publish-only: retracting its own item")
    for x in (a, b, c, d):
        x.close()


def offline_and_reply(t, srv):
    a, b, c = online(srv, "alice"), online(srv, "bob"), online(srv, "carol")
    # ---- pubsub#purge_offline
    create(a, "live", purge_offline="1")
    create(a, "kept")
    for node in ("live", "kept"):
        a.iq(owner("<affiliations node='%s'><affiliation jid='bob@localhost'"
                   " affiliation='publisher'/></affiliations>" % node), "set", to=SERVICE)
        sub(c, node)
    b2 = Client(srv, "bob", resource="second")
    b2.presence()
    publish(b, "live", ENTRY % "bob's", "bob1")
    publish(a, "live", ENTRY % "alice's", "alice1")
    publish(b, "kept", ENTRY % "bob's", "bob2")
    c.drain()
    b.close()
    t.ok(c.maybe(is_event("live"), 1.0) is None,
         "one of bob's resources going offline purges nothing (another is available)")
    b2.close()
    ev = c.expect(is_event("live", "items"), 10, "the purge's retraction")
    rt = ev.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "items")).find(q(NS_EVENT, "retract"))
    t.ok(rt is not None and rt.get("id") == "bob1",
         "bob's last resource going offline: subscribers hear bob's item retracted")
    t.ok(c.maybe(is_event("live"), 0.5) is None, "once, and nothing of alice's")
    res, ids = items(a, "live")
    t.ok(ids == ["alice1"], "purge_offline: bob's items are gone, alice's stay")
    res, ids = items(a, "kept")
    t.ok(ids == ["bob2"], "a node without purge_offline keeps bob's item")
    t.ok(metric(srv, "purged_offline") == 1, "mod_pubsub.purged_offline counts it")

    # ---- pubsub#itemreply
    create(a, "byowner")
    create(a, "bypublisher", itemreply="publisher")
    b = online(srv, "bob")
    for node in ("byowner", "bypublisher"):
        a.iq(owner("<affiliations node='%s'><affiliation jid='bob@localhost'"
                   " affiliation='publisher'/></affiliations>" % node), "set", to=SERVICE)
        sub(c, node)
    c.drain()
    publish(b, "byowner", ENTRY % "o", "o1")
    ev = c.expect(is_event("byowner", "items"), what="the itemreply=owner notification")
    addrs = ev.find(q(NS_ADDRESS, "addresses"))
    t.ok(addrs is not None and [(x.get("type"), x.get("jid")) for x in addrs] ==
         [("replyto", "alice@localhost")] and event_item(ev).get("publisher") is None,
         "itemreply=owner: replies go to the owner (XEP-0033 replyto), no publisher named")
    publish(b, "bypublisher", ENTRY % "p", "p1")
    ev = c.expect(is_event("bypublisher", "items"), what="the itemreply=publisher notification")
    addrs = ev.find(q(NS_ADDRESS, "addresses"))
    t.ok(event_item(ev).get("publisher") == "bob@localhost" and addrs is not None and
         [(x.get("type"), x.get("jid")) for x in addrs] == [("replyto", "bob@localhost")],
         "itemreply=publisher: the item names its publisher, replies go to it")
    for x in (a, b, c):
        x.close()


def main():
    t = Tap()
    try:
        srv = Server({"mod_roster": None, "mod_disco": None,
                      "mod_pubsub": {"max_user_subscriptions": MAX_USER_SUBS}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_pubsub starts")
        t.diag(e)
        t.done()
    try:
        t.run("subscription options", options, srv)
        t.run("purge_offline and itemreply", offline_and_reply, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
