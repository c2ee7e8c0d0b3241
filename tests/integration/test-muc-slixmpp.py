#!/usr/bin/python3
"""mod_muc with a client no one here wrote: slixmpp 1.8.3 (Debian's
python3-slixmpp) and its XEP-0045 and XEP-0249 plugins. Alice creates a
room, reads the configuration form and submits it changed; bob joins
and gets the history his join asked for and the subject; groupchat
goes both ways; alice makes bob a member and reads the member list,
then kicks him; a direct invitation arrives; the owner destroys the
room. Prints TAP; ignores --tap."""
import asyncio
import contextlib
import io
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Server, Tap  # noqa: E402
from muctest import ready  # noqa: E402

import slixmpp  # noqa: E402
from slixmpp.exceptions import PresenceError  # noqa: E402

ROOM = slixmpp.JID("sx@conference.localhost")


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid):
        super().__init__(jid, "secret")
        for p in ("xep_0030", "xep_0045", "xep_0249", "xep_0004", "xep_0203"):
            self.register_plugin(p)
        self.started = asyncio.Event()
        self.groupchat = []
        self.invites = []
        self.kicked = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("groupchat_message", self.on_groupchat)
        self.add_event_handler("groupchat_direct_invite", self.invites.append)
        self.add_event_handler("muc::%s::presence" % ROOM, self.on_room_presence)

    async def on_start(self, _):
        await self.get_roster()
        self.send_presence()
        self.started.set()

    def on_groupchat(self, msg):
        if msg["body"] and msg.get_plugin("delay", check=True) is None:
            self.groupchat.append((msg["from"].resource, msg["body"]))

    def on_room_presence(self, pres):
        codes = pres["muc"]["status_codes"]
        if pres["type"] == "unavailable" and 307 in codes and 110 in codes:
            self.kicked.set()


async def wait_for(pred, timeout=10):
    for _ in range(int(timeout / 0.05)):
        if pred():
            return True
        await asyncio.sleep(0.05)
    return False


async def scenario(t, srv):
    a, b = Client("alice@localhost/sx"), Client("bob@localhost/sx")
    for c in (a, b):
        c.connect(("127.0.0.1", srv.port), force_starttls=False, disable_starttls=True)
    await asyncio.wait_for(asyncio.gather(a.started.wait(), b.started.wait()), 30)
    muc_a, muc_b = a["xep_0045"], b["xep_0045"]

    pres, _, _, _ = await muc_a.join_muc_wait(ROOM, "Alice", timeout=10)
    t.ok(201 in pres["muc"]["status_codes"], "slixmpp: joining a new room creates it (201)")
    form = await muc_a.get_room_config(ROOM)
    fields = form.get_fields(use_dict=True)
    t.ok("muc#roomconfig_roomname" in fields, "slixmpp reads the configuration form")
    fields["muc#roomconfig_roomname"]["value"] = "Slix Room"
    await muc_a.set_room_config(ROOM, form)
    info = await a["xep_0030"].get_info(jid=ROOM)
    t.ok([i[3] for i in info["disco_info"]["identities"]] == ["Slix Room"],
         "the submitted form took effect (the room's disco#info names it)")

    muc_a.set_subject(ROOM, "Slixmpp")
    for i in range(3):
        a.send_message(mto=ROOM, mbody="h%d" % i, mtype="groupchat")
    await wait_for(lambda: len([g for g in a.groupchat if g[1].startswith("h")]) == 3)
    # slixmpp 1.8.3 prints each history message's <delay/>: not into TAP.
    with contextlib.redirect_stdout(io.StringIO()):
        pres, subject, occupants, history = await muc_b.join_muc_wait(ROOM, "Bob", maxstanzas=2,
                                                                      timeout=10)
    t.ok([h["body"] for h in history] == ["h1", "h2"],
         "bob's join with maxstanzas=2 gets the last two messages as history")
    t.ok(subject["subject"] == "Slixmpp", "and the subject")
    t.ok("Alice" in [o["from"].resource for o in occupants], "and alice's presence")

    b.send_message(mto=ROOM, mbody="hi from bob", mtype="groupchat")
    ok = await wait_for(lambda: ("Bob", "hi from bob") in a.groupchat and
                        ("Bob", "hi from bob") in b.groupchat)
    t.ok(ok, "a groupchat message reaches both occupants")

    await muc_a.set_affiliation(ROOM, "member", jid=slixmpp.JID("bob@localhost"))
    members = await muc_a.get_affiliation_list(ROOM, "member")
    t.ok([str(j) for j in members] == ["bob@localhost"], "slixmpp sets and lists members")

    a["xep_0249"].send_invitation(slixmpp.JID("bob@localhost"), ROOM, reason="come")
    ok = await wait_for(lambda: b.invites)
    t.ok(ok and b.invites[0]["groupchat_invite"]["jid"] == ROOM,
         "a direct invitation (XEP-0249) reaches bob")

    await muc_a.set_role(ROOM, "Bob", "none", reason="bye")
    await asyncio.wait_for(b.kicked.wait(), 10)
    t.ok(b.kicked.is_set(), "slixmpp's kick: bob gets 307 and 110")

    try:
        await muc_b.join_muc_wait(ROOM, "Alice", timeout=10)
        t.ok(False, "a taken nick is refused")
    except PresenceError as e:
        t.ok(e.condition == "conflict", "a taken nick is refused: conflict (%s)" % e.condition)

    await muc_a.destroy(ROOM, reason="done")
    try:
        await a["xep_0030"].get_info(jid=ROOM)
        t.ok(False, "the destroyed room is gone")
    except slixmpp.exceptions.IqError as e:
        t.ok(e.condition == "item-not-found", "the destroyed room is gone (item-not-found)")
    for c in (a, b):
        c.disconnect()
    await asyncio.sleep(0.1)


def main():
    logging.basicConfig(level=logging.CRITICAL)
    t = Tap()
    srv = Server({"mod_roster": None, "mod_disco": None, "mod_muc": None})
    try:
        ready(srv)
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
