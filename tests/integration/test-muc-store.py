#!/usr/bin/python3
"""mod_muc storage on sqlite (test-muc-pgsql.py runs the same scenarios
on PostgreSQL): a persistent room's configuration, subject and
affiliations survive a restart of meerkatd while a temporary room does
not; an empty persistent room hibernates after hibernate_after seconds
and wakes on the next stanza with its state; a room with logging
enabled (status 170) archives through mod_mam and answers XEP-0313
queries at its JID, page by page. Prints TAP; ignores --tap."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, Client, Server, Tap, error_condition, q  # noqa: E402
from muctest import (NS_ADMIN, NS_DATA, NS_DELAY, NS_INFO, admin, codes, create,  # noqa: E402
                     is_groupchat, item, join, join_error, leave, ready, restart, room_jid, say,
                     wait_log)

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"
MODULES = {"mod_disco": None, "mod_roster": None, "mod_mam": {"flush_interval_ms": 100},
           "mod_muc": {"hibernate_after": 1, "max_rooms_per_user": 2}}
USERS = ["alice", "bob", "carol"]


def log_count(srv, pattern):
    with open(srv.log_path, errors="replace") as f:
        return len(re.findall(pattern, f.read(), re.M))


def room_name(c, room):
    r = c.iq("<query xmlns='%s'/>" % NS_INFO, "get", room_jid(room))
    for i in r.iter(q(NS_INFO, "identity")):
        return i.get("name")
    return error_condition(r)


def mam_page(c, room, rsm):
    qid = c.new_id("q")
    reply = c.iq("<query xmlns='%s' queryid='%s'><set xmlns='%s'>%s</set></query>" %
                 (NS_MAM, qid, NS_RSM, rsm), "set", room_jid(room), timeout=20)
    out = []
    for el in list(c.backlog):
        r = el.find(q(NS_MAM, "result"))
        if r is not None and r.get("queryid") == qid:
            m = r.find("%s/%s" % (q(NS_FWD, "forwarded"), q(NS_CLIENT, "message")))
            out.append((r.get("id"), m.findtext(q(NS_CLIENT, "body")), m.get("from")))
            c.backlog.remove(el)
    return reply, out


def scenarios(t, srv):
    alice, bob, carol = [Client(srv, u) for u in USERS]
    create(alice, "keep", "A", [("muc#roomconfig_persistentroom", "1"),
                                ("muc#roomconfig_roomname", "Kept"),
                                ("muc#roomconfig_enablelogging", "1")])
    admin(alice, "keep", "<item jid='bob@localhost' affiliation='member'/>")
    admin(alice, "keep", "<item jid='carol@localhost' affiliation='outcast'/>")
    p = join(bob, "keep", "B")
    t.ok(170 in codes(p), "a room with logging enabled says so on join (170)")
    create(alice, "temp", "A")
    p = join(alice, "third", "A")
    t.ok(error_condition(p) == "not-allowed",
         "a third room of one creator (max_rooms_per_user = 2): not-allowed")
    # Room MAM: five messages, read in pages of two at the room's JID.
    for i in range(5):
        say(alice, "keep", "m%d" % i)
        bob.expect(is_groupchat(room_jid("keep") + "/A", "m%d" % i), 5, "m%d" % i)
    reply, page = mam_page(bob, "keep", "<max>2</max>")
    fin = reply.find(q(NS_MAM, "fin"))
    t.ok([b for _, b, _ in page] == ["m0", "m1"] and fin is not None and
         fin.get("complete") != "true", "room MAM: the first page of two (%s)" % page)
    last = fin.findtext("%s/%s" % (q(NS_RSM, "set"), q(NS_RSM, "last")))
    reply, page2 = mam_page(bob, "keep", "<max>2</max><after>%s</after>" % last)
    t.ok([b for _, b, _ in page2] == ["m2", "m3"] and
         all(f == room_jid("keep") + "/A" for _, _, f in page2),
         "the next page after the last ID, each from room/nick (%s)" % page2)
    last = reply.find(q(NS_MAM, "fin")).findtext("%s/%s" % (q(NS_RSM, "set"), q(NS_RSM, "last")))
    reply, page3 = mam_page(bob, "keep", "<max>2</max><after>%s</after>" % last)
    t.ok([b for _, b, _ in page3] == ["m4"] and
         reply.find(q(NS_MAM, "fin")).get("complete") == "true", "the last page is complete")
    reply, _ = mam_page(carol, "keep", "<max>2</max>")
    t.ok(error_condition(reply) == "forbidden", "an outcast queries the archive: forbidden")
    reply, _ = mam_page(alice, "temp", "<max>2</max>")
    t.ok(error_condition(reply) == "service-unavailable",
         "a room without logging keeps no archive: service-unavailable")
    alice.send("<message to='%s' type='groupchat'><subject>S1</subject></message>" %
               room_jid("keep"))
    alice.expect(lambda e: e.findtext(q(NS_CLIENT, "subject")) == "S1", 5, "subject")
    for c in (alice, bob, carol):
        c.close()

    counted = log_count(srv, r"mod_muc: \d+ stored rooms counted")
    restart(srv)
    # New rooms wait until the stored ones are counted (the limits).
    t.ok(wait_log(srv, r"(?s)" + r".*mod_muc: \d+ stored rooms counted" * (counted + 1)),
         "after the restart the stored rooms are counted")
    alice, bob, carol = [Client(srv, u) for u in USERS]
    t.ok(room_name(bob, "keep") == "Kept", "after a restart the persistent room has its name")
    t.ok(room_name(bob, "temp") == "item-not-found", "the temporary room is gone")
    p = join(alice, "temp2", "A")
    t.ok(201 in codes(p), "after the restart the gone temporary room no longer counts")
    p = join(alice, "third", "A")
    t.ok(error_condition(p) == "not-allowed",
         "the stored room still counts for its creator: a third is not-allowed")
    p = join(alice, "keep", "A")
    t.ok(p.get("type") is None and 201 not in codes(p) and item(p).get("affiliation") == "owner",
         "its owner joins: no 201, still owner")
    s = alice.expect(lambda e: e.find(q(NS_CLIENT, "subject")) is not None and
                     e.get("from", "").startswith(room_jid("keep")), 5, "subject")
    t.ok(s.findtext(q(NS_CLIENT, "subject")) == "S1", "the subject survived")
    t.ok(join_error(carol, "keep", "C") == "forbidden", "the ban survived")
    r = admin(alice, "keep", "<item affiliation='member'/>", "get")
    t.ok([i.get("jid") for i in r.iter(q(NS_ADMIN, "item"))] == ["bob@localhost"],
         "the member list survived")
    reply, page = mam_page(bob, "keep", "<max>10</max>")
    t.ok(len(page) == 6, "the room's archive survived: five messages and the subject (%d)"
         % len(page))

    # Hibernation: the room empties, goes out of memory, and wakes.
    hib = log_count(srv, r"room keep@conference\.localhost hibernates")
    loads = log_count(srv, r"room keep@conference\.localhost loaded")
    say(alice, "keep", "before sleep")
    alice.expect(is_groupchat(room_jid("keep") + "/A", "before sleep"), 5, "echo")
    leave(alice, "keep", "A")
    t.ok(wait_log(srv, r"room keep@conference\.localhost hibernates", 20) and
         log_count(srv, r"room keep@conference\.localhost hibernates") == hib + 1,
         "an empty persistent room hibernates after hibernate_after")
    p = join(bob, "keep", "B")
    t.ok(p.get("type") is None and 201 not in codes(p) and item(p).get("affiliation") == "member",
         "a join wakes it with its affiliations")
    hist = []
    while True:
        h = bob.maybe(lambda e: e.tag == q(NS_CLIENT, "message"), 5)
        if h is None or h.find(q(NS_CLIENT, "subject")) is not None:
            break
        if h.find(q(NS_DELAY, "delay")) is not None:
            hist.append((h.findtext(q(NS_CLIENT, "body")), h.get("from")))
    t.ok(hist == [("m%d" % i, room_jid("keep") + "/A") for i in range(5)] +
         [("before sleep", room_jid("keep") + "/A")],
         "and with its discussion history: from before the restart (written at shutdown) "
         "and from before the hibernation (%s)" % hist)
    t.ok(log_count(srv, r"room keep@conference\.localhost loaded") == loads + 1,
         "waking read it from the database once")
    t.ok(room_name(carol, "keep") == "Kept", "and its configuration")
    for c in (alice, bob, carol):
        c.close()


def main():
    t = Tap()
    srv = Server(MODULES)
    try:
        ready(srv)
        for u in USERS:
            srv.register(u)
        t.run("storage", scenarios, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text(40))
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
