#!/usr/bin/python3
"""mod_pubsub with a client no one here wrote: slixmpp 1.8 (Debian's
python3-slixmpp), its xep_0060 plugin against pubsub.localhost (create
with a configure form, subscribe, subscription options and their
defaults, publish, notifications as the plugin's events, items, retract
with notify, a refused option's error) and its xep_0030 plugin on PEP
(the nodes at an account's bare JID: disco#items and disco#info with a
node, as XEP-0163 accounts show them). Prints TAP; ignores --tap."""
import asyncio
import logging
import os
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Server, Tap, online, subscribe  # noqa: E402

import slixmpp  # noqa: E402
from slixmpp.exceptions import IqError  # noqa: E402
from slixmpp.plugins.xep_0004 import Form  # noqa: E402

SERVICE = "pubsub.localhost"
NS = "http://jabber.org/protocol/pubsub"
SUBOPT = NS + "#subscribe_options"
NICK = "http://jabber.org/protocol/nick"


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid):
        super().__init__(jid, "secret")
        for p in ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0172"):
            self.register_plugin(p)
        self.started = asyncio.Event()
        self.published = []
        self.retracted = []
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("pubsub_publish", self.on_publish)
        self.add_event_handler("pubsub_retract", self.on_retract)

    async def on_start(self, _):
        await self.get_roster()
        self.send_presence()
        self.started.set()

    def on_publish(self, msg):
        items = msg["pubsub_event"]["items"]
        if items["node"] == "news":
            self.published.append(items["item"]["id"])

    def on_retract(self, msg):
        items = msg["pubsub_event"]["items"]
        if items["node"] == "news":
            self.retracted.append(items["retract"]["id"])

    def options_form(self, fields):
        form = self["xep_0004"].make_form("submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value=SUBOPT)
        for var, value in fields.items():
            form.add_field(var=var, ftype="boolean" if isinstance(value, bool) else None,
                           value=value)
        return form

    async def set_options(self, node, fields):
        # slixmpp 1.8's set_subscription_options sends type 'get': the
        # stanza is built with its own stanza classes instead.
        iq = self.Iq(sto=SERVICE, stype="set")
        iq["pubsub"]["options"]["node"] = node
        iq["pubsub"]["options"]["jid"] = self.boundjid.bare
        iq["pubsub"]["options"].append(self.options_form(fields))
        return await iq.send()


async def wait_for(cond, secs=10):
    for _ in range(int(secs / 0.05)):
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


def entry(text):
    el = ET.Element("{urn:example:news}entry")
    el.text = text
    return el


async def scenario(t, srv):
    a, b = Client("alice@localhost/sx"), Client("bob@localhost/sx")
    for c in (a, b):
        c.connect(("127.0.0.1", srv.port), force_starttls=False, disable_starttls=True)
    await asyncio.wait_for(asyncio.gather(a.started.wait(), b.started.wait()), 30)
    ps_a, ps_b = a["xep_0060"], b["xep_0060"]

    config = a["xep_0004"].make_form("submit")
    config.add_field(var="FORM_TYPE", ftype="hidden", value=NS + "#node_config")
    config.add_field(var="pubsub#title", value="News")
    config.add_field(var="pubsub#max_items", value="5")
    await ps_a.create_node(SERVICE, "news", config=config)
    res = await ps_a.get_node_config(SERVICE, "news")
    values = res["pubsub_owner"]["configure"]["form"].get_values()
    t.ok(values.get("pubsub#title") == "News" and str(values.get("pubsub#max_items")) == "5",
         "xep_0060: create_node with a form, get_node_config shows it")

    res = await ps_b.subscribe(SERVICE, "news")
    t.ok(res["pubsub"]["subscription"]["subscription"] == "subscribed",
         "xep_0060: subscribe (%s)" % res["pubsub"]["subscription"]["subscription"])
    res = await ps_b.get_subscription_options(SERVICE, "news", b.boundjid.bare)
    values = res["pubsub"]["options"]["options"].get_values()
    t.ok(values.get("pubsub#deliver") in (True, "1") and "pubsub#show-values" in values,
         "xep_0060: get_subscription_options gives the options form")
    res = await ps_b.get_subscription_options(SERVICE, "news")
    x = res["pubsub"]["default"].xml.find("{jabber:x:data}x")
    values = Form(xml=x).get_values() if x is not None else {}
    t.ok(values.get("pubsub#deliver") in (True, "1"),
         "xep_0060: get_subscription_options without a JID gives the defaults")

    await b.set_options("news", {"pubsub#deliver": False})
    await ps_a.publish(SERVICE, "news", id="muted", payload=entry("muted"))
    await ps_a.publish(SERVICE, "news", id="check", payload=entry("check"))
    res = await ps_b.get_items(SERVICE, "news")
    ids = [i["id"] for i in res["pubsub"]["items"]]
    await asyncio.sleep(0.5)  # a notification that should not come
    t.ok(sorted(ids) == ["check", "muted"] and b.published == [],
         "deliver=false: the items are there, no pubsub_publish event (%s)" % b.published)
    await b.set_options("news", {"pubsub#deliver": True})
    await ps_a.publish(SERVICE, "news", id="heard", payload=entry("heard"))
    t.ok(await wait_for(lambda: b.published == ["heard"]),
         "deliver=true: the plugin raises pubsub_publish once (%s)" % b.published)
    await ps_a.retract(SERVICE, "news", "heard", notify=True)
    t.ok(await wait_for(lambda: b.retracted == ["heard"]),
         "retract with notify: the plugin raises pubsub_retract (%s)" % b.retracted)
    try:
        await b.set_options("news", {"pubsub#digest": True})
        cond = app = None
    except IqError as e:
        cond = e.iq["error"]["condition"]
        app = [c.tag for c in e.iq["error"].xml if c.tag.startswith("{%s#errors}" % NS)]
    t.ok(cond == "bad-request" and app == ["{%s#errors}invalid-options" % NS],
         "a digest asked for: IqError bad-request + invalid-options (%s %s)" % (cond, app))

    # PEP: Alice's nick node seen through disco at her bare JID.
    await a["xep_0172"].publish_nick("Alice")
    res = await b["xep_0030"].get_items(jid="alice@localhost")
    nodes = [(i[0], i[1]) for i in res["disco_items"]["items"]]
    t.ok(("alice@localhost", NICK) in nodes,
         "xep_0030: disco#items at a contact's bare JID lists its PEP nodes (%s)" % nodes)
    res = await b["xep_0030"].get_info(jid="alice@localhost", node=NICK)
    ids = [(i[0], i[1]) for i in res["disco_info"]["identities"]]
    t.ok(("pubsub", "leaf") in ids and res["disco_info"]["node"] == NICK,
         "xep_0030: disco#info with the node: a pubsub leaf (%s)" % ids)
    for c in (a, b):
        c.disconnect()
    await asyncio.sleep(0.1)


def main():
    logging.basicConfig(level=logging.CRITICAL)
    t = Tap()
    srv = Server({"mod_roster": None, "mod_disco": None, "mod_pubsub": None})
    try:
        srv.register("alice")
        srv.register("bob")
        a, b = online(srv, "alice"), online(srv, "bob")
        subscribe(b, a)
        a.close()
        b.close()

        def run(t):
            asyncio.get_event_loop().run_until_complete(scenario(t, srv))
        t.run("slixmpp xep_0060", run)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
