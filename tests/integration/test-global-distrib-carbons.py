#!/usr/bin/python3
"""Message Carbons (XEP-0280) across regions of mod_global_distrib
(docs/mod_global_distrib.md, "Carbons"), with slixmpp 1.8.3's own
xep_0280 plugin: zoe has one resource in region eu and one in region us,
both with carbons enabled. What her eu resource sends reaches her us
resource as a <sent/> carbon, and the other way; a message to her eu
full JID (from a user of either region) reaches her us resource as a
<received/> carbon, and none is doubled; a private message
(<private/>) gives no carbon; a resource without carbons gets none.
Regions are single nodes on sqlite, one global redis-server; skipped
without redis-server. Prints TAP; ignores --tap."""
import asyncio
import logging
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Tap  # noqa: E402
from clustertest import Redis, wait_for  # noqa: E402
from gdtest import region, stop_all  # noqa: E402

import slixmpp  # noqa: E402

MODULES = {"mod_roster": None, "mod_disco": None, "mod_carboncopy": None}


class Client(slixmpp.ClientXMPP):
    """Records plain messages and carbons: ("sent"|"received"|"plain",
    from, to, body) of the message itself or of the forwarded one."""

    def __init__(self, jid, carbons=True):
        super().__init__(jid, "secret")
        for p in ("xep_0030", "xep_0280"):
            self.register_plugin(p)
        self.carbons = carbons
        self.started = asyncio.Event()
        self.got = []
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("carbon_sent", self.on_sent)
        self.add_event_handler("carbon_received", self.on_received)
        self.add_event_handler("message", self.on_message)

    async def on_start(self, _):
        await self.get_roster()
        if self.carbons:
            await self["xep_0280"].enable()
        self.send_presence()
        self.started.set()

    def _keep(self, kind, m):
        self.got.append((kind, str(m["from"]), str(m["to"]), m["body"]))

    def on_sent(self, msg):
        self._keep("sent", msg["carbon_sent"])

    def on_received(self, msg):
        self._keep("received", msg["carbon_received"])

    def on_message(self, msg):
        if msg["body"] and msg["type"] in ("chat", "normal"):
            self._keep("plain", msg)

    def bodies(self, kind):
        return [g[3] for g in self.got if g[0] == kind]


async def settle(cond, timeout=10):
    for _ in range(int(timeout / 0.05)):
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


async def scenario(t, eu, us, redis):
    ze = Client("zoe@localhost/e")
    zu = Client("zoe@localhost/u")
    ya = Client("yan@localhost/sx")      # eu
    xi = Client("xia@localhost/sx")      # us
    wu = Client("wu@localhost/plain", carbons=False)   # us, no carbons
    placed = ((ze, eu), (zu, us), (ya, eu), (xi, us))
    for c, srv in placed:
        c.connect(("127.0.0.1", srv.port), force_starttls=False, disable_starttls=True)
    await asyncio.wait_for(asyncio.gather(*(c.started.wait() for c, _ in placed)), 30)
    t.ok(await settle(lambda: sorted(redis.cli("ZRANGE", "gd:r:zoe@localhost", "0", "-1") or [])
                      == ["eu", "us"]),
         "zoe's region set names eu and us")

    for i in range(5):
        ze.send_message(mto="yan@localhost/sx", mbody="e-sent%d" % i, mtype="chat")
    want = ["e-sent%d" % i for i in range(5)]
    t.ok(await settle(lambda: zu.bodies("sent") == want),
         "zoe/e's messages to yan (eu) reach zoe/u (us) as <sent/> carbons, in order, once "
         "(%s)" % zu.bodies("sent"))
    t.ok(all(g[1] == "zoe@localhost/e" and g[2] == "yan@localhost/sx"
             for g in zu.got if g[0] == "sent"),
         "... each forwarding the original from zoe/e to yan")
    t.ok(ya.bodies("plain") == want, "yan got the messages themselves")

    zu.send_message(mto="xia@localhost/sx", mbody="u-sent", mtype="chat")
    t.ok(await settle(lambda: ze.bodies("sent") == ["u-sent"]),
         "zoe/u's message to xia (us) reaches zoe/e (eu) as a <sent/> carbon")

    ya.send_message(mto="zoe@localhost/e", mbody="to-e-from-eu", mtype="chat")
    xi.send_message(mto="zoe@localhost/e", mbody="to-e-from-us", mtype="chat")
    t.ok(await settle(lambda: sorted(zu.bodies("received")) == ["to-e-from-eu", "to-e-from-us"]),
         "messages to zoe/e from eu and from us reach zoe/u as <received/> carbons (%s)" %
         zu.bodies("received"))
    t.ok(sorted(ze.bodies("plain")) == ["to-e-from-eu", "to-e-from-us"],
         "zoe/e got them herself")

    msg = ze.make_message(mto="yan@localhost/sx", mbody="private", mtype="chat")
    msg.append(slixmpp.xmlstream.ET.Element("{urn:xmpp:carbons:2}private"))
    msg.send()
    ze.send_message(mto="yan@localhost/sx", mbody="sentinel", mtype="chat")
    t.ok(await settle(lambda: "sentinel" in zu.bodies("sent")) and
         "private" not in zu.bodies("sent"),
         "a <private/> message gives no carbon across regions (the next one does)")

    # wu (us, carbons off) and zoe's resources: wu gets no carbons.
    wu.connect(("127.0.0.1", us.port), force_starttls=False, disable_starttls=True)
    await asyncio.wait_for(wu.started.wait(), 30)
    ya.send_message(mto="zoe@localhost/e", mbody="last", mtype="chat")
    t.ok(await settle(lambda: "last" in zu.bodies("received")),
         "one more <received/> carbon for zoe/u")
    t.ok(not wu.got, "another account's resource without carbons got nothing")
    t.ok(len(zu.bodies("sent")) == len(set(zu.bodies("sent"))) and
         len(zu.bodies("received")) == len(set(zu.bodies("received"))) and
         not zu.bodies("plain"),
         "zoe/u got every carbon once, and none of the messages to zoe/e themselves")
    for c in (ze, zu, ya, xi, wu):
        c.disconnect()
    await asyncio.sleep(0.1)


def main():
    logging.basicConfig(level=logging.CRITICAL)
    t = Tap()
    if not shutil.which("redis-server"):
        print("1..0 # SKIP no redis-server")
        return
    redis = eu = us = None
    try:
        redis = Redis()
        eu = region("eu", redis, "127.0.0.1", MODULES)
        us = region("us", redis, "127.0.0.2", MODULES)
        for srv in (eu, us):
            for u in ("zoe", "yan", "xia", "wu"):
                srv.register(u)
        t.ok(wait_for(lambda: redis.cli("ZCARD", "gd:ep:eu") == 1 and
                      redis.cli("ZCARD", "gd:ep:us") == 1, 15),
             "both regions advertise their link endpoint")

        def run(t):
            asyncio.get_event_loop().run_until_complete(scenario(t, eu, us, redis))
        t.run("carbons across regions", run)
    except Exception as e:
        t.ok(False, "regions start: %s" % e)
    finally:
        stop_all(t, (eu, us), redis)
    t.done()


if __name__ == "__main__":
    main()
