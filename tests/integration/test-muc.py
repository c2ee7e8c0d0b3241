#!/usr/bin/python3
"""mod_muc (XEP-0045), rooms and occupants: instant and reserved rooms,
the locked room, the configuration form, joining with its presence
order and status codes, nick conflicts and limits, passwords,
members-only rooms, bans, max users, nick changes, leaving, one nick
for several resources, groupchat fan-out counted per recipient,
private messages, the subject, discussion history on join
(maxstanzas/maxchars/seconds/since), XEP-0410 self-ping. Several raw
XML clients per room. Prints TAP; ignores --tap."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Server, Tap, error_condition, q  # noqa: E402
from muctest import (NS_DATA, clients, NS_DELAY, NS_MUC, NS_OWNER, NS_USER, codes, configure,  # noqa: E402
                     count, create, is_error_from, is_groupchat, is_presence_from, item, join,
                     join_error, leave, ready, room_jid, say)

MODULES = {"mod_disco": None, "mod_roster": None,
           "mod_muc": {"max_nick_length": 10, "max_room_name_length": 20}}
USERS = ["alice", "bob", "carol", "dave", "eve"] + ["c%d" % i for i in range(12)]


def test_instant_and_join(t, srv):
    alice, bob, carol = clients(srv, ["alice", "bob", "carol"])
    p = join(alice, "lobby", "Alice")
    it = item(p)
    t.ok(p.get("type") is None and {110, 201} <= codes(p),
         "the first join creates the room: self-presence with 110 and 201 (%s)" % codes(p))
    t.ok(it is not None and it.get("affiliation") == "owner" and it.get("role") == "moderator",
         "the creator is owner and moderator")
    t.ok(join_error(bob, "lobby", "Bob") == "item-not-found",
         "a locked room (not configured yet) refuses others with item-not-found")
    res = configure(alice, "lobby")
    t.ok(res.get("type") == "result", "an empty submitted form makes the room instant")
    p = join(bob, "lobby", "Bob")
    t.ok(p.get("type") is None and 110 in codes(p) and 201 not in codes(p),
         "bob joins the configured room: 110 without 201 (%s)" % codes(p))
    # Presence order: alice's presence reached bob before his own.
    t.ok(bob.maybe(is_presence_from(room_jid("lobby") + "/Alice"), 0) is not None,
         "the joiner got the existing occupant's presence before its own")
    subj = bob.expect(lambda e: e.tag == q(NS_CLIENT, "message") and
                      e.find(q(NS_CLIENT, "subject")) is not None, 5, "subject")
    t.ok(subj.get("from") == room_jid("lobby") and subj.get("type") == "groupchat",
         "the joiner gets the (empty) subject from the room")
    pa = alice.expect(is_presence_from(room_jid("lobby") + "/Bob"), 5, "bob's presence")
    t.ok(item(pa).get("role") == "participant",
         "the occupants see bob join as participant")
    # A moderator sees real JIDs in a semi-anonymous room.
    p = join(carol, "lobby", "Carol")
    pc = alice.expect(is_presence_from(room_jid("lobby") + "/Carol"), 5, "carol's presence")
    pb = bob.expect(is_presence_from(room_jid("lobby") + "/Carol"), 5, "carol's presence")
    t.ok(item(pc).get("jid", "").startswith("carol@localhost/") and item(pb).get("jid") is None,
         "the moderator sees carol's real JID, the participant does not")

    # Groupchat: exactly one copy each, the sender's included.
    for c in (alice, bob, carol):
        c.drain(0.2)
    say(bob, "lobby", "hello all")
    got = [count(c, is_groupchat(room_jid("lobby") + "/Bob", "hello all")) for c in
           (alice, bob, carol)]
    t.ok(got == [1, 1, 1], "a groupchat message reaches each occupant once (%s)" % got)

    # Errors around messages.
    dave = Client(srv, "dave")
    say(dave, "lobby", "not in")
    t.ok(error_condition(dave.expect(is_error_from(room_jid("lobby"), "message"))) ==
         "not-acceptable", "a non-occupant's groupchat: not-acceptable")
    bob.send("<message to='%s/Carol' type='groupchat'><body>x</body></message>" %
             room_jid("lobby"))
    t.ok(error_condition(bob.expect(is_error_from(room_jid("lobby") + "/Carol", "message"))) ==
         "bad-request", "groupchat to an occupant's JID: bad-request")

    # Private messages.
    bob.send("<message to='%s/Carol' type='chat'><body>psst</body></message>" % room_jid("lobby"))
    pm = carol.expect(lambda e: e.tag == q(NS_CLIENT, "message") and
                      e.findtext(q(NS_CLIENT, "body")) == "psst", 5, "pm")
    t.ok(pm.get("from") == room_jid("lobby") + "/Bob" and pm.get("type") == "chat" and
         pm.find(q(NS_USER, "x")) is not None,
         "a private message arrives from room/nick with <x muc#user/>")
    t.ok(count(alice, lambda e: e.findtext(q(NS_CLIENT, "body")) == "psst", 0.3) == 0,
         "nobody else gets the private message")
    bob.send("<message to='%s/Nobody' type='chat'><body>?</body></message>" % room_jid("lobby"))
    t.ok(error_condition(bob.expect(is_error_from(room_jid("lobby") + "/Nobody", "message"))) ==
         "item-not-found", "a private message to an absent nick: item-not-found")

    # Nick conflict, limits, a missing nick.
    t.ok(join_error(dave, "lobby", "Bob") == "conflict", "another user's nick: conflict")
    t.ok(join_error(dave, "lobby", "D" * 11) == "not-acceptable",
         "a nick over max_nick_length: not-acceptable")
    dave.send("<presence to='%s'><x xmlns='%s'/></presence>" % (room_jid("lobby"), NS_MUC))
    t.ok(error_condition(dave.expect(is_error_from(room_jid("lobby")))) == "jid-malformed",
         "a join without a nick: jid-malformed")
    dave.send("<presence to='%s/D'/>" % room_jid("r" * 21))
    t.ok(error_condition(dave.expect(is_error_from(room_jid("r" * 21) + "/D"))) ==
         "not-acceptable", "a room name over max_room_name_length: not-acceptable")

    # Nick change (303).
    for c in (alice, bob, carol):
        c.drain(0.2)
    bob.send("<presence to='%s/Robert'/>" % room_jid("lobby"))
    old = alice.expect(is_presence_from(room_jid("lobby") + "/Bob", "unavailable"), 5, "303")
    new = alice.expect(is_presence_from(room_jid("lobby") + "/Robert"), 5, "new nick")
    t.ok(303 in codes(old) and item(old).get("nick") == "Robert" and new is not None,
         "a nick change: unavailable with 303 and the new nick, then the new presence")
    own = bob.expect(is_presence_from(room_jid("lobby") + "/Bob", "unavailable"), 5, "own 303")
    t.ok({110, 303} <= codes(own), "the renamed occupant gets 110 and 303")
    carol.send("<presence to='%s/Robert'/>" % room_jid("lobby"))
    t.ok(error_condition(carol.expect(is_error_from(room_jid("lobby") + "/Robert"))) ==
         "conflict", "changing to a nick in use: conflict")

    # Several resources under one nick.
    bob2 = Client(srv, "bob", resource="phone")
    alice.drain(0.2)
    p = join(bob2, "lobby", "Robert")
    t.ok(p.get("type") is None and 110 in codes(p), "bob's second resource joins as Robert")
    t.ok(alice.maybe(is_presence_from(room_jid("lobby") + "/Robert"), 0.5) is None,
         "the others see no second join")
    bob.drain(0.2)
    say(carol, "lobby", "both?")
    t.ok(count(bob, is_groupchat(room_jid("lobby") + "/Carol", "both?")) == 1 and
         count(bob2, is_groupchat(room_jid("lobby") + "/Carol", "both?")) == 1,
         "each of bob's resources gets the message once")
    leave(bob2, "lobby", "Robert")
    t.ok(alice.maybe(is_presence_from(room_jid("lobby") + "/Robert", "unavailable"), 0.5) is None,
         "one resource leaving leaves the occupant in the room")
    say(carol, "lobby", "still?")
    t.ok(count(bob, is_groupchat(room_jid("lobby") + "/Carol", "still?")) == 1 and
         count(bob2, is_groupchat(room_jid("lobby") + "/Carol", "still?"), 0.3) == 0,
         "the remaining resource still gets messages, the gone one not")

    # An IQ to an occupant goes to that occupant, its answer back.
    bob.send("<iq type='get' id='vc1' to='%s/Carol'><vCard xmlns='vcard-temp'/></iq>" %
             room_jid("lobby"))
    req = carol.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "vc1", 5, "vc")
    t.ok(req.get("from") == room_jid("lobby") + "/Robert" and req.get("type") == "get",
         "an IQ to room/nick reaches the occupant from room/sendernick")
    carol.send("<iq type='result' id='vc1' to='%s/Robert'><vCard xmlns='vcard-temp'>"
               "<FN>C</FN></vCard></iq>" % room_jid("lobby"))
    res = bob.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "vc1", 5, "vc r")
    t.ok(res.get("from") == room_jid("lobby") + "/Carol" and res.get("type") == "result",
         "its answer comes back from room/nick")
    # Self-ping (XEP-0410).
    r = carol.iq("<ping xmlns='urn:xmpp:ping'/>", "get", room_jid("lobby") + "/Carol")
    t.ok(r.get("type") == "result", "self-ping of a joined occupant: result")
    r = dave.iq("<ping xmlns='urn:xmpp:ping'/>", "get", room_jid("lobby") + "/Carol")
    t.ok(error_condition(r) == "not-acceptable", "self-ping from a non-occupant: not-acceptable")

    # Leave.
    alice.drain(0.2)
    own = leave(carol, "lobby", "Carol")
    gone = alice.expect(is_presence_from(room_jid("lobby") + "/Carol", "unavailable"), 5, "leave")
    t.ok(own is not None and item(gone).get("role") == "none",
         "leaving: the occupant gets 110, the others unavailable with role none")
    # A client that goes away without a word leaves too.
    join(dave, "lobby", "Dave")
    alice.expect(is_presence_from(room_jid("lobby") + "/Dave"), 5, "dave joined")
    dave.drop()
    gone = alice.expect(is_presence_from(room_jid("lobby") + "/Dave", "unavailable"), 10,
                        "dave's leave")
    t.ok(gone is not None, "a dropped connection leaves the room (unavailable to the others)")
    r = bob.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", room_jid("lobby"))
    occ = [f for f in r.iter(q("jabber:x:data", "field"))
           if f.get("var") == "muc#roominfo_occupants"]
    t.ok(occ and occ[0].findtext(q("jabber:x:data", "value")) == "2",
         "the room counts two occupants left")
    for c in (alice, bob, bob2, carol, dave):
        c.close()


def test_reserved_room(t, srv):
    alice, bob, carol, dave = clients(srv, ["alice", "bob", "carol", "dave"])
    p = join(alice, "club", "A")
    t.ok(201 in codes(p), "the reserved room is created (201)")
    r = alice.iq("<query xmlns='%s'/>" % NS_OWNER, "get", room_jid("club"))
    form = r.find("%s/%s" % (q(NS_OWNER, "query"), q(NS_DATA, "x")))
    vars = set(f.get("var") for f in form.findall(q(NS_DATA, "field"))) if form is not None else set()
    want = {"muc#roomconfig_roomname", "muc#roomconfig_roomdesc", "muc#roomconfig_persistentroom",
            "muc#roomconfig_publicroom", "muc#roomconfig_membersonly",
            "muc#roomconfig_moderatedroom", "muc#roomconfig_passwordprotectedroom",
            "muc#roomconfig_roomsecret", "muc#roomconfig_maxusers", "muc#roomconfig_whois",
            "muc#maxhistoryfetch", "muc#roomconfig_allowinvites",
            "muc#roomconfig_changesubject", "muc#roomconfig_enablelogging"}
    t.ok(want <= vars, "the owner gets the muc#roomconfig form with the standard fields "
         "(missing: %s)" % (want - vars))
    r = bob.iq("<query xmlns='%s'/>" % NS_OWNER, "get", room_jid("club"))
    t.ok(error_condition(r) in ("forbidden", "item-not-found"),
         "someone else cannot read the form (%s)" % error_condition(r))
    # Cancelling the initial configuration destroys the new room.
    p = join(bob, "gone", "B")
    r = bob.iq("<query xmlns='%s'><x xmlns='%s' type='cancel'/></query>" % (NS_OWNER, NS_DATA),
               "set", room_jid("gone"))
    bob.expect(is_presence_from(room_jid("gone") + "/B", "unavailable"), 5, "destroyed")
    p = join(carol, "gone", "C")
    t.ok(r.get("type") == "result" and 201 in codes(p),
         "cancelling a new room's configuration destroys it: the next join creates it anew")
    r = configure(alice, "club", [("muc#roomconfig_maxusers", "lots")])
    t.ok(error_condition(r) == "not-acceptable", "a bad form value: not-acceptable")
    r = configure(alice, "club", [("muc#roomconfig_roomname", "The Club"),
                                  ("muc#roomconfig_passwordprotectedroom", "1"),
                                  ("muc#roomconfig_roomsecret", "s3cret"),
                                  ("muc#roomconfig_maxusers", "3"),
                                  ("muc#roomconfig_whois", "anyone")])
    t.ok(r.get("type") == "result", "the owner configures name, password, max users, whois")
    t.ok(join_error(bob, "club", "B") == "not-authorized", "no password: not-authorized")
    t.ok(join_error(bob, "club", "B", "<password>wrong</password>") == "not-authorized",
         "a wrong password: not-authorized")
    p = join(bob, "club", "B", "<password>s3cret</password>")
    t.ok(p.get("type") is None and 100 in codes(p),
         "the right password lets bob in; the room is non-anonymous (100)")
    join(carol, "club", "C", "<password>s3cret</password>")
    t.ok(join_error(dave, "club", "D", "<password>s3cret</password>") == "service-unavailable",
         "a full room (max users 3): service-unavailable")
    # Members-only: non-members leave with 322, newcomers need membership.
    r = configure(alice, "club", [("muc#roomconfig_membersonly", "1")])
    t.ok(r.get("type") == "result", "the owner makes the room members-only")
    out = bob.expect(is_presence_from(room_jid("club") + "/B", "unavailable"), 5, "322")
    t.ok(322 in codes(out), "a non-member occupant is removed with 322")
    msg = alice.expect(lambda e: e.tag == q(NS_CLIENT, "message") and 104 in codes(e), 5, "104")
    t.ok(msg.get("from") == room_jid("club"), "occupants get status 104 on a config change")
    t.ok(join_error(dave, "club", "D", "<password>s3cret</password>") ==
         "registration-required", "a non-member joins a members-only room: registration-required")
    r = alice.iq("<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'"
                 " jid='dave@localhost'/></query>", "set", room_jid("club"))
    t.ok(r.get("type") == "result", "the owner makes dave a member")
    p = join(dave, "club", "D", "<password>s3cret</password>")
    t.ok(p.get("type") is None and item(p).get("affiliation") == "member",
         "the member joins")
    for c in (alice, bob, carol, dave):
        c.close()


def test_history(t, srv):
    alice, bob = clients(srv, ["alice", "bob"])
    create(alice, "hist", "A", [("muc#maxhistoryfetch", "4")])
    for i in range(6):
        say(alice, "hist", "m%d" % i)
    for i in range(6):
        alice.expect(is_groupchat(room_jid("hist") + "/A", "m%d" % i), 5, "echo")

    def history(x):
        join(bob, "hist", "B", history=x)
        got = []
        while True:
            e = bob.maybe(lambda e: e.tag == q(NS_CLIENT, "message"), 3)
            if e is None or e.find(q(NS_CLIENT, "subject")) is not None:
                break
            assert e.get("from") == room_jid("hist") + "/A", "history from " + str(e.get("from"))
            got.append((e.findtext(q(NS_CLIENT, "body")), e.find(q(NS_DELAY, "delay"))))
        leave(bob, "hist", "B")
        return got
    got = history("")
    t.ok([b for b, _ in got] == ["m2", "m3", "m4", "m5"] and
         all(d is not None and d.get("from") == room_jid("hist") for _, d in got),
         "a join gets the room's last 4 messages (its history length) with <delay/> (%s)" %
         [b for b, _ in got])
    got = history("<history maxstanzas='2'/>")
    t.ok([b for b, _ in got] == ["m4", "m5"], "maxstanzas='2': the last two (%s)" % got)
    got = history("<history maxchars='0'/>")
    t.ok(got == [], "maxchars='0': no history")
    got = history("<history seconds='3600'/>")
    t.ok(len(got) == 4, "seconds='3600': all four (%d)" % len(got))
    got = history("<history since='2999-01-01T00:00:00Z'/>")
    t.ok(got == [], "since a future date: none")
    # Subject on join, and who may change it.
    join(bob, "hist", "B")
    bob.drain(0.5)
    bob.send("<message to='%s' type='groupchat'><subject>mine</subject></message>" %
             room_jid("hist"))
    t.ok(error_condition(bob.expect(is_error_from(room_jid("hist"), "message"))) == "forbidden",
         "a participant changes the subject where only moderators may: forbidden")
    alice.send("<message to='%s' type='groupchat'><subject>Topic</subject></message>" %
               room_jid("hist"))
    s = bob.expect(lambda e: e.findtext(q(NS_CLIENT, "subject")) == "Topic", 5, "subject")
    t.ok(s.get("from") == room_jid("hist") + "/A", "the moderator's subject reaches occupants")
    leave(bob, "hist", "B")
    join(bob, "hist", "B")
    s = bob.expect(lambda e: e.find(q(NS_CLIENT, "subject")) is not None, 5, "subject on join")
    t.ok(s.findtext(q(NS_CLIENT, "subject")) == "Topic", "a joiner gets the current subject")
    alice.close()
    bob.close()


def test_register(t, srv):
    alice, bob, carol, dave = clients(srv, ["alice", "bob", "carol", "dave"])
    create(alice, "reg", "A")
    rj = room_jid("reg")
    NS_REG = "jabber:iq:register"
    r = bob.iq("<query xmlns='%s'/>" % NS_REG, "get", rj)
    vars_ = [f.get("var") for f in r.iter(q(NS_DATA, "field"))]
    t.ok("muc#register_roomnick" in vars_, "registering: the form asks for a nick")
    form = ("<query xmlns='%s'><x xmlns='%s' type='submit'><field var='FORM_TYPE'><value>"
            "http://jabber.org/protocol/muc#register</value></field><field "
            "var='muc#register_roomnick'><value>%%s</value></field></x></query>" % (NS_REG, NS_DATA))
    r = bob.iq(form % "", "set", rj)
    t.ok(error_condition(r) == "not-acceptable", "an empty nick: not-acceptable")
    r = bob.iq(form % "Bobby", "set", rj)
    t.ok(r.get("type") == "result", "bob registers the nick Bobby")
    r = alice.iq("<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/>"
                 "</query>", "get", rj)
    its = [(i.get("jid"), i.get("nick")) for i in r.iter(q("http://jabber.org/protocol/muc#admin",
                                                           "item"))]
    t.ok(its == [("bob@localhost", "Bobby")], "and is a member with it (%s)" % its)
    r = bob.iq("<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>",
               "get", rj)
    names = [i.get("name") for i in r.iter(q("http://jabber.org/protocol/disco#info",
                                             "identity"))]
    t.ok(names == ["Bobby"], "disco#info node x-roomuser-item names the reserved nick")
    r = bob.iq("<query xmlns='%s'/>" % NS_REG, "get", rj)
    t.ok(r.find("%s/%s" % (q(NS_REG, "query"), q(NS_REG, "registered"))) is not None and
         r.findtext("%s/%s" % (q(NS_REG, "query"), q(NS_REG, "username"))) == "Bobby",
         "asked again: <registered/> with the nick")
    r = carol.iq(form % "Bobby", "set", rj)
    t.ok(error_condition(r) == "conflict", "another user registers the same nick: conflict")
    t.ok(join_error(carol, "reg", "Bobby") == "conflict", "or joins with it: conflict")
    p = join(bob, "reg", "Bobby")
    t.ok(p.get("type") is None, "bob joins with his reserved nick")
    alice.iq("<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast' "
             "jid='dave@localhost'/></query>", "set", rj)
    r = dave.iq(form % "Dave", "set", rj)
    t.ok(error_condition(r) == "forbidden", "an outcast registers: forbidden")
    for c in (alice, bob, carol, dave):
        c.close()


def test_concurrent(t, srv):
    """Twelve clients (spread over the server's two workers) join one room
    at once and each sends ten messages at once: the room is changed only
    by its owner worker, so every occupant gets every message exactly
    once, and each sender's messages in the order sent."""
    n, per = 12, 10
    cs = [Client(srv, "c%d" % i) for i in range(n)]
    create(cs[0], "crowd", "n0")
    for i, c in enumerate(cs[1:], 1):
        join(c, "crowd", "n%d" % i, expect=False)
    for i, c in enumerate(cs):
        if i:
            c.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and
                     e.get("from") == room_jid("crowd") + "/n%d" % i and 110 in codes(e),
                     10, "join n%d" % i)
    for c in cs:
        c.drain(0.3)
    for i, c in enumerate(cs):
        c.send("".join("<message to='%s' type='groupchat'><body>%d-%d</body></message>" %
                       (room_jid("crowd"), i, k) for k in range(per)))
    bad = []
    for i, c in enumerate(cs):
        got = []
        while len(got) < n * per:
            e = c.maybe(lambda e: e.tag == q(NS_CLIENT, "message") and
                        e.get("type") == "groupchat", 10)
            if e is None:
                break
            got.append(e.findtext(q(NS_CLIENT, "body")))
        extra = count(c, lambda e: e.tag == q(NS_CLIENT, "message"), 0.3)
        ordered = all([b for b in got if b.startswith("%d-" % j)] ==
                      ["%d-%d" % (j, k) for k in range(per)] for j in range(n))
        if len(got) != n * per or len(set(got)) != n * per or extra or not ordered:
            bad.append((i, len(got), len(set(got)), extra, ordered))
    t.ok(not bad, "%d occupants each got all %d messages once, each sender's in order (%s)" %
         (n, n * per, bad))
    for c in cs:
        c.close()


def main():
    t = Tap()
    srv = Server(MODULES)
    try:
        ready(srv)
        for u in USERS:
            srv.register(u)
        t.run("instant room and occupants", test_instant_and_join, srv)
        t.run("reserved room", test_reserved_room, srv)
        t.run("history and subject", test_history, srv)
        t.run("nick registration", test_register, srv)
        t.run("concurrent joins and messages", test_concurrent, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text(80))
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
