#!/usr/bin/python3
"""PEP with a client no one here wrote: slixmpp 1.8.3 (Debian's
python3-slixmpp) and its own XEP-0163, XEP-0084, XEP-0172 and XEP-0115
plugins. Bob has a presence subscription to Alice; both log in with
slixmpp, whose caps name the avatar and nick +notify; Alice publishes
her nickname and an avatar (data, then metadata) through the plugins,
and Bob's plugins raise their events once each and fetch the avatar's
data. Prints TAP; ignores --tap."""
import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Server, Tap, online, subscribe  # noqa: E402

import slixmpp  # noqa: E402

AVATAR = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid):
        super().__init__(jid, "secret")
        for p in ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0084",
                  "xep_0172"):
            self.register_plugin(p)
        self.started = asyncio.Event()
        self.nicks = []
        self.avatars = []
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("user_nick_publish", self.on_nick)
        self.add_event_handler("avatar_metadata_publish", self.on_avatar)
        self.add_event_handler("presence_available", self.on_available)

    async def on_start(self, _):
        await self.get_roster()
        # The +notify features are in the caps before the first presence.
        await self["xep_0115"].update_caps(broadcast=False)
        self.send_presence()

    def on_available(self, pres):
        if pres["from"] == self.boundjid:
            self.started.set()

    def on_nick(self, msg):
        self.nicks.append(msg["pubsub_event"]["items"]["item"]["nick"]["nick"])

    def on_avatar(self, msg):
        info = msg["pubsub_event"]["items"]["item"]["avatar_metadata"]["info"]
        self.avatars.append((info["id"], int(info["bytes"])))


def log(srv):
    with open(srv.log_path, errors="replace") as f:
        return f.read()


async def wait_for(cond, secs=10):
    for _ in range(int(secs / 0.05)):
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


async def scenario(t, srv):
    a, b = Client("alice@localhost/sx"), Client("bob@localhost/sx")
    for c in (a, b):
        c.connect(("127.0.0.1", srv.port), force_starttls=False, disable_starttls=True)
    await asyncio.wait_for(asyncio.gather(a.started.wait(), b.started.wait()), 30)
    # Caps are learned from the presence just sent: wait until the server
    # has Bob's (it asks his client, which answers from its plugin).
    t.ok(await wait_for(lambda: "caps of bob@localhost/sx recorded" in log(srv)),
         "the server learned the caps of Bob's slixmpp client")
    await a["xep_0172"].publish_nick("Alice")
    t.ok(await wait_for(lambda: b.nicks == ["Alice"]),
         "xep_0172: Bob's plugin raises user_nick_publish with Alice's nick (%s)" % b.nicks)
    aid = a["xep_0084"].generate_id(AVATAR)
    await a["xep_0084"].publish_avatar(AVATAR)
    await a["xep_0084"].publish_avatar_metadata(
        [{"id": aid, "type": "image/png", "bytes": len(AVATAR)}])
    t.ok(await wait_for(lambda: b.avatars == [(aid, len(AVATAR))]),
         "xep_0084: Bob's plugin raises avatar_metadata_publish once (%s)" % b.avatars)
    res = await b["xep_0084"].retrieve_avatar(slixmpp.JID("alice@localhost"), aid)
    data = res["pubsub"]["items"]["item"]["avatar_data"]["value"]
    t.ok(data == AVATAR, "xep_0084: Bob fetches the avatar's data from Alice's PEP")
    # Her own copies travel beside Bob's, not before his fetch: waited
    # for, as his are (an ASan run once checked before they came).
    t.ok(await wait_for(lambda: a.nicks == ["Alice"] and a.avatars == [(aid, len(AVATAR))]),
         "Alice's own client gets her notifications too (once each: %s, %s)" %
         (a.nicks, a.avatars))
    await a["xep_0172"].publish_nick("Alicia")
    t.ok(await wait_for(lambda: b.nicks == ["Alice", "Alicia"]),
         "a new nick replaces the item and is announced again")
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
        subscribe(a, b)
        a.close()
        b.close()

        def run(t):
            asyncio.get_event_loop().run_until_complete(scenario(t, srv))
        t.run("slixmpp", run)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
