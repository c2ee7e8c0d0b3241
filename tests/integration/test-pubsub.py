#!/usr/bin/python3
"""mod_pubsub's service at pubsub.localhost (XEP-0060) through raw
stanzas: disco, node creation with and without a form, configuration,
publish (with and without an id, overwrite, publish-options), items
retrieval, max_items, retract, purge, delete with redirect, subscriptions
(subids and headers), the access models, owner management, the errors of
sections 6-8 with their pubsub#errors conditions, the payload bound, and
nodes and items surviving a restart. The scenarios run on PostgreSQL too
(test-pubsub-pgsql.py). Prints TAP; ignores --tap."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Client, Server, Tap, error_condition, online, q, subscribe  # noqa: E402
from pubsubtest import (NS, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_EVENT, NS_OWNER, NS_XDATA,  # noqa: E402
                        SERVICE, app_error, is_event, items, node_config, owner, ps,
                        publish, publish_options, restart)

MODULES = {"mod_roster": None, "mod_disco": None,
           "mod_pubsub": {"max_payload_size": 1024, "max_items": 50}}
ENTRY = "<entry xmlns='urn:example:news'>%s</entry>"


def disco(t, a):
    res = a.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=SERVICE)
    query = res.find(q(NS_DISCO_INFO, "query"))
    ids = [(i.get("category"), i.get("type")) for i in query.findall(q(NS_DISCO_INFO, "identity"))]
    feats = {f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))}
    t.ok(("pubsub", "service") in ids, "the service's identity is pubsub/service")
    t.ok(NS + "#publish" in feats and NS + "#publish-options" in feats and
         NS + "#subscribe" in feats, "its features name publish, publish-options, subscribe")
    t.ok(NS + "#collections" not in feats and NS + "#presence-notifications" not in feats,
         "no feature it does not implement (collections, presence-notifications)")
    res = a.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to="localhost")
    jids = [i.get("jid") for i in res.find(q(NS_DISCO_ITEMS, "query"))]
    t.ok(SERVICE in jids, "the server's disco#items lists pubsub.localhost")


def scenarios(t, srv, register, restart_fn):
    for u in ("alice", "bob", "carol"):
        register(u)
    a, b, c = online(srv, "alice"), online(srv, "bob"), online(srv, "carol")
    disco(t, a)

    # ---- create (8.1)
    res = a.iq(ps("<create node='news'/>"), "set", to=SERVICE)
    t.ok(res.get("type") == "result", "create without a form: result")
    res = b.iq(ps("<create node='news'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "conflict", "creating an existing node: conflict")
    res = a.iq(ps("<create/>"), "set", to=SERVICE)
    made = res.find(q(NS, "pubsub"))
    instant = made.find(q(NS, "create")).get("node") if made is not None else None
    t.ok(res.get("type") == "result" and instant, "an instant node gets a generated name")
    res = a.iq(ps("<create node='small'/><configure>%s</configure>" %
                  node_config(max_items="2", title="Small", notify_config="1")), "set", to=SERVICE)
    t.ok(res.get("type") == "result", "create with a configure form: result")
    res = a.iq(ps("<create node='bad'/><configure>%s</configure>" %
                  node_config(access_model="nobody")), "set", to=SERVICE)
    t.ok(error_condition(res) == "not-acceptable", "create with an invalid form: not-acceptable")
    res = a.iq(ps("<create node='big'/><configure>%s</configure>" %
                  node_config(max_items="51")), "set", to=SERVICE)
    t.ok(error_condition(res) == "not-acceptable", "max_items over the service's bound: "
         "not-acceptable")

    # ---- configure (8.2)
    res = a.iq(owner("<configure node='small'/>"), to=SERVICE)
    x = res.find(q(NS_OWNER, "pubsub")).find(q(NS_OWNER, "configure")).find(q(NS_XDATA, "x"))
    vals = {f.get("var"): f.findtext(q(NS_XDATA, "value")) for f in x.findall(q(NS_XDATA, "field"))}
    t.ok(vals.get("pubsub#max_items") == "2" and vals.get("pubsub#title") == "Small" and
         vals.get("pubsub#access_model") == "open", "configure get: the form has the values set")
    res = b.iq(owner("<configure node='small'/>"), to=SERVICE)
    t.ok(error_condition(res) == "forbidden", "configure by a non-owner: forbidden")
    res = a.iq(owner("<configure node='none'/>"), to=SERVICE)
    t.ok(error_condition(res) == "item-not-found", "configure a missing node: item-not-found")
    res = a.iq(owner("<default/>"), to=SERVICE)
    t.ok(res.find(q(NS_OWNER, "pubsub")).find(q(NS_OWNER, "default")) is not None,
         "the default configuration comes as a form")

    # ---- subscribe (6.1)
    res = b.iq(ps("<subscribe node='news' jid='bob@localhost'/>"), "set", to=SERVICE)
    sub = res.find(q(NS, "pubsub")).find(q(NS, "subscription"))
    t.ok(sub.get("subscription") == "subscribed" and sub.get("subid"),
         "bob subscribes to an open node: subscribed, with a subid")
    res = b.iq(ps("<subscribe node='news' jid='alice@localhost'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "bad-request" and app_error(res) == "invalid-jid",
         "subscribing another JID: bad-request + invalid-jid")
    res = b.iq(ps("<subscribe node='nothing' jid='bob@localhost'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "item-not-found", "subscribing to a missing node: item-not-found")
    res = c.iq(ps("<unsubscribe node='news' jid='carol@localhost'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "unexpected-request" and app_error(res) == "not-subscribed",
         "unsubscribing without a subscription: unexpected-request + not-subscribed")
    res = b.iq(ps("<items/>"), to=SERVICE)
    t.ok(error_condition(res) == "bad-request" and app_error(res) == "nodeid-required",
         "items without a node: bad-request + nodeid-required")

    # ---- publish (7.1) and notifications
    res = publish(a, "news", ENTRY % "one", "1")
    t.ok(res.get("type") == "result", "publish with an id: result")
    ev = b.expect(is_event("news", "items"), what="the publish notification")
    item = ev.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "items")).find(q(NS_EVENT, "item"))
    t.ok(item.get("id") == "1" and item.find(q("urn:example:news", "entry")).text == "one" and
         ev.get("from") == SERVICE, "the subscriber gets the item with its payload")
    res = publish(a, "news", ENTRY % "two")
    gen = res.find(q(NS, "pubsub")).find(q(NS, "publish")).find(q(NS, "item")).get("id")
    t.ok(res.get("type") == "result" and gen, "publish without an id: the service names it")
    b.expect(is_event("news", "items"))
    publish(a, "news", ENTRY % "one again", "1")
    b.expect(is_event("news", "items"))
    res, ids = items(b, "news")
    t.ok(ids is not None and sorted(ids) == sorted(["1", gen]), "items: all, overwrite kept one '1'")
    t.ok(ids[0] == "1", "items come newest first (the overwrite is the newest)")
    res, ids = items(b, "news", " max_items='1'")
    t.ok(ids == ["1"], "items with max_items='1': the newest only")
    res, ids = items(b, "news", "", "<item id='%s'/>" % gen)
    t.ok(ids == [gen], "items by id")
    res = b.iq(ps("<publish node='news'><item><entry xmlns='urn:x'/></item></publish>"), "set",
               to=SERVICE)
    t.ok(error_condition(res) == "forbidden", "a subscriber publishing (publishers model): "
         "forbidden")
    res = publish(a, "news", ENTRY % ("x" * 2000))
    t.ok(error_condition(res) == "not-acceptable" and app_error(res) == "payload-too-big",
         "a payload over max_payload_size: not-acceptable + payload-too-big")
    res = a.iq(ps("<publish node='news'><item><a xmlns='urn:x'/><b xmlns='urn:x'/></item>"
                  "</publish>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "bad-request" and app_error(res) == "invalid-payload",
         "two payload elements: bad-request + invalid-payload")
    res = publish(a, "news", ENTRY % "opt", None, publish_options(access_model="whitelist"))
    t.ok(error_condition(res) == "conflict" and app_error(res) == "precondition-not-met",
         "publish-options that differ: conflict + precondition-not-met")
    res = publish(a, "news", ENTRY % "opt", "opt", publish_options(access_model="open"))
    t.ok(res.get("type") == "result", "publish-options that hold: published")
    b.expect(is_event("news", "items"))

    # ---- max_items (including max)
    for i in range(3):
        publish(a, "small", ENTRY % i, "s%d" % i)
    res, ids = items(a, "small")
    t.ok(ids == ["s2", "s1"], "max_items=2 keeps the two newest of three")
    res = a.iq(owner("<configure node='small'>%s</configure>" % node_config(max_items="max")),
               "set", to=SERVICE)
    for i in range(3, 6):
        publish(a, "small", ENTRY % i, "s%d" % i)
    res, ids = items(a, "small")
    t.ok(len(ids) == 5, "max_items=max keeps them all (up to the service's bound)")

    # ---- retract (7.2)
    res = a.iq(ps("<retract node='news' notify='true'><item id='%s'/></retract>" % gen), "set",
               to=SERVICE)
    t.ok(res.get("type") == "result", "retract: result")
    ev = b.expect(is_event("news", "items"), what="the retract notification")
    rt = ev.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "items")).find(q(NS_EVENT, "retract"))
    t.ok(rt is not None and rt.get("id") == gen, "retract with notify: subscribers hear of it")
    res = a.iq(ps("<retract node='news'><item id='%s'/></retract>" % gen), "set", to=SERVICE)
    t.ok(error_condition(res) == "item-not-found", "retracting a missing item: item-not-found")
    res = b.iq(ps("<retract node='news'><item id='1'/></retract>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "forbidden", "retract by a non-publisher: forbidden")
    res = a.iq(ps("<retract node='news'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "bad-request" and app_error(res) == "item-required",
         "retract without an item: bad-request + item-required")

    # ---- several subscriptions: subids and headers (6.1.6, 12.3)
    res = c.iq(ps("<subscribe node='news' jid='carol@localhost'/><options>%s</options>" %
                  "<x xmlns='jabber:x:data' type='submit'/>"), "set", to=SERVICE)
    res2 = c.iq(ps("<subscribe node='news' jid='carol@localhost'/><options>%s</options>" %
                   "<x xmlns='jabber:x:data' type='submit'/>"), "set", to=SERVICE)
    s1 = res.find(q(NS, "pubsub")).find(q(NS, "subscription")).get("subid")
    s2 = res2.find(q(NS, "pubsub")).find(q(NS, "subscription")).get("subid")
    t.ok(s1 and s2 and s1 != s2, "a second subscription with options gets its own subid")
    c.drain()
    publish(a, "news", ENTRY % "h", "h")
    ev = c.expect(is_event("news", "items"))
    hdrs = ev.find(q("http://jabber.org/protocol/shim", "headers"))
    subids = sorted(h.text for h in hdrs) if hdrs is not None else []
    t.ok(subids == sorted([s1, s2]), "the notification names both subids in <headers/>")
    t.ok(c.maybe(is_event("news", "items"), 0.5) is None, "and comes once, not once per subid")
    res = c.iq(ps("<unsubscribe node='news' jid='carol@localhost'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "bad-request" and app_error(res) == "subid-required",
         "unsubscribe without a subid when there are two: bad-request + subid-required")
    res = c.iq(ps("<unsubscribe node='news' jid='carol@localhost' subid='nope'/>"), "set",
               to=SERVICE)
    t.ok(error_condition(res) == "not-acceptable" and app_error(res) == "invalid-subid",
         "unsubscribe with a wrong subid: not-acceptable + invalid-subid")
    res = c.iq(ps("<unsubscribe node='news' jid='carol@localhost' subid='%s'/>" % s2), "set",
               to=SERVICE)
    t.ok(res.get("type") == "result", "unsubscribe with a subid: result")

    # ---- own subscriptions and affiliations (5.6, 5.7)
    res = c.iq(ps("<subscriptions/>"), to=SERVICE)
    subs = res.find(q(NS, "pubsub")).find(q(NS, "subscriptions")).findall(q(NS, "subscription"))
    t.ok([(s.get("node"), s.get("subid")) for s in subs] == [("news", s1)],
         "retrieving one's own subscriptions")
    res = a.iq(ps("<affiliations/>"), to=SERVICE)
    affs = {x.get("node"): x.get("affiliation") for x in
            res.find(q(NS, "pubsub")).find(q(NS, "affiliations"))}
    t.ok(affs.get("news") == "owner" and affs.get("small") == "owner",
         "retrieving one's own affiliations")

    # ---- owner management (8.8, 8.9)
    res = a.iq(owner("<subscriptions node='news'/>"), to=SERVICE)
    jids = sorted(s.get("jid") for s in res.find(q(NS_OWNER, "pubsub")).find(
        q(NS_OWNER, "subscriptions")))
    t.ok(jids == ["bob@localhost", "carol@localhost"], "the owner lists the subscriptions")
    res = b.iq(owner("<subscriptions node='news'/>"), to=SERVICE)
    t.ok(error_condition(res) == "forbidden", "a non-owner listing them: forbidden")
    res = a.iq(owner("<affiliations node='news'><affiliation jid='carol@localhost'"
                     " affiliation='publisher'/></affiliations>"), "set", to=SERVICE)
    t.ok(res.get("type") == "result", "the owner makes carol a publisher")
    res = publish(c, "news", ENTRY % "carol", "c1")
    t.ok(res.get("type") == "result", "a publisher publishes")
    a.iq(owner("<affiliations node='news'><affiliation jid='carol@localhost'"
               " affiliation='outcast'/></affiliations>"), "set", to=SERVICE)
    res, ids = items(c, "news")
    t.ok(error_condition(res) == "forbidden", "an outcast reading items: forbidden")
    res = a.iq(owner("<affiliations node='news'/>"), to=SERVICE)
    affs = {x.get("jid"): x.get("affiliation") for x in
            res.find(q(NS_OWNER, "pubsub")).find(q(NS_OWNER, "affiliations"))}
    t.ok(affs == {"alice@localhost": "owner", "carol@localhost": "outcast"},
         "the owner lists the affiliations")
    a.iq(owner("<subscriptions node='news'><subscription jid='bob@localhost'"
               " subscription='none'/></subscriptions>"), "set", to=SERVICE)
    res = b.iq(ps("<subscriptions node='news'/>"), to=SERVICE)
    t.ok(len(res.find(q(NS, "pubsub")).find(q(NS, "subscriptions"))) == 0,
         "the owner removes bob's subscription")
    ev = b.expect(is_event("news", "subscription"), what="the subscription notification")
    t.ok(ev.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "subscription")).get("subscription") ==
         "none", "bob hears that the owner ended his subscription (8.8.4)")
    b.iq(ps("<subscribe node='news' jid='bob@localhost'/>"), "set", to=SERVICE)
    b.drain()

    # ---- access models (4.5)
    a.iq(ps("<create node='wl'/><configure>%s</configure>" % node_config(access_model="whitelist")),
         "set", to=SERVICE)
    res = b.iq(ps("<subscribe node='wl' jid='bob@localhost'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "not-allowed" and app_error(res) == "closed-node",
         "whitelist: a stranger subscribing gets not-allowed + closed-node")
    a.iq(owner("<affiliations node='wl'><affiliation jid='bob@localhost' affiliation='member'/>"
               "</affiliations>"), "set", to=SERVICE)
    res = b.iq(ps("<subscribe node='wl' jid='bob@localhost'/>"), "set", to=SERVICE)
    t.ok(res.get("type") == "result", "whitelist: a member subscribes")
    a.iq(ps("<create node='pres'/><configure>%s</configure>" % node_config(access_model="presence")),
         "set", to=SERVICE)
    res = b.iq(ps("<subscribe node='pres' jid='bob@localhost'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "not-authorized" and
         app_error(res) == "presence-subscription-required",
         "presence: without a presence subscription, not-authorized + "
         "presence-subscription-required")
    subscribe(b, a)
    res = b.iq(ps("<subscribe node='pres' jid='bob@localhost'/>"), "set", to=SERVICE)
    t.ok(res.get("type") == "result", "presence: a contact with a subscription subscribes")
    a.iq(ps("<create node='ro'/><configure>%s</configure>" %
            node_config(access_model="roster", roster_groups_allowed="Friends")), "set", to=SERVICE)
    res = b.iq(ps("<subscribe node='ro' jid='bob@localhost'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "not-authorized" and app_error(res) == "not-in-roster-group",
         "roster: a contact outside the groups gets not-authorized + not-in-roster-group")
    a.iq("<query xmlns='jabber:iq:roster'><item jid='bob@localhost'><group>Friends</group></item>"
         "</query>", "set")
    a.expect_push("bob@localhost")
    res = b.iq(ps("<subscribe node='ro' jid='bob@localhost'/>"), "set", to=SERVICE)
    t.ok(res.get("type") == "result", "roster: a contact in an allowed group subscribes")
    a.iq(ps("<create node='auth'/><configure>%s</configure>" % node_config(access_model="authorize")),
         "set", to=SERVICE)
    res = c.iq(ps("<subscribe node='auth' jid='carol@localhost'/>"), "set", to=SERVICE)
    sub = res.find(q(NS, "pubsub")).find(q(NS, "subscription"))
    t.ok(sub.get("subscription") == "pending", "authorize: the subscription is pending")
    msg = a.expect(lambda e: e.tag.endswith("message") and e.find(q(NS_XDATA, "x")) is not None,
                   what="the authorization request")
    fields = {f.get("var"): f.findtext(q(NS_XDATA, "value"))
              for f in msg.find(q(NS_XDATA, "x")).findall(q(NS_XDATA, "field"))}
    t.ok(fields.get("pubsub#node") == "auth" and
         fields.get("pubsub#subscriber_jid") == "carol@localhost",
         "the owner gets the authorization form")
    res, ids = items(c, "auth")
    t.ok(error_condition(res) == "not-authorized" and app_error(res) == "not-subscribed",
         "authorize: reading items while pending: not-authorized + not-subscribed")
    answer = ("<message to='%s'><x xmlns='jabber:x:data' type='submit'>"
              "<field var='FORM_TYPE'><value>%s#subscribe_authorization</value></field>"
              "<field var='pubsub#subid'><value>%s</value></field>"
              "<field var='pubsub#node'><value>auth</value></field>"
              "<field var='pubsub#subscriber_jid'><value>carol@localhost</value></field>"
              "<field var='pubsub#allow'><value>true</value></field></x></message>"
              % (SERVICE, NS, sub.get("subid")))
    a.send(answer)
    ev = c.expect(is_event(None, "subscription"), what="the approval")
    t.ok(ev.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "subscription")).get("subscription") ==
         "subscribed", "approved: the subscriber hears 'subscribed'")
    res, ids = items(c, "auth")
    t.ok(res.get("type") == "result", "authorize: an approved subscriber reads items")

    # ---- publish models
    a.iq(ps("<create node='open'/><configure>%s</configure>" % node_config(publish_model="open")),
         "set", to=SERVICE)
    res = publish(b, "open", ENTRY % "anyone")
    t.ok(res.get("type") == "result", "publish_model open: anyone publishes")
    a.iq(ps("<create node='subs'/><configure>%s</configure>" %
            node_config(publish_model="subscribers")), "set", to=SERVICE)
    res = publish(b, "subs", ENTRY % "s")
    t.ok(error_condition(res) == "forbidden", "publish_model subscribers: a stranger is forbidden")
    b.iq(ps("<subscribe node='subs' jid='bob@localhost'/>"), "set", to=SERVICE)
    res = publish(b, "subs", ENTRY % "s")
    t.ok(res.get("type") == "result", "publish_model subscribers: a subscriber publishes")
    # XEP-0357 app-server style: a publisher with publish-options naming a
    # secret (not node configuration) and FORM_TYPE.
    res = publish(b, "open", "<notification xmlns='urn:xmpp:push:0'/>", None,
                  publish_options(_secret="s3cr3t"))
    t.ok(res.get("type") == "result", "XEP-0357 style publish-options with a secret: published")
    c.drain()
    res = c.iq(ps("<subscribe node='open' jid='carol@localhost'/>"), "set", to=SERVICE)
    ev = c.expect(is_event("open", "items"), what="the last published item")
    item = ev.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "items")).find(q(NS_EVENT, "item"))
    t.ok(res.get("type") == "result" and
         item.find(q("urn:xmpp:push:0", "notification")) is not None,
         "subscribing sends the last published item (on_sub)")
    t.ok(c.maybe(is_event("open", "items"), 0.5) is None, "only the last one, once")

    # ---- notifications without payload (deliver_payloads off)
    a.iq(ps("<create node='bare'/><configure>%s</configure>" % node_config(deliver_payloads="0")),
         "set", to=SERVICE)
    b.iq(ps("<subscribe node='bare' jid='bob@localhost/r'/>"), "set", to=SERVICE)
    b.drain()
    publish(a, "bare", ENTRY % "hidden", "n1")
    ev = b.expect(is_event("bare", "items"), what="the payload-less notification")
    item = ev.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "items")).find(q(NS_EVENT, "item"))
    t.ok(item.get("id") == "n1" and len(item) == 0 and ev.get("to") == "bob@localhost/r",
         "deliver_payloads off: the item id without payload, to the full JID subscribed")
    res, ids = items(b, "bare")
    t.ok(ids == ["n1"], "the item itself is stored and readable")

    # ---- disco of nodes (5.2-5.4)
    res = b.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=SERVICE)
    nodes = {i.get("node"): i.get("name") for i in res.find(q(NS_DISCO_ITEMS, "query"))}
    t.ok("news" in nodes and nodes.get("small") == "Small", "disco#items lists the nodes")
    res = b.iq("<query xmlns='%s' node='small'/>" % NS_DISCO_INFO, to=SERVICE)
    query = res.find(q(NS_DISCO_INFO, "query"))
    ident = query.find(q(NS_DISCO_INFO, "identity"))
    meta = {f.get("var"): f.findtext(q(NS_XDATA, "value"))
            for f in query.find(q(NS_XDATA, "x")).findall(q(NS_XDATA, "field"))}
    t.ok(ident.get("type") == "leaf" and meta.get("FORM_TYPE") == NS + "#meta-data" and
         meta.get("pubsub#owner") == "alice@localhost", "disco#info of a node: leaf + meta-data")

    # ---- config change notification, purge, delete (8.2.5, 8.5, 8.4)
    b.iq(ps("<subscribe node='small' jid='bob@localhost'/>"), "set", to=SERVICE)
    b.drain()
    a.iq(owner("<configure node='small'>%s</configure>" % node_config(title="Smaller")),
         "set", to=SERVICE)
    ev = b.expect(is_event("small", "configuration"), what="the config notification")
    t.ok(ev is not None, "notify_config: subscribers hear of a configuration change")
    res = a.iq(owner("<purge node='small'/>"), "set", to=SERVICE)
    t.ok(res.get("type") == "result", "purge: result")
    b.expect(is_event("small", "purge"), what="the purge notification")
    res, ids = items(a, "small")
    t.ok(ids == [], "purge removed every item")
    res = b.iq(owner("<delete node='news'/>"), "set", to=SERVICE)
    t.ok(error_condition(res) == "forbidden", "delete by a non-owner: forbidden")
    res = a.iq(owner("<delete node='news'><redirect uri='xmpp:%s?;node=open'/></delete>" % SERVICE),
               "set", to=SERVICE)
    t.ok(res.get("type") == "result", "delete with a redirect: result")
    ev = b.expect(is_event("news", "delete"), what="the delete notification")
    red = ev.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "delete")).find(q(NS_EVENT, "redirect"))
    t.ok(red is not None and red.get("uri").endswith("node=open"),
         "subscribers hear of the delete with its redirect")
    res, ids = items(a, "news")
    t.ok(error_condition(res) == "item-not-found", "a deleted node: item-not-found")
    for x in (a, b, c):
        x.close()

    # ---- a restart keeps nodes and items
    restart_fn()
    a = Client(srv, "alice")
    res, ids = items(a, "open")
    t.ok(res.get("type") == "result" and len(ids) == 2, "after a restart: nodes and items are there")
    res = a.iq(owner("<configure node='wl'/>"), to=SERVICE)
    x = res.find(q(NS_OWNER, "pubsub")).find(q(NS_OWNER, "configure")).find(q(NS_XDATA, "x"))
    vals = {f.get("var"): f.findtext(q(NS_XDATA, "value")) for f in x.findall(q(NS_XDATA, "field"))}
    t.ok(vals.get("pubsub#access_model") == "whitelist", "and so is their configuration")
    a.close()


def creation_policy(t):
    srv = Server({"mod_pubsub": {"node_creation": "admins", "admins": "alice@localhost"}})
    try:
        srv.register("alice")
        srv.register("bob")
        a, b = Client(srv, "alice"), Client(srv, "bob")
        res = b.iq(ps("<create node='x'/>"), "set", to=SERVICE)
        t.ok(error_condition(res) == "forbidden", "node_creation=admins: a user gets forbidden")
        res = a.iq(ps("<create node='x'/>"), "set", to=SERVICE)
        t.ok(res.get("type") == "result", "node_creation=admins: a listed admin creates")
        res = publish(b, "y", ENTRY % "auto")
        t.ok(error_condition(res) == "item-not-found",
             "and a user's publish does not auto-create: item-not-found")
        a.close()
        b.close()
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()


def main():
    t = Tap()
    try:
        srv = Server(MODULES)
    except Exception as e:
        t.ok(False, "meerkatd with mod_pubsub starts")
        t.diag(e)
        t.done()
    try:
        t.run("pubsub service", scenarios, srv, srv.register, lambda: restart(srv))
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.run("node creation policy", creation_policy)
    t.done()


if __name__ == "__main__":
    main()
