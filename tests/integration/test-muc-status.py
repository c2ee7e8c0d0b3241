#!/usr/bin/python3
"""mod_muc (XEP-0045) status codes, one scenario each, where the XEP
sends them: 110 (self-presence), 100 (non-anonymous room), 170 (logging
on), 201 (new room), 210 (the room gave the joiner its reserved nick,
enforce_reserved_nick), 301 (ban), 303 (nick
change), 307 (kick), 321 (affiliation removed in a members-only room),
322 (room made members-only), 332 (the service goes away: a module
restart by a reload, and a shutdown of meerkatd). Also the rooms one
user may be in (max_joined_rooms: resource-constraint and a metric), and
the discussion history of persistent rooms across a restart. Several raw
XML clients per room. Prints TAP; ignores --tap."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Server, Tap, error_condition, q  # noqa: E402
from muctest import (NS_DELAY, NS_MUC, NS_USER, admin, codes, configure, create,  # noqa: E402
                     is_groupchat, is_presence_from, item, join, join_error, leave, ready,
                     room_jid, say, wait_log)

MODULES = {"mod_disco": None, "mod_roster": None, "mod_mam": {"flush_interval_ms": 100},
           "mod_muc": {"max_joined_rooms": 3, "enforce_reserved_nick": "true"}}
USERS = ["alice", "bob", "carol", "dave", "erin"]


def clients(srv, names):
    return [Client(srv, n) for n in names]


def metric(srv, name):
    """The value SIGUSR1 makes meerkatd log for mod_muc.NAME (-1: none
    within 10 s)."""
    want = re.compile(r"metric \S+\.mod_muc\.%s (\d+)" % name)

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


def counted(srv):
    """How often mod_muc started (and counted its stored rooms) so far."""
    with open(srv.log_path, errors="replace") as f:
        return len(re.findall(r"mod_muc: \d+ stored rooms counted", f.read()))


def unavailable_with(c, frm, code, timeout=5):
    return c.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == frm and
                    e.get("type") == "unavailable" and code in codes(e), timeout,
                    "unavailable %s with %d" % (frm, code))


def test_join_codes(t, srv):
    """110, 201, 100, 170, 210 in the joiner's self-presence."""
    alice, bob, carol = clients(srv, ["alice", "bob", "carol"])
    p = join(alice, "codes", "A")
    t.ok({110, 201} <= codes(p), "a new room: the creator's self-presence has 110 and 201 (%s)"
         % codes(p))
    t.ok(100 not in codes(p) and 170 not in codes(p),
         "no 100 in a semi-anonymous room, no 170 without logging")
    configure(alice, "codes", [("muc#roomconfig_whois", "anyone"),
                               ("muc#roomconfig_enablelogging", "1")])
    p = join(bob, "codes", "B")
    t.ok({110, 100, 170} <= codes(p) and 201 not in codes(p),
         "a non-anonymous, archived room: the joiner gets 110, 100 and 170, no 201 (%s)" %
         codes(p))
    others = alice.expect(is_presence_from(room_jid("codes") + "/B"), 5, "bob's join")
    t.ok(110 not in codes(others), "the others' copy of a join has no 110")
    # 210: carol registered the nick Carol; with enforce_reserved_nick the
    # room gives it to her whatever nick she asks for.
    r = carol.iq("<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
                 "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value>"
                 "</field><field var='muc#register_roomnick'><value>Carol</value></field></x>"
                 "</query>", "set", room_jid("codes"))
    t.ok(r.get("type") == "result", "carol reserves the nick Carol")
    carol.send("<presence to='%s/Caz'><x xmlns='%s'/></presence>" % (room_jid("codes"), NS_MUC))
    p = carol.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and 110 in codes(e), 10, "210")
    t.ok(p.get("from") == room_jid("codes") + "/Carol" and 210 in codes(p),
         "a join under another nick gets the reserved one: self-presence from it, with 210 "
         "(%s %s)" % (p.get("from"), codes(p)))
    other = alice.expect(is_presence_from(room_jid("codes") + "/Carol"), 5, "carol's join")
    t.ok(210 not in codes(other), "the others see her under the reserved nick, without 210")
    carol.send("<presence to='%s/Caz'/>" % room_jid("codes"))
    e = carol.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("type") == "error",
                     5, "nick change refused")
    t.ok(error_condition(e) == "not-acceptable",
         "changing away from the reserved nick: not-acceptable")
    p = join(carol, "codes2", "Carol")
    t.ok(210 not in codes(p), "a nick taken as asked: no 210")
    for c in (alice, bob, carol):
        c.close()


def test_leave_codes(t, srv):
    """303, 307, 301, 321, 322 in the presence of who leaves."""
    alice, bob, carol, dave = clients(srv, ["alice", "bob", "carol", "dave"])
    rj = room_jid("exits")
    create(alice, "exits", "A")
    for c, n in ((bob, "B"), (carol, "C"), (dave, "D")):
        join(c, "exits", n)
    for c in (alice, bob, carol, dave):
        c.drain(0.3)
    # 303: nick change.
    bob.send("<presence to='%s/Bobby'/>" % rj)
    own = unavailable_with(bob, rj + "/B", 303)
    other = unavailable_with(alice, rj + "/B", 303)
    t.ok(110 in codes(own) and item(own).get("nick") == "Bobby" and 110 not in codes(other) and
         item(other).get("nick") == "Bobby", "303: the new nick in the item, 110 for the renamed")
    # 307: kick.
    admin(alice, "exits", "<item nick='C' role='none'/>")
    own = unavailable_with(carol, rj + "/C", 307)
    other = unavailable_with(dave, rj + "/C", 307)
    t.ok(110 in codes(own) and 110 not in codes(other), "307: the kicked and the others told")
    # 301: ban.
    admin(alice, "exits", "<item jid='dave@localhost' affiliation='outcast'/>")
    own = unavailable_with(dave, rj + "/D", 301)
    other = unavailable_with(alice, rj + "/D", 301)
    t.ok(110 in codes(own) and item(other).get("affiliation") == "outcast",
         "301: the banned and the others told, affiliation outcast")
    # 322: the room becomes members-only; bob (a member) stays, carol
    # (back in, no affiliation) goes.
    admin(alice, "exits", "<item jid='bob@localhost' affiliation='member'/>")
    join(carol, "exits", "C")
    for c in (alice, bob, carol):
        c.drain(0.3)
    configure(alice, "exits", [("muc#roomconfig_membersonly", "1")])
    own = unavailable_with(carol, rj + "/C", 322)
    other = unavailable_with(bob, rj + "/C", 322)
    t.ok(110 in codes(own) and 110 not in codes(other),
         "322: a non-member leaves when the room becomes members-only")
    t.ok(bob.maybe(lambda e: e.tag == q(NS_CLIENT, "presence") and
                   e.get("from") == rj + "/Bobby" and e.get("type") == "unavailable", 0.5)
         is None, "the member stays")
    # 321: a member of a members-only room loses the membership.
    admin(alice, "exits", "<item jid='bob@localhost' affiliation='none'/>")
    own = unavailable_with(bob, rj + "/Bobby", 321)
    other = unavailable_with(alice, rj + "/Bobby", 321)
    t.ok(110 in codes(own) and item(own).get("affiliation") == "none" and
         110 not in codes(other), "321: removed by an affiliation change, the others told")
    for c in (alice, bob, carol, dave):
        c.close()


def test_joined_limit(t, srv):
    """max_joined_rooms = 3: a fourth room is refused with
    resource-constraint and counted; leaving one frees a place; a second
    resource in a room it is in takes no place."""
    bob = Client(srv, "erin")
    bob2 = Client(srv, "erin", resource="two")
    before = metric(srv, "joins_refused")
    for i in range(3):
        create(bob, "lim%d" % i, "B")
    t.ok(join_error(bob, "lim3", "B") == "resource-constraint",
         "a fourth room past max_joined_rooms: resource-constraint")
    t.ok(metric(srv, "joins_refused") == before + 1, "counted in joins_refused")
    p = join(bob2, "lim0", "B")
    t.ok(p.get("type") is None, "another resource joins a room the user is in already")
    leave(bob, "lim2", "B")
    p = join(bob, "lim3", "B")
    t.ok(p.get("type") is None and 201 in codes(p), "after leaving one, a new one is possible")
    bob.close()
    bob2.close()


def test_history_restart(t, srv):
    """A persistent room's history across a clean restart, and 332 for
    its occupants when meerkatd stops."""
    alice, bob = clients(srv, ["alice", "bob"])
    create(alice, "lasting", "A", [("muc#roomconfig_persistentroom", "1"),
                                   ("muc#maxhistoryfetch", "3")])
    create(alice, "fleeting", "A")
    join(bob, "lasting", "B")
    join(bob, "fleeting", "B")
    for i in range(4):
        say(alice, "lasting", "h%d" % i)
    for i in range(4):
        bob.expect(is_groupchat(room_jid("lasting") + "/A", "h%d" % i), 5, "h%d" % i)
    starts = counted(srv)
    srv.restart()
    got = {}
    for c, who in ((alice, "A"), (bob, "B")):
        for room in ("lasting", "fleeting"):
            p = c.maybe(lambda e, r=room, w=who: e.tag == q(NS_CLIENT, "presence") and
                        e.get("from") == room_jid(r) + "/" + w and
                        e.get("type") == "unavailable", 5)
            got[(who, room)] = codes(p) if p is not None else None
    t.ok(all(v is not None and {110, 332} <= v for v in got.values()),
         "at shutdown every occupant of every room gets its unavailable presence with 110 "
         "and 332 before the stream closes (%s)" % got)
    t.ok(alice.closed.wait(10), "then the stream closes")
    ready(srv, starts + 1)
    carol = Client(srv, "carol")
    p = join(carol, "lasting", "C")
    t.ok(p.get("type") is None and 201 not in codes(p), "the persistent room is back")
    hist = []
    while True:
        e = carol.maybe(lambda e: e.tag == q(NS_CLIENT, "message"), 5)
        if e is None or e.find(q(NS_CLIENT, "subject")) is not None:
            break
        hist.append((e.findtext(q(NS_CLIENT, "body")), e.get("from"),
                     e.find(q(NS_DELAY, "delay")) is not None))
    t.ok(hist == [("h%d" % i, room_jid("lasting") + "/A", True) for i in (1, 2, 3)],
         "a joiner after the restart gets the last 3 messages (the room's history length), "
         "from their senders, with <delay/> (%s)" % hist)
    p = join(carol, "fleeting", "C")
    t.ok(201 in codes(p), "the temporary room is gone")
    carol.close()


def test_reload_goodbye(t, srv):
    """A reload that restarts mod_muc (its configuration changed): the
    occupants are told with 332, the server and their streams stay."""
    alice, bob = clients(srv, ["alice", "bob"])
    create(alice, "reloaded", "A", [("muc#roomconfig_persistentroom", "1")])
    join(bob, "reloaded", "B")
    say(alice, "reloaded", "before reload")
    bob.expect(is_groupchat(room_jid("reloaded") + "/A", "before reload"), 5, "message")
    starts = counted(srv)
    conf = os.path.join(srv.dir, "conf.d", "mod_muc.conf")
    with open(conf, "a") as f:
        f.write("max_nick_length = 50\n")
    srv.proc.send_signal(signal.SIGHUP)
    p = unavailable_with(bob, room_jid("reloaded") + "/B", 332, 10)
    t.ok({110, 332} <= codes(p), "a module restart: the occupant gets 110 and 332")
    p = unavailable_with(alice, room_jid("reloaded") + "/A", 332, 10)
    t.ok(p is not None, "every occupant")
    t.ok(wait_log(srv, r"configuration reloaded"), "the reload went through")
    t.ok(ready(srv, starts + 1), "and mod_muc started again")
    t.ok(bob.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "get",
                "localhost").get("type") == "result",
         "the client's stream stays open")
    p = join(bob, "reloaded", "B")
    t.ok(p.get("type") is None and 201 not in codes(p), "the room comes back on the next join")
    e = bob.expect(lambda e: e.tag == q(NS_CLIENT, "message") and
                   e.find(q(NS_DELAY, "delay")) is not None, 5, "history")
    t.ok(e.findtext(q(NS_CLIENT, "body")) == "before reload",
         "with its history from before the reload")
    alice.close()
    bob.close()


def main():
    t = Tap()
    srv = Server(MODULES)
    try:
        ready(srv)
        for u in USERS:
            srv.register(u)
        t.run("join codes", test_join_codes, srv)
        t.run("leave codes", test_leave_codes, srv)
        t.run("joined rooms limit", test_joined_limit, srv)
        t.run("reload goodbye", test_reload_goodbye, srv)
        t.run("history across a restart, 332", test_history_restart, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text(80))
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
