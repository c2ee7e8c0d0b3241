#!/usr/bin/python3
"""mod_muc_light with clients no one here wrote: three slixmpp 1.8.3
clients (Debian's python3-slixmpp; it has no MUC Light plugin, so the
requests are raw stanzas). The owner creates a room with the two others,
everyone gets the creation notice, each client's groupchat messages reach
all three exactly once, the owner removes a member who is told and hears
no more. Prints TAP; ignores --tap."""
import asyncio
import logging
import os
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Server, Tap  # noqa: E402

import slixmpp  # noqa: E402

ML = "urn:xmpp:muclight:0"
ROOM = "sxroom@muclight.localhost"


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid):
        super().__init__(jid, "secret")
        self.started = asyncio.Event()
        self.bodies = []
        self.notices = []
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("presence_available", self.on_available)

    async def on_start(self, _):
        self.send_presence()

    def on_available(self, pres):
        if pres["from"] == self.boundjid:
            self.started.set()

    def on_message(self, msg):
        if msg["type"] != "groupchat":
            return
        x = msg.xml.find("{%s#affiliations}x" % ML)
        if x is not None:
            self.notices.append(sorted((u.text, u.get("affiliation"))
                                       for u in x.findall("{%s#affiliations}user" % ML)))
        elif msg["body"]:
            self.bodies.append((str(msg["from"]), msg["body"]))

    async def raw_iq(self, to, payload):
        iq = self.make_iq_set(ito=to)
        iq.xml.append(ET.fromstring(payload))
        return await iq.send(timeout=10)


async def until(pred, what):
    for _ in range(400):
        if pred():
            return True
        await asyncio.sleep(0.025)
    return False


async def scenario(t, srv):
    cs = [Client("sx%d@localhost/sx" % i) for i in range(3)]
    for c in cs:
        c.connect(("127.0.0.1", srv.port), force_starttls=False, disable_starttls=True)
    await asyncio.wait_for(asyncio.gather(*(c.started.wait() for c in cs)), 30)
    a, b, c = cs
    res = await a.raw_iq(ROOM, "<query xmlns='%s#create'><configuration><roomname>sx</roomname>"
                         "</configuration><occupants><user affiliation='member'>sx1@localhost"
                         "</user><user affiliation='member'>sx2@localhost</user></occupants>"
                         "</query>" % ML)
    t.ok(res["type"] == "result", "slixmpp: the room is created")
    await until(lambda: all(x.notices for x in cs), "notices")
    t.ok([x.notices for x in cs] == [[[("sx%d@localhost" % i, "owner" if i == 0 else "member")]]
                                     for i in range(3)],
         "each client got one creation notice with its own affiliation")
    for i, x in enumerate(cs):
        x.send_message(mto=ROOM, mbody="from %d" % i, mtype="groupchat")
    await until(lambda: all(len(x.bodies) >= 3 for x in cs), "bodies")
    await asyncio.sleep(0.3)
    want = sorted((ROOM + "/sx%d@localhost" % i, "from %d" % i) for i in range(3))
    t.ok(all(sorted(x.bodies) == want for x in cs),
         "every client got every message once, from room/sender's bare JID")
    res = await a.raw_iq(ROOM, "<query xmlns='%s#affiliations'><user affiliation='none'>"
                         "sx2@localhost</user></query>" % ML)
    await until(lambda: len(c.notices) >= 2 and len(b.notices) >= 2, "removal")
    t.ok(res["type"] == "result" and c.notices[-1] == [("sx2@localhost", "none")] and
         b.notices[-1] == [("sx2@localhost", "none")], "a removed member and the others are told")
    for x in cs:
        x.bodies.clear()
    b.send_message(mto=ROOM, mbody="after", mtype="groupchat")
    await until(lambda: a.bodies and b.bodies, "after")
    await asyncio.sleep(0.3)
    t.ok(len(a.bodies) == 1 and len(b.bodies) == 1 and not c.bodies,
         "the removed member hears no more")
    for x in cs:
        x.disconnect()
    await asyncio.sleep(0.1)


def main():
    logging.basicConfig(level=logging.CRITICAL)
    t = Tap()
    srv = Server({"mod_roster": None, "mod_disco": None, "mod_muc_light": None})
    try:
        for i in range(3):
            srv.register("sx%d" % i)

        def run(t):
            asyncio.get_event_loop().run_until_complete(scenario(t, srv))
        t.run("slixmpp", run)
    finally:
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
