#!/usr/bin/python3
"""mod_mam with a client no one here wrote: slixmpp 1.8.3 (Debian's
python3-slixmpp) and its own XEP-0313, XEP-0359 and XEP-0059 plugins.
One slixmpp client sends messages to another, which sees each one's
stanza-id; the sender then pages through its archive with the plugin's
iterator, forward and backward, and gets every message once, in order,
under the IDs the recipient saw; the archive metadata names the ends.
Prints TAP; ignores --tap."""
import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Server, Tap  # noqa: E402

import slixmpp  # noqa: E402

N = 15


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid):
        super().__init__(jid, "secret")
        for p in ("xep_0030", "xep_0059", "xep_0313", "xep_0359"):
            self.register_plugin(p)
        self.started = asyncio.Event()
        self.received = []
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence_available", self.on_available)

    async def on_start(self, _):
        await self.get_roster()
        self.send_presence()

    def on_available(self, pres):
        # Our own presence came back: the server delivers messages to us.
        if pres["from"] == self.boundjid:
            self.started.set()

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.received.append((msg["body"], msg["stanza_id"]["by"], msg["stanza_id"]["id"]))


async def scenario(t, srv):
    a, b = Client("alice@localhost/sx"), Client("bob@localhost/sx")
    for c in (a, b):
        c.connect(("127.0.0.1", srv.port), force_starttls=False, disable_starttls=True)
    await asyncio.wait_for(asyncio.gather(a.started.wait(), b.started.wait()), 30)
    for i in range(N):
        a.send_message(mto="bob@localhost", mbody="sx %02d" % i, mtype="chat")
    for _ in range(300):
        if len(b.received) >= N:
            break
        await asyncio.sleep(0.05)
    t.ok([r[0] for r in b.received] == ["sx %02d" % i for i in range(N)],
         "slixmpp: the recipient got the %d messages in order" % N)
    t.ok(all(r[1] == "bob@localhost" and r[2] for r in b.received),
         "slixmpp's xep_0359 reads a stanza-id by the recipient's bare JID on each")
    seen_ids = [r[2] for r in b.received]

    got = []
    # The iterator pages with RSM (4 a page) and yields each message.
    async for msg in a["xep_0313"].iterate(with_jid=slixmpp.JID("bob@localhost"),
                                           rsm={"max": 4}):
        fwd = msg["mam_result"]["forwarded"]
        got.append((msg["mam_result"]["id"], fwd["stanza"]["body"],
                    fwd["delay"]["stamp"] is not None))
    t.ok([g[1] for g in got] == ["sx %02d" % i for i in range(N)],
         "slixmpp's MAM iterator pages forward through every message once (%d)" % len(got))
    t.ok([g[0] for g in got] == seen_ids,
         "the sender's archive IDs are the stanza-ids the recipient saw")
    t.ok(all(g[2] for g in got), "each result carries a delay stamp")

    back = []
    async for msg in a["xep_0313"].iterate(with_jid=slixmpp.JID("bob@localhost"),
                                           reverse=True, rsm={"max": 4}):
        back.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
    t.ok(back == ["sx %02d" % i for i in reversed(range(N))],
         "paging backward (RSM before) returns every message once, newest first (%d)" %
         len(back))

    meta = await b["xep_0313"].get_archive_metadata()
    t.ok(meta["mam_metadata"]["start"]["id"] == seen_ids[0] and
         meta["mam_metadata"]["end"]["id"] == seen_ids[-1],
         "the archive metadata names the first and the last message")
    for c in (a, b):
        c.disconnect()
    await asyncio.sleep(0.1)


def main():
    logging.basicConfig(level=logging.CRITICAL)
    t = Tap()
    srv = Server({"mod_roster": None, "mod_disco": None, "mod_mam": None})
    try:
        srv.register("alice")
        srv.register("bob")

        def run(t):
            asyncio.get_event_loop().run_until_complete(scenario(t, srv))
        t.run("slixmpp", run)
    finally:
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
