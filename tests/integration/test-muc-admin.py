#!/usr/bin/python3
"""mod_muc (XEP-0045), roles and affiliations: kick (307), ban (301),
voice in a moderated room, admin and owner lists with their permission
errors, the last owner, destruction with an alternate venue; disco of
the service and of rooms (public rooms listed, hidden ones not,
occupants hidden, muc_* features and muc#roominfo); mediated
invitations and declines, XEP-0249 direct invitations; the rooms per
service limit. Prints TAP; ignores --tap."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Server, Tap, error_condition, q  # noqa: E402
from muctest import (NS_ADMIN, clients, NS_DATA, NS_INFO, NS_ITEMS, NS_OWNER, NS_USER,  # noqa: E402
                     SERVICE, admin, codes, configure, create, is_error_from, is_presence_from,
                     item, join, join_error, ready, room_jid, say)

MODULES = {"mod_disco": None, "mod_roster": None, "mod_register": None,
           "mod_muc": {"max_rooms": 6, "max_affiliations": 5}}
USERS = ["alice", "bob", "carol", "dave", "eve"]


def items_of(reply):
    return [(i.get("jid"), i.get("affiliation"), i.get("role"), i.get("nick"))
            for i in reply.iter(q(NS_ADMIN, "item"))]


def test_roles_and_affiliations(t, srv):
    alice, bob, carol, dave, eve = clients(srv, USERS, presence=True)
    create(alice, "court", "A")
    for c, n in ((bob, "B"), (carol, "C"), (dave, "D")):
        join(c, "court", n)
    rj = room_jid("court")
    r = admin(bob, "court", "<item nick='C' role='none'/>")
    t.ok(error_condition(r) == "forbidden", "a participant kicks: forbidden")
    r = admin(bob, "court", "<item affiliation='outcast'/>", "get")
    t.ok(error_condition(r) == "forbidden", "a participant asks for the ban list: forbidden")
    r = admin(alice, "court", "<item/>")
    t.ok(error_condition(r) == "bad-request", "an item with neither role nor affiliation: "
         "bad-request")
    r = admin(alice, "court", "<item jid='bob@localhost' affiliation='king'/>")
    t.ok(error_condition(r) == "bad-request", "an unknown affiliation: bad-request")
    r = admin(alice, "court", "<item nick='Nobody' role='none'/>")
    t.ok(error_condition(r) == "item-not-found", "kicking an absent nick: item-not-found")
    # Kick.
    for c in (alice, carol):
        c.drain(0.2)
    r = admin(alice, "court", "<item nick='B' role='none'><reason>noise</reason></item>")
    t.ok(r.get("type") == "result", "the owner kicks bob")
    own = bob.expect(is_presence_from(rj + "/B", "unavailable"), 5, "kicked")
    actor = item(own).find(q(NS_USER, "actor"))
    t.ok({110, 307} <= codes(own) and item(own).findtext(q(NS_USER, "reason")) == "noise" and
         actor is not None and actor.get("nick") == "A",
         "the kicked occupant gets 110 and 307 with the reason and the actor's nick")
    other = carol.expect(is_presence_from(rj + "/B", "unavailable"), 5, "kick seen")
    t.ok(307 in codes(other) and 110 not in codes(other), "the others see 307")
    # Ban.
    r = admin(alice, "court", "<item jid='carol@localhost' affiliation='outcast'>"
              "<reason>spam</reason></item>")
    t.ok(r.get("type") == "result", "the owner bans carol")
    own = carol.expect(is_presence_from(rj + "/C", "unavailable"), 5, "banned")
    t.ok({110, 301} <= codes(own) and item(own).get("affiliation") == "outcast",
         "the banned occupant leaves with 301, affiliation outcast")
    t.ok(join_error(carol, "court", "C") == "forbidden", "a banned user joins: forbidden")
    r = admin(alice, "court", "<item affiliation='outcast'/>", "get")
    t.ok(("carol@localhost", "outcast", None, None) in items_of(r),
         "the ban list holds carol (%s)" % items_of(r))
    # Admin, and what an admin may not do.
    r = admin(alice, "court", "<item jid='dave@localhost' affiliation='admin'/>")
    p = dave.expect(lambda e: is_presence_from(rj + "/D")(e) and
                    item(e).get("affiliation") == "admin", 5, "admin presence")
    t.ok(r.get("type") == "result" and item(p).get("role") == "moderator",
         "an owner makes dave admin: his presence shows admin and moderator")
    r = admin(dave, "court", "<item jid='alice@localhost' affiliation='none'/>")
    t.ok(error_condition(r) == "forbidden", "an admin demotes an owner: forbidden")
    r = admin(dave, "court", "<item nick='A' role='none'/>")
    t.ok(error_condition(r) == "not-allowed", "an admin kicks an owner: not-allowed")
    r = admin(dave, "court", "<item jid='eve@localhost' affiliation='member'/>")
    t.ok(r.get("type") == "result", "an admin grants membership")
    r = admin(dave, "court", "<item affiliation='member'/>", "get")
    t.ok(("eve@localhost", "member", None, None) in items_of(r), "the member list holds eve")
    r = admin(alice, "court", "<item jid='x@localhost' affiliation='member'/>"
              "<item jid='y@localhost' affiliation='outcast'/>")
    t.ok(error_condition(r) == "resource-constraint",
         "affiliations beyond max_affiliations (5): resource-constraint, none applied")
    r = admin(alice, "court", "<item affiliation='outcast'/>", "get")
    t.ok("y@localhost" not in [i[0] for i in items_of(r)], "the refused request changed nothing")
    r = admin(alice, "court", "<item jid='alice@localhost' affiliation='member'/>")
    t.ok(error_condition(r) == "conflict", "the last owner steps down: conflict")
    r = admin(alice, "court", "<item affiliation='owner'/>", "get")
    t.ok([i[0] for i in items_of(r)] == ["alice@localhost"], "the owner list")
    r = alice.iq("<query xmlns='%s'><item affiliation='admin'/></query>" % NS_OWNER, "get", rj)
    t.ok([i.get("jid") for i in r.iter(q(NS_OWNER, "item"))] == ["dave@localhost"],
         "the admin list in muc#owner, as older clients ask for it")
    r = dave.iq("<query xmlns='%s'><item affiliation='owner'/></query>" % NS_OWNER, "get", rj)
    t.ok(error_condition(r) == "forbidden", "muc#owner from an admin: forbidden")
    r = admin(alice, "court", "<item role='moderator'/>", "get")
    t.ok(sorted(i[3] for i in items_of(r)) == ["A", "D"], "the moderator list (role)")
    # Voice in a moderated room.
    r = configure(alice, "court", [("muc#roomconfig_moderatedroom", "1")])
    p = join(bob, "court", "B")
    t.ok(item(p).get("role") == "visitor", "in a moderated room a newcomer is a visitor")
    say(bob, "court", "can I?")
    t.ok(error_condition(bob.expect(is_error_from(rj, "message"))) == "forbidden",
         "a visitor's groupchat: forbidden")
    # A voice request (7.13) reaches the moderators; one grants it (8.6).
    req_form = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"
                "http://jabber.org/protocol/muc#request</value></field>%s</x>")
    bob.send("<message to='%s'>%s</message>" % (rj, req_form % (
        "<field var='muc#role'><value>participant</value></field>")))
    got = dave.expect(lambda e: e.tag == q(NS_CLIENT, "message") and
                      e.find(q(NS_DATA, "x")) is not None, 5, "voice request")
    fields = dict((f.get("var"), f.findtext(q(NS_DATA, "value")))
                  for f in got.iter(q(NS_DATA, "field")))
    t.ok(got.get("from") == rj and fields.get("muc#roomnick") == "B" and
         fields.get("muc#request_allow") == "false",
         "a visitor's voice request reaches the moderators as a form (%s)" % fields)
    eve.send("<message to='%s'>%s</message>" % (rj, req_form % (
        "<field var='muc#roomnick'><value>B</value></field>"
        "<field var='muc#request_allow'><value>true</value></field>")))
    t.ok(error_condition(eve.expect(is_error_from(rj, "message"))) == "not-acceptable",
         "an approval from a non-occupant: not-acceptable")
    dave.send("<message to='%s'>%s</message>" % (rj, req_form % (
        "<field var='muc#role'><value>participant</value></field>"
        "<field var='muc#roomnick'><value>B</value></field>"
        "<field var='muc#request_allow'><value>true</value></field>")))
    p = bob.expect(lambda e: is_presence_from(rj + "/B")(e) and
                   item(e).get("role") == "participant", 5, "voice")
    t.ok(p is not None, "the moderator's approval gives voice")
    r = admin(dave, "court", "<item nick='B' role='visitor'/>")
    bob.expect(lambda e: is_presence_from(rj + "/B")(e) and
               item(e).get("role") == "visitor", 5, "no voice")
    r = admin(dave, "court", "<item nick='B' role='participant'/>")
    p = bob.expect(lambda e: is_presence_from(rj + "/B")(e) and
                   item(e).get("role") == "participant", 5, "voice")
    t.ok(r.get("type") == "result" and p is not None, "a moderator grants voice")
    say(bob, "court", "now I can")
    t.ok(alice.expect(lambda e: e.findtext(q(NS_CLIENT, "body")) == "now I can", 5, "voiced")
         is not None, "the voiced occupant speaks")
    r = admin(bob, "court", "<item nick='D' role='visitor'/>")
    t.ok(error_condition(r) == "forbidden", "a participant revokes voice: forbidden")
    # Two items about one occupant: the second finds him gone.
    r = admin(alice, "court", "<item nick='B' role='none'/><item nick='B' role='visitor'/>"
              "<item nick='B' affiliation='member'/>")
    own = bob.expect(is_presence_from(rj + "/B", "unavailable"), 5, "kicked")
    t.ok(r.get("type") == "result" and 307 in codes(own),
         "a request that kicks an occupant and then names him again: kicked once, no crash")
    p = join(bob, "court", "B")
    t.ok(p.get("type") is None, "bob rejoins")
    # Destruction.
    r = bob.iq("<query xmlns='%s'><destroy/></query>" % NS_OWNER, "set", rj)
    t.ok(error_condition(r) == "forbidden", "a non-owner destroys: forbidden")
    r = alice.iq("<query xmlns='%s'><destroy jid='%s'><reason>moved</reason></destroy></query>"
                 % (NS_OWNER, room_jid("newcourt")), "set", rj)
    t.ok(r.get("type") == "result", "the owner destroys the room")
    p = bob.expect(is_presence_from(rj + "/B", "unavailable"), 5, "destroyed")
    d = p.find("%s/%s" % (q(NS_USER, "x"), q(NS_USER, "destroy")))
    t.ok(d is not None and d.get("jid") == room_jid("newcourt") and
         d.findtext(q(NS_USER, "reason")) == "moved",
         "occupants get unavailable with <destroy jid=alternate><reason/>")
    r = bob.iq("<query xmlns='%s'/>" % NS_INFO, "get", rj)
    t.ok(error_condition(r) == "item-not-found", "the destroyed room is gone: item-not-found")
    for c in (alice, bob, carol, dave, eve):
        c.close()


def test_disco(t, srv):
    alice, bob = clients(srv, ["alice", "bob"], presence=True)
    r = bob.iq("<query xmlns='%s'/>" % NS_INFO, "get", SERVICE)
    ids = [(i.get("category"), i.get("type")) for i in r.iter(q(NS_INFO, "identity"))]
    feats = [f.get("var") for f in r.iter(q(NS_INFO, "feature"))]
    t.ok(("conference", "text") in ids and "http://jabber.org/protocol/muc" in feats,
         "the service: identity conference/text, feature muc")
    r = bob.iq("<unique xmlns='http://jabber.org/protocol/muc#unique'/>", "get", SERVICE)
    u1 = r.findtext(q("http://jabber.org/protocol/muc#unique", "unique"))
    r = bob.iq("<unique xmlns='http://jabber.org/protocol/muc#unique'/>", "get", SERVICE)
    u2 = r.findtext(q("http://jabber.org/protocol/muc#unique", "unique"))
    t.ok(u1 and u2 and u1 != u2 and "http://jabber.org/protocol/muc#unique" in feats,
         "muc#unique gives a new room name each time (%s, %s)" % (u1, u2))
    r = bob.iq("<query xmlns='%s'/>" % NS_ITEMS, "get", "localhost")
    t.ok(SERVICE in [i.get("jid") for i in r.iter(q(NS_ITEMS, "item"))],
         "the server's disco#items lists the service")
    create(alice, "pub", "A", [("muc#roomconfig_roomname", "Public Room"),
                               ("muc#roomconfig_roomdesc", "for all")])
    create(alice, "hid", "A", [("muc#roomconfig_publicroom", "0")])
    r = bob.iq("<query xmlns='%s'/>" % NS_ITEMS, "get", SERVICE)
    listed = dict((i.get("jid"), i.get("name")) for i in r.iter(q(NS_ITEMS, "item")))
    t.ok(listed.get(room_jid("pub")) == "Public Room" and room_jid("hid") not in listed,
         "the service's items list the public room by name, not the hidden one (%s)" % listed)
    r = bob.iq("<query xmlns='%s'/>" % NS_INFO, "get", room_jid("pub"))
    feats = [f.get("var") for f in r.iter(q(NS_INFO, "feature"))]
    want = ["http://jabber.org/protocol/muc", "muc_public", "muc_temporary", "muc_open",
            "muc_unmoderated", "muc_unsecured", "muc_semianonymous"]
    t.ok(all(f in feats for f in want), "the room's disco#info has its muc_* features (%s)" % feats)
    form = dict((f.get("var"), f.findtext(q(NS_DATA, "value")))
                for f in r.iter(q(NS_DATA, "field")))
    t.ok(form.get("FORM_TYPE") == "http://jabber.org/protocol/muc#roominfo" and
         form.get("muc#roominfo_description") == "for all" and
         form.get("muc#roominfo_occupants") == "1", "and the muc#roominfo form (%s)" % form)
    r = bob.iq("<query xmlns='%s'/>" % NS_ITEMS, "get", room_jid("pub"))
    t.ok(r.get("type") == "result" and not list(r.iter(q(NS_ITEMS, "item"))),
         "the room's disco#items keeps the occupants hidden")
    alice.close()
    bob.close()


def test_invitations(t, srv):
    alice, bob, eve = clients(srv, ["alice", "bob", "eve"], presence=True)
    create(alice, "inv", "A", [("muc#roomconfig_membersonly", "1")])
    rj = room_jid("inv")
    alice.send("<message to='%s'><x xmlns='%s'><invite to='eve@localhost'><reason>join us"
               "</reason></invite></x></message>" % (rj, NS_USER))
    m = eve.expect(lambda e: e.tag == q(NS_CLIENT, "message") and
                   e.find("%s/%s" % (q(NS_USER, "x"), q(NS_USER, "invite"))) is not None, 5,
                   "invitation")
    inv = m.find("%s/%s" % (q(NS_USER, "x"), q(NS_USER, "invite")))
    t.ok(m.get("from") == rj and inv.get("from", "").startswith("alice@localhost") and
         inv.findtext(q(NS_USER, "reason")) == "join us",
         "a mediated invitation reaches the invitee from the room, naming the inviter")
    p = join(eve, "inv", "E")
    t.ok(p.get("type") is None and item(p).get("affiliation") == "member",
         "the invitee of a members-only room became a member")
    bob.send("<message to='%s'><x xmlns='%s'><invite to='eve@localhost'/></x></message>"
             % (rj, NS_USER))
    t.ok(error_condition(bob.expect(is_error_from(rj, "message"))) == "not-acceptable",
         "an invitation from a non-occupant: not-acceptable")
    alice.send("<message to='%s'><x xmlns='%s'><invite/></x></message>" % (rj, NS_USER))
    t.ok(error_condition(alice.expect(is_error_from(rj, "message"))) == "bad-request",
         "an invitation without 'to': bad-request")
    bob.send("<message to='%s'><x xmlns='%s'><decline to='%s'><reason>busy</reason></decline>"
             "</x></message>" % (rj, NS_USER, alice.jid))
    m = alice.expect(lambda e: e.find("%s/%s" % (q(NS_USER, "x"), q(NS_USER, "decline")))
                     is not None, 5, "decline")
    dec = m.find("%s/%s" % (q(NS_USER, "x"), q(NS_USER, "decline")))
    t.ok(m.get("from") == rj and dec.get("from", "").startswith("bob@localhost") and
         dec.findtext(q(NS_USER, "reason")) == "busy", "a decline reaches the inviter")
    alice.send("<message to='bob@localhost'><x xmlns='jabber:x:conference' jid='%s' "
               "reason='come'/></message>" % rj)
    m = bob.expect(lambda e: e.find(q("jabber:x:conference", "x")) is not None, 5, "direct")
    t.ok(m.find(q("jabber:x:conference", "x")).get("jid") == rj,
         "a direct invitation (XEP-0249) reaches the invitee as sent")
    for c in (alice, bob, eve):
        c.close()


def test_bad_input(t, srv):
    """Malformed requests get the XEP's error and leave the room working."""
    alice, bob = clients(srv, ["alice", "bob"], presence=True)
    create(alice, "rough", "A")
    rj = room_jid("rough")
    join(bob, "rough", "B")
    cases = [
        (alice, "<query xmlns='%s'/>" % NS_OWNER, "set", "bad-request",
         "an owner set with neither form nor destroy"),
        (alice, "<query xmlns='%s'><x xmlns='%s' type='result'/></query>" % (NS_OWNER, NS_DATA),
         "set", "bad-request", "a configuration form of type result"),
        (alice, "<query xmlns='%s'><destroy jid='@@'/></query>" % NS_OWNER, "set", "bad-request",
         "a destroy whose alternate venue is no JID"),
        (alice, "<query xmlns='%s'><item affiliation='member' jid='@@'/></query>" % NS_ADMIN,
         "set", "bad-request", "an affiliation for something that is no JID"),
        (alice, "<query xmlns='%s'><item role='none'/></query>" % NS_ADMIN, "set",
         "bad-request", "a kick without a nick"),
        (alice, "<query xmlns='%s'/>" % NS_ADMIN, "get", "bad-request", "an admin get without item"),
        (bob, "<query xmlns='urn:example:nothing'/>", "get", "service-unavailable",
         "an unknown namespace at the room"),
        (bob, "", "get", "bad-request", "an IQ with no payload"),
    ]
    for who, body, type_, want, what in cases:
        r = who.iq(body, type_, rj)
        t.ok(error_condition(r) == want, "%s: %s (%s)" % (what, want, error_condition(r)))
    alice.send("<message to='%s'><x xmlns='%s'><invite to='@@'/></x></message>" % (rj, NS_USER))
    t.ok(error_condition(alice.expect(is_error_from(rj, "message"))) == "bad-request",
         "an invitation to something that is no JID: bad-request")
    bob.send("<message to='%s'><body>no type</body></message>" % rj)
    t.ok(error_condition(bob.expect(is_error_from(rj, "message"))) == "bad-request",
         "a normal message to the room: bad-request")
    bob.send("<message to='%s' type='groupchat'><body>still here</body></message>" % rj)
    t.ok(alice.expect(lambda e: e.findtext(q(NS_CLIENT, "body")) == "still here", 5, "alive")
         is not None, "after all that the room still works")
    alice.close()
    bob.close()


def test_account_removal(t, srv):
    """A removed account's affiliations go: a new account of the same
    name inherits nothing."""
    alice, eve = clients(srv, ["alice", "eve"], presence=True)
    create(alice, "acct", "A")
    admin(alice, "acct", "<item jid='eve@localhost' affiliation='admin'/>")
    r = eve.iq("<query xmlns='jabber:iq:register'><remove/></query>", "set")
    t.ok(r.get("type") == "result", "eve removes her account in-band")
    eve.closed.wait(5)
    srv.register("eve")
    admins = None
    deadline = time.time() + 10
    while time.time() < deadline:
        r = admin(alice, "acct", "<item affiliation='admin'/>", "get")
        admins = [i[0] for i in items_of(r)]
        if not admins:
            break
        time.sleep(0.05)
    t.ok(admins == [], "her admin affiliation went with the account (%s)" % admins)
    eve = Client(srv, "eve")
    r = admin(eve, "acct", "<item affiliation='member'/>", "get")
    t.ok(error_condition(r) == "forbidden", "the new eve is no admin of the room")
    alice.close()
    eve.close()


def test_room_limit(t, srv):
    alice = Client(srv, "alice")
    # The scenarios above left temporary rooms; each goes once the server
    # has handled its occupants' disconnection: wait for that.
    for gone in ("pub", "hid", "inv", "rough", "acct"):
        deadline = time.time() + 10
        while time.time() < deadline:
            r = alice.iq("<query xmlns='%s'/>" % NS_INFO, "get", room_jid(gone))
            if error_condition(r) == "item-not-found":
                break
            time.sleep(0.05)
    made = 0
    for i in range(10):
        p = join(alice, "lim%d" % i, "A")
        if p.get("type") == "error":
            t.ok(error_condition(p) == "not-allowed",
                 "creating a room beyond max_rooms: not-allowed (%d made)" % made)
            break
        made += 1
        configure(alice, "lim%d" % i)
    t.ok(made == 6, "max_rooms = 6 rooms exist at most (%d new ones)" % made)
    alice.send("<presence to='%s/A' type='unavailable'/>" % room_jid("lim0"))
    alice.expect(is_presence_from(room_jid("lim0") + "/A", "unavailable"), 5, "left")
    p = join(alice, "again", "A")
    t.ok(p.get("type") is None and 201 in codes(p), "a room that went frees its place")
    alice.close()


def main():
    t = Tap()
    srv = Server(MODULES)
    try:
        ready(srv)
        for u in USERS:
            srv.register(u)
        t.run("roles and affiliations", test_roles_and_affiliations, srv)
        t.run("disco", test_disco, srv)
        t.run("invitations", test_invitations, srv)
        t.run("bad input", test_bad_input, srv)
        t.run("account removal", test_account_removal, srv)
        t.run("room limit", test_room_limit, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text(40))
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
