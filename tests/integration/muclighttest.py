"""MUC Light scenarios (urn:xmpp:muclight:0) shared by test-muclight.py
(sqlite) and test-muclight-pgsql.py (PostgreSQL): several real clients
per room, raw stanzas, protocol results asserted. Standard library only."""
import os
import subprocess
import time

from modtest import NS_CLIENT, TOP_BUILDDIR, Client, error_condition, online, q

ML = "urn:xmpp:muclight:0"
SVC = "muclight.localhost"
NS_SID = "urn:xmpp:sid:0"
NS_MAM = "urn:xmpp:mam:2"
NS_FWD = "urn:xmpp:forward:0"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DELAY = "urn:xmpp:delay"
NS_SM = "urn:xmpp:sm:3"

MODULES = {"mod_disco": None, "mod_roster": None, "mod_offline": None, "mod_register": None,
           "mod_mam": {"flush_interval_ms": 100},
           "mod_stream_management": {"resume_timeout": 30},
           "mod_muc_light": {"rooms_per_user": 4, "max_roomname_length": 20,
                             "max_room_id_length": 30}}


def up(srv, user, resource="r"):
    """A client whose initial presence the server has taken: what rooms
    send to its bare JID from then on reaches this session."""
    c = online(srv, user, resource)
    c.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == c.jid and
             e.get("type") is None, timeout=10, what="own presence")
    return c


def users(srv, *names):
    for n in names:
        srv.register(n)
    return ["%s@localhost" % n for n in names]


def create(c, to, members=(), owner=None, name=None, subject=None):
    conf = ""
    if name is not None:
        conf += "<roomname>%s</roomname>" % name
    if subject is not None:
        conf += "<subject>%s</subject>" % subject
    items = "".join("<user affiliation='member'>%s</user>" % m for m in members)
    if owner:
        items += "<user affiliation='owner'>%s</user>" % owner
    return c.iq("<query xmlns='%s#create'><configuration>%s</configuration>"
                "<occupants>%s</occupants></query>" % (ML, conf, items), "set", to=to)


def ok(el):
    return el.get("type") == "result"


def cond(el):
    return error_condition(el) if el.get("type") == "error" else None


def x_of(el, ns):
    return el.find(q(ML + ns, "x"))


def is_event(room, ns):
    def pred(e):
        return (e.tag == q(NS_CLIENT, "message") and e.get("type") == "groupchat" and
                e.get("from") == room and x_of(e, ns) is not None)
    return pred


def is_body(body):
    def pred(e):
        b = e.find(q(NS_CLIENT, "body"))
        return e.tag == q(NS_CLIENT, "message") and b is not None and b.text == body
    return pred


def affs_of(x):
    return sorted((u.text, u.get("affiliation")) for u in x.findall(q(ML + "#affiliations", "user")))


def text(x, ns, name):
    el = x.find(q(ns, name))
    return el.text if el is not None else None


def affs_get(c, room, version=None):
    v = "<version>%s</version>" % version if version else ""
    return c.iq("<query xmlns='%s#affiliations'>%s</query>" % (ML, v), to=room)


def affs_set(c, room, *items):
    body = "".join("<user affiliation='%s'>%s</user>" % (a, j) for j, a in items)
    return c.iq("<query xmlns='%s#affiliations'>%s</query>" % (ML, body), "set", to=room)


def config_set(c, room, **fields):
    body = "".join("<%s>%s</%s>" % (k, v, k) for k, v in fields.items())
    return c.iq("<query xmlns='%s#configuration'>%s</query>" % (ML, body), "set", to=room)


def say(c, room, body):
    c.send("<message to='%s' type='groupchat' id='%s'><body>%s</body></message>" %
           (room, c.new_id("m"), body))


def metric(srv, name):
    """The value SIGUSR1 makes meerkatd log for mod_muc_light.NAME (-1:
    none within 10 s)."""
    import re
    import signal
    want = re.compile(r"metric \S+\.mod_muc_light\.%s (\d+)" % name)

    def found():
        with open(srv.log_path, errors="replace") as f:
            return want.findall(f.read())
    before = len(found())  # earlier dumps (a server stopped before) do not count
    srv.proc.send_signal(signal.SIGUSR1)
    deadline = time.time() + 10
    while time.time() < deadline:
        now = found()
        if len(now) > before:
            return int(now[-1])
        time.sleep(0.05)
    return -1


def none_more(c, pred, wait=0.5):
    return c.maybe(pred, wait) is None


def restart(srv):
    """Stops meerkatd and starts it again on the same configuration and
    storage."""
    srv.restart()


# ---- scenarios --------------------------------------------------------------

def test_create(t, srv):
    a_j, b_j, c_j = users(srv, "cr_a", "cr_b", "cr_c")
    a, b, c = up(srv, "cr_a"), up(srv, "cr_b"), up(srv, "cr_c")
    room = "coven@" + SVC
    r = create(a, room, [b_j, c_j], name="A Dark Cave")
    t.ok(ok(r) and r.get("from") == room, "create at a chosen ID: result from the room")
    got = {}
    for cl, j in ((a, a_j), (b, b_j), (c, c_j)):
        n = cl.expect(is_event(room, "#affiliations"), what="creation notice")
        x = x_of(n, "#affiliations")
        got[j] = (affs_of(x), text(x, ML + "#affiliations", "version") is not None,
                  x.find(q(ML + "#affiliations", "prev-version")) is None)
    t.ok(got[a_j] == ([(a_j, "owner")], True, True) and
         got[b_j] == ([(b_j, "member")], True, True) and
         got[c_j] == ([(c_j, "member")], True, True),
         "each occupant is told its own affiliation and the version, no prev-version")
    t.ok(all(none_more(cl, is_event(room, "#affiliations"), 0.3) for cl in (a, b, c)),
         "one creation notice each")
    r = create(b, room, [a_j])
    t.ok(cond(r) == "conflict", "creating an existing room: conflict")
    r = create(a, SVC, [b_j], name="Random")
    n = b.expect(lambda e: e.tag == q(NS_CLIENT, "message") and
                 (e.get("from") or "").endswith("@" + SVC) and e.get("from") != room and
                 x_of(e, "#affiliations") is not None, what="random room notice")
    rid = n.get("from").split("@")[0]
    t.ok(ok(r) and len(rid) >= 8, "create at the service: a random room ID (%s)" % rid)
    a.drain(0.2)
    for bad, why in ((create(a, "r1@" + SVC, [a_j]), "the creator in the list"),
                     (create(a, "r2@" + SVC, [b_j, b_j]), "a user twice"),
                     (a.iq("<query xmlns='%s#create'><occupants><user affiliation='none'>%s"
                           "</user></occupants></query>" % (ML, b_j), "set", to="r3@" + SVC),
                      "affiliation none"),
                     (a.iq("<query xmlns='%s#create'><configuration><colour>red</colour>"
                           "</configuration></query>" % ML, "set", to="r4@" + SVC),
                      "an unknown configuration field"),
                     (create(a, "r5@" + SVC, name="x" * 21), "a room name over the limit"),
                     (create(a, "%s@%s" % ("i" * 31, SVC)), "a room ID over max_room_id_length"),
                     (a.iq("<query xmlns='%s#create'/>" % ML, "get", to="r6@" + SVC),
                      "a create of type get"),
                     (a.iq("<query xmlns='%s#create'><occupants><user affiliation='member'>"
                           "not a jid@@</user></occupants></query>" % ML, "set", to="r7@" + SVC),
                      "a malformed JID")):
        t.ok(cond(bad) == "bad-request", "create with %s: bad-request" % why)
    for cl in (a, b, c):
        cl.close()


def test_config(t, srv):
    a_j, b_j, c_j = users(srv, "cf_a", "cf_b", "cf_c")
    a, b, c = up(srv, "cf_a"), up(srv, "cf_b"), up(srv, "cf_c")
    room = "conf@" + SVC
    create(a, room, [b_j], name="Before", subject="s0")
    for cl in (a, b):
        cl.expect(is_event(room, "#affiliations"))
    r = a.iq("<query xmlns='%s#configuration'/>" % ML, to=room)
    v1 = text(r.find(q(ML + "#configuration", "query")), ML + "#configuration", "version")
    qr = r.find(q(ML + "#configuration", "query"))
    t.ok(ok(r) and v1 and text(qr, ML + "#configuration", "roomname") == "Before" and
         text(qr, ML + "#configuration", "subject") == "s0", "configuration get")
    r = a.iq("<query xmlns='%s#configuration'><version>%s</version></query>" % (ML, v1), to=room)
    t.ok(ok(r) and len(r) == 0, "the same version: an empty result")
    r = config_set(a, room, roomname="After")
    evs = [cl.expect(is_event(room, "#configuration")) for cl in (a, b)]
    xs = [x_of(e, "#configuration") for e in evs]
    v2 = text(xs[0], ML + "#configuration", "version")
    t.ok(ok(r) and all(text(x, ML + "#configuration", "prev-version") == v1 and
                       text(x, ML + "#configuration", "version") == v2 and v2 != v1 and
                       text(x, ML + "#configuration", "roomname") == "After" for x in xs),
         "a change: every occupant told with prev-version and version")
    t.ok(none_more(c, is_event(room, "#configuration"), 0.3), "a non-occupant is not told")
    t.ok(cond(config_set(b, room, roomname="Mine")) == "not-allowed",
         "a member changing the name: not-allowed")
    r = config_set(b, room, subject="member topic")
    t.ok(ok(r), "a member may change the subject")
    for cl in (a, b):
        cl.expect(is_event(room, "#configuration"))
    t.ok(cond(config_set(a, room, colour="red")) == "bad-request", "unknown field: bad-request")
    t.ok(cond(config_set(a, room, roomname="y" * 21)) == "bad-request",
         "name over max_roomname_length: bad-request")
    t.ok(cond(a.iq("<query xmlns='%s#configuration'/>" % ML, "set", to=room)) == "bad-request",
         "an empty change: bad-request")
    t.ok(cond(c.iq("<query xmlns='%s#configuration'/>" % ML, to=room)) == "item-not-found",
         "a non-occupant reading the configuration: item-not-found")
    t.ok(cond(config_set(c, room, subject="x")) == "item-not-found",
         "a non-occupant changing it: item-not-found")
    t.ok(cond(a.iq("<query xmlns='%s#configuration'/>" % ML, to="nosuch@" + SVC)) ==
         "item-not-found", "a room that does not exist: item-not-found")
    r = a.iq("<query xmlns='%s#info'/>" % ML, to=room)
    qi = r.find(q(ML + "#info", "query"))
    conf = qi.find(q(ML + "#info", "configuration")) if qi is not None else None
    occ = qi.find(q(ML + "#info", "occupants")) if qi is not None else None
    t.ok(ok(r) and conf is not None and text(conf, ML + "#info", "roomname") == "After" and
         sorted((u.text, u.get("affiliation")) for u in occ) ==
         [(a_j, "owner"), (b_j, "member")], "info: configuration and occupants in one")
    for cl in (a, b, c):
        cl.close()


def test_affiliations(t, srv):
    a_j, b_j, c_j, d_j, e_j = users(srv, "af_a", "af_b", "af_c", "af_d", "af_e")
    a, b, c, d, e = (up(srv, u) for u in ("af_a", "af_b", "af_c", "af_d", "af_e"))
    room = "affs@" + SVC
    create(a, room, [b_j, c_j])
    for cl in (a, b, c):
        cl.expect(is_event(room, "#affiliations"))
    r = affs_get(b, room)
    qa = r.find(q(ML + "#affiliations", "query"))
    v1 = text(qa, ML + "#affiliations", "version")
    t.ok(ok(r) and affs_of(qa) == sorted([(a_j, "owner"), (b_j, "member"), (c_j, "member")]),
         "affiliations get")
    t.ok(len(affs_get(b, room, v1)) == 0, "affiliations get at the same version: empty")
    # Add d, make b the owner, kick c: a is demoted.
    r = affs_set(a, room, (d_j, "member"), (b_j, "owner"), (c_j, "none"))
    full = sorted([(a_j, "member"), (b_j, "owner"), (c_j, "none"), (d_j, "member")])
    xa = x_of(a.expect(is_event(room, "#affiliations")), "#affiliations")
    xb = x_of(b.expect(is_event(room, "#affiliations")), "#affiliations")
    xc = x_of(c.expect(is_event(room, "#affiliations")), "#affiliations")
    xd = x_of(d.expect(is_event(room, "#affiliations")), "#affiliations")
    v2 = text(xa, ML + "#affiliations", "version")
    t.ok(ok(r), "owner changes three affiliations")
    t.ok(affs_of(xa) == full and affs_of(xb) == full and
         text(xa, ML + "#affiliations", "prev-version") == v1 and
         text(xb, ML + "#affiliations", "version") == v2,
         "who stays gets every change (the implied demotion too), both versions")
    t.ok(affs_of(xd) == [(d_j, "member")] and text(xd, ML + "#affiliations", "version") == v2 and
         xd.find(q(ML + "#affiliations", "prev-version")) is None,
         "a newcomer gets its own affiliation and the version only")
    t.ok(affs_of(xc) == [(c_j, "none")] and xc.find(q(ML + "#affiliations", "version")) is None,
         "the removed user gets only its own none")
    t.ok(all(none_more(cl, is_event(room, "#affiliations"), 0.3) for cl in (a, b, c, d, e)),
         "one notice each, none for outsiders")
    # Errors.
    t.ok(cond(affs_set(a, room, (d_j, "none"))) == "not-allowed", "a member kicking: not-allowed")
    t.ok(cond(affs_set(a, room, (e_j, "member"))) == "not-allowed",
         "a member inviting (all_can_invite off): not-allowed")
    t.ok(cond(affs_set(b, room, (d_j, "member"))) == "bad-request",
         "a change that changes nothing: bad-request")
    t.ok(cond(affs_set(b, room, (a_j, "owner"), (d_j, "owner"))) == "bad-request",
         "two owners: bad-request")
    t.ok(cond(b.iq("<query xmlns='%s#affiliations'><item role='participant'>%s</item></query>" %
                   (ML, d_j), "set", to=room)) == "bad-request", "a malformed item: bad-request")
    t.ok(cond(affs_set(e, room, (e_j, "member"))) == "item-not-found",
         "a non-occupant: item-not-found")
    t.ok(cond(affs_get(e, room)) == "item-not-found", "a non-occupant reading: item-not-found")
    # A member leaves.
    r = affs_set(d, room, (d_j, "none"))
    xd = x_of(d.expect(is_event(room, "#affiliations")), "#affiliations")
    xa = x_of(a.expect(is_event(room, "#affiliations")), "#affiliations")
    t.ok(ok(r) and affs_of(xd) == [(d_j, "none")] and affs_of(xa) == [(d_j, "none")],
         "a member leaves: it and the others are told")
    # The owner leaves without a successor: the first member is promoted.
    r = affs_set(b, room, (b_j, "none"))
    xa = x_of(a.expect(is_event(room, "#affiliations")), "#affiliations")
    b.expect(is_event(room, "#affiliations"))
    t.ok(ok(r) and affs_of(xa) == sorted([(a_j, "owner"), (b_j, "none")]),
         "the owner leaves: the remaining member becomes owner (promote_on_owner_leave)")
    # The last one leaves: the room is gone.
    r = affs_set(a, room, (a_j, "none"))
    a.expect(is_event(room, "#affiliations"))
    t.ok(ok(r) and cond(affs_get(a, room)) == "item-not-found",
         "the last occupant leaves: the room is destroyed")
    for cl in (a, b, c, d, e):
        cl.close()


def test_destroy(t, srv):
    a_j, b_j, c_j = users(srv, "de_a", "de_b", "de_c")
    a, b, c = up(srv, "de_a"), up(srv, "de_b"), up(srv, "de_c")
    room = "doomed@" + SVC
    create(a, room, [b_j])
    for cl in (a, b):
        cl.expect(is_event(room, "#affiliations"))
    destroy = "<query xmlns='%s#destroy'/>" % ML
    t.ok(cond(b.iq(destroy, "set", to=room)) == "not-allowed", "a member destroying: not-allowed")
    t.ok(cond(c.iq(destroy, "set", to=room)) == "item-not-found",
         "a non-occupant destroying: item-not-found")
    say(a, room, "before doom")
    for cl in (a, b):
        cl.expect(is_body("before doom"))
    r, res = mam(a, room)
    t.ok(ok(r) and any(m[1] == "before doom" for m in res), "the room's archive has the message")
    r = a.iq(destroy, "set", to=room)
    ns = []
    for cl, j in ((a, a_j), (b, b_j)):
        n = cl.expect(is_event(room, "#destroy"))
        ns.append(affs_of(x_of(n, "#affiliations")) == [(j, "none")])
    t.ok(ok(r) and all(ns), "destroyed: each occupant told its none with the #destroy element")
    t.ok(cond(affs_get(a, room)) == "item-not-found", "after destruction: item-not-found")
    t.ok(cond(a.iq(destroy, "set", to=room)) == "item-not-found",
         "destroying a room that is gone: item-not-found")
    # The archive goes with the room: a new room of the same JID starts
    # with an empty one.
    t.ok(ok(create(a, room, [b_j])), "a room of the same JID is created again")
    r, res = mam(a, room)
    t.ok(ok(r) and not any(m[1] == "before doom" for m in res),
         "the destroyed room's archive is gone (%s)" % [m[1] for m in res])
    for cl in (a, b, c):
        cl.close()


def test_blocking(t, srv):
    a_j, b_j, c_j = users(srv, "bl_a", "bl_b", "bl_c")
    a, b, c = up(srv, "bl_a"), up(srv, "bl_b"), up(srv, "bl_c")
    room1, room2 = "blk1@" + SVC, "blk2@" + SVC
    r = b.iq("<query xmlns='%s#blocking'><room action='deny'>%s</room></query>" % (ML, room1),
             "set", to=SVC)
    r2 = c.iq("<query xmlns='%s#blocking'><user action='deny'>%s</user></query>" % (ML, a_j),
              "set", to=SVC)
    t.ok(ok(r) and ok(r2), "blocking a room and a user")
    g = b.iq("<query xmlns='%s#blocking'/>" % ML, to=SVC)
    items = [(i.tag.split("}")[1], i.get("action"), i.text)
             for i in g.find(q(ML + "#blocking", "query"))]
    t.ok(items == [("room", "deny", room1)], "the blocking list")
    create(a, room1, [b_j, c_j])
    a.expect(is_event(room1, "#affiliations"))
    t.ok(affs_of(affs_get(a, room1).find(q(ML + "#affiliations", "query"))) == [(a_j, "owner")],
         "users who blocked the room or its creator are skipped silently")
    t.ok(none_more(b, is_event(room1, "#affiliations"), 0.3) and
         none_more(c, is_event(room1, "#affiliations"), 0.1), "and they hear nothing")
    b.iq("<query xmlns='%s#blocking'><room action='allow'>%s</room></query>" % (ML, room1),
         "set", to=SVC)
    r = affs_set(a, room1, (b_j, "member"))
    b.expect(is_event(room1, "#affiliations"))
    t.ok(ok(r), "after unblocking, the user can be added")
    create(b, room2, [c_j])
    c.expect(is_event(room2, "#affiliations"))
    t.ok(True, "a user blocking someone else can still be added by others")
    t.ok(cond(b.iq("<query xmlns='%s#blocking'><room action='maybe'>%s</room></query>" %
                   (ML, room1), "set", to=SVC)) == "bad-request", "a bad action: bad-request")
    t.ok(cond(b.iq("<query xmlns='%s#blocking'><user action='deny'>@@</user></query>" % ML,
                   "set", to=SVC)) == "bad-request", "a bad JID: bad-request")
    for cl in (a, b, c):
        cl.close()


def test_rooms_per_user(t, srv):
    a_j, b_j = users(srv, "lim_a", "lim_b")
    a = up(srv, "lim_a")
    for i in range(4):
        r = create(a, "lim%d@%s" % (i, SVC))
        t.ok(ok(r), "room %d of 4" % (i + 1)) if i in (0, 3) else None
    r = create(a, "lim4@" + SVC)
    t.ok(cond(r) == "not-allowed", "a fifth room over rooms_per_user: not-allowed")
    t.ok(metric(srv, "refused_rooms_per_user") >= 1, "and counted in refused_rooms_per_user")
    # Adding someone who is in rooms_per_user rooms already is refused too,
    # as a whole: the room does not change.
    c_j, = users(srv, "lim_c")
    c = up(srv, "lim_c")
    before = metric(srv, "refused_rooms_per_user")
    r = create(c, "limc@" + SVC, [a_j])
    t.ok(cond(r) == "not-allowed", "creating a room with a user at the limit: not-allowed")
    r = create(c, "limc2@" + SVC, [b_j])
    t.ok(ok(r), "a room with a user below the limit is created")
    c.expect(is_event("limc2@" + SVC, "#affiliations"))
    r = affs_set(c, "limc2@" + SVC, (a_j, "member"))
    t.ok(cond(r) == "not-allowed", "adding a user at the limit to a room: not-allowed")
    r = affs_get(c, "limc2@" + SVC)
    t.ok(affs_of(r.find(q(ML + "#affiliations", "query"))) ==
         sorted([(b_j, "member"), (c_j, "owner")]), "and the room is unchanged")
    t.ok(metric(srv, "refused_rooms_per_user") == before + 2,
         "each refusal counted in refused_rooms_per_user")
    # Leaving a room frees a place.
    r = affs_set(a, "lim0@" + SVC, (a_j, "none"))
    t.ok(ok(r) and ok(affs_set(c, "limc2@" + SVC, (a_j, "member"))),
         "a user who left a room may be added to another")
    a.close()
    c.close()


def test_messages(t, srv):
    a_j, b_j, c_j, o_j, x_j = users(srv, "ms_a", "ms_b", "ms_c", "ms_off", "ms_x")
    a, b, c, x = up(srv, "ms_a"), up(srv, "ms_b"), up(srv, "ms_c"), up(srv, "ms_x")
    room = "talk@" + SVC
    create(a, room, [b_j, c_j, o_j])
    for cl in (a, b, c):
        cl.expect(is_event(room, "#affiliations"))
    say(b, room, "hello all")
    got = {}
    for cl, j in ((a, a_j), (b, b_j), (c, c_j)):
        m = cl.expect(is_body("hello all"))
        sid = [s.get("id") for s in m.findall(q(NS_SID, "stanza-id")) if s.get("by") == room]
        got[j] = (m.get("from"), m.get("to"), m.get("type"), len(sid))
    t.ok(all(got[j] == (room + "/" + b_j, j, "groupchat", 1) for j in got),
         "every occupant (the sender too) gets it from room/sender, to its own JID, "
         "with one stanza-id of the room")
    t.ok(all(none_more(cl, is_body("hello all"), 0.3) for cl in (a, b, c)) and
         none_more(x, is_body("hello all"), 0.1), "exactly once each; outsiders get nothing")
    for i in range(5):
        say(c, room, "burst %d" % i)
    bodies = {}
    for cl, j in ((a, a_j), (b, b_j)):
        bodies[j] = [cl.expect(is_body("burst %d" % i)).find(q(NS_CLIENT, "body")).text
                     for i in range(5)]
    t.ok(bodies[a_j] == bodies[b_j] == ["burst %d" % i for i in range(5)],
         "a burst arrives in order")
    # Errors.
    x.send("<message to='%s' type='groupchat' id='nope'><body>intruder</body></message>" % room)
    e = x.expect(lambda e: e.get("id") == "nope")
    t.ok(cond(e) == "item-not-found", "a non-occupant's message: item-not-found")
    t.ok(none_more(a, is_body("intruder"), 0.3), "and nobody gets it")
    b.send("<message to='%s' type='chat' id='chat1'><body>private?</body></message>" % room)
    e = b.expect(lambda e: e.get("id") == "chat1")
    t.ok(cond(e) == "bad-request", "a message of type chat: bad-request")
    b.send("<message to='%s' type='groupchat' id='svc1'><body>x</body></message>" % SVC)
    e = b.expect(lambda e: e.get("id") == "svc1")
    t.ok(cond(e) == "bad-request", "groupchat to the service: bad-request")
    t.ok(cond(b.iq("<query xmlns='%s#create'/>" % ML, "set", to=room)) == "conflict",
         "creating over an existing room: conflict")
    # The archive, at the room's JID.
    time.sleep(0)  # the archive's writer flushes on its own; wait on the answer below
    deadline = time.time() + 10
    while True:
        r, res = mam(a, room)
        if len([m for m in res if m[1] in ("hello all",) or (m[1] or "").startswith("burst")]) \
                >= 6 or time.time() > deadline:
            break
        time.sleep(0.2)
    bs = [m[1] for m in res if m[1]]
    t.ok(ok(r) and bs == ["hello all"] + ["burst %d" % i for i in range(5)],
         "the room's archive at its JID: every message once, in order")
    t.ok(any(m[2] == room and m[1] is None for m in res),
         "the creation is archived as the room's own event")
    r, last = mam(a, room, "<max>2</max><before/>")
    t.ok(ok(r) and [m[1] for m in last] == ["burst 3", "burst 4"],
         "the archive's last page: <before/> empty (%s)" % [m[1] for m in last])
    r, prev = mam(a, room, "<max>2</max><before>%s</before>" % (last[0][0] if last else ""))
    t.ok(ok(r) and [m[1] for m in prev] == ["burst 1", "burst 2"],
         "and the page before it: <before>ID</before> (%s)" % [m[1] for m in prev])
    r, _ = mam(x, room)
    t.ok(cond(r) == "item-not-found", "a non-occupant asking the archive: item-not-found")
    # The offline member: notice and messages at the next login, once each.
    o = up(srv, "ms_off")
    evs, msgs = [], []
    deadline = time.time() + 10
    while time.time() < deadline and len(msgs) < 6:
        el = o.maybe(lambda e: e.tag == q(NS_CLIENT, "message"), 1.0)
        if el is None:
            continue
        if x_of(el, "#affiliations") is not None:
            evs.append(el)
        elif el.find(q(NS_CLIENT, "body")) is not None:
            msgs.append(el.find(q(NS_CLIENT, "body")).text)
    o.drain(0.5)
    t.ok(len(evs) == 1 and affs_of(x_of(evs[0], "#affiliations")) == [(o_j, "member")],
         "the offline member's creation notice arrives at login, once")
    t.ok(msgs == ["hello all"] + ["burst %d" % i for i in range(5)],
         "its messages arrive at login, in order, once each")
    for cl in (a, b, c, x, o):
        cl.close()


def mam(c, room, rsm=None):
    """(the IQ answer, [(id, body, from)]) of a MAM query at @room, with
    the XEP-0059 <set/> children @rsm."""
    qid = c.new_id("q")
    iid = c.new_id("mam")
    body = "<set xmlns='http://jabber.org/protocol/rsm'>%s</set>" % rsm if rsm else ""
    c.send("<iq type='set' id='%s' to='%s'><query xmlns='%s' queryid='%s'>%s</query></iq>" %
           (iid, room, NS_MAM, qid, body))
    fin = c.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == iid, 10)
    res = []
    while True:
        m = c.maybe(lambda e: e.find(q(NS_MAM, "result")) is not None and
                    e.find(q(NS_MAM, "result")).get("queryid") == qid, 0.1)
        if m is None:
            break
        inner = m.find("%s/%s/%s" % (q(NS_MAM, "result"), q(NS_FWD, "forwarded"),
                                     q(NS_CLIENT, "message")))
        b = inner.find(q(NS_CLIENT, "body"))
        res.append((m.find(q(NS_MAM, "result")).get("id"), b.text if b is not None else None,
                    inner.get("from")))
    return fin, res


def answers_of(srv, jid, room, *queries):
    """The error conditions (None: a result) of @queries (get) at @room by
    @jid's user, from a new session."""
    c = up(srv, jid.split("@")[0], "info")
    try:
        return [cond(c.iq(body, to=room)) for body in queries]
    finally:
        c.close()


def test_disco(t, srv):
    a_j, b_j = users(srv, "dc_a", "dc_b")
    a = up(srv, "dc_a")
    r = a.iq("<query xmlns='%s'/>" % NS_ITEMS, to="localhost")
    t.ok(SVC in [i.get("jid") for i in r.iter(q(NS_ITEMS, "item"))],
         "the server lists the MUC Light service")
    r = a.iq("<query xmlns='%s'/>" % NS_INFO, to=SVC)
    ids = [(i.get("category"), i.get("type")) for i in r.iter(q(NS_INFO, "identity"))]
    feats = [f.get("var") for f in r.iter(q(NS_INFO, "feature"))]
    t.ok(("conference", "text") in ids and ML in feats, "the service's identity and feature")
    create(a, "dcone@" + SVC, [b_j], name="One")
    create(a, "dctwo@" + SVC, name="Two")
    r = a.iq("<query xmlns='%s'/>" % NS_ITEMS, to=SVC)
    items = [(i.get("jid"), i.get("name"), bool(i.get("version")))
             for i in r.iter(q(NS_ITEMS, "item"))]
    t.ok(items == [("dcone@" + SVC, "One", True), ("dctwo@" + SVC, "Two", True)],
         "disco#items at the service: the user's rooms with name and version")
    rsm = "http://jabber.org/protocol/rsm"
    r = a.iq("<query xmlns='%s'><set xmlns='%s'><max>1</max></set></query>" % (NS_ITEMS, rsm),
             to=SVC)
    page = [i.get("jid") for i in r.iter(q(NS_ITEMS, "item"))]
    st = r.find("%s/%s" % (q(NS_ITEMS, "query"), q(rsm, "set")))
    t.ok(page == ["dcone@" + SVC] and text(st, rsm, "count") == "2" and
         text(st, rsm, "last") == "dcone@" + SVC, "disco#items pages with RSM (max 1)")
    r = a.iq("<query xmlns='%s'><set xmlns='%s'><max>5</max><after>dcone@%s</after></set></query>"
             % (NS_ITEMS, rsm, SVC), to=SVC)
    page = [i.get("jid") for i in r.iter(q(NS_ITEMS, "item"))]
    st = r.find("%s/%s" % (q(NS_ITEMS, "query"), q(rsm, "set")))
    t.ok(page == ["dctwo@" + SVC] and st.find(q(rsm, "first")).get("index") == "1",
         "and the next page after the last one seen")
    t.ok(cond(a.iq("<query xmlns='%s'><set xmlns='%s'><max>x</max></set></query>" %
                   (NS_ITEMS, rsm), to=SVC)) == "bad-request", "a bad <max/>: bad-request")
    # Paging backwards (XEP-0059 2.5): <before/> empty is the last page.
    # In JID order the rooms are dcone, dcthree, dctwo.
    create(a, "dcthree@" + SVC, name="Three")

    def page_of(rsm_body):
        r = a.iq("<query xmlns='%s'><set xmlns='%s'>%s</set></query>" % (NS_ITEMS, rsm, rsm_body),
                 to=SVC)
        st = r.find("%s/%s" % (q(NS_ITEMS, "query"), q(rsm, "set")))
        first = st.find(q(rsm, "first")) if st is not None else None
        return (cond(r), [i.get("jid").split("@")[0] for i in r.iter(q(NS_ITEMS, "item"))],
                first.get("index") if first is not None else None,
                text(st, rsm, "count") if st is not None else None)
    t.ok(page_of("<max>2</max><before/>") == (None, ["dcthree", "dctwo"], "1", "3"),
         "<before/> empty: the last page, its first index and the count (%s)" %
         (page_of("<max>2</max><before/>"),))
    t.ok(page_of("<max>1</max><before>dcthree@%s</before>" % SVC) == (None, ["dcone"], "0", "3"),
         "<before>ID</before>: the page before that room")
    t.ok(page_of("<max>5</max><before>dctwo@%s</before>" % SVC)[1] == ["dcone", "dcthree"],
         "a page before a room holds no more than what comes before it")
    t.ok(page_of("<max>1</max><index>2</index>")[1:3] == (["dctwo"], "2"),
         "<index/> jumps to a position")
    t.ok(page_of("<max>1</max><after>gone@%s</after>" % SVC)[0] == "item-not-found" and
         page_of("<max>1</max><before>gone@%s</before>" % SVC)[0] == "item-not-found",
         "a room not in the list in <after/> or <before/>: item-not-found")
    t.ok(page_of("<max>1</max><after>dcone@%s</after><before/>" % SVC)[0] == "bad-request",
         "<after/> with <before/>: bad-request")
    t.ok(cond(a.iq("<query xmlns='%s#info'/>" % ML, to="dctwo@" + SVC)) is None and
         answers_of(srv, b_j, "dctwo@" + SVC, "<query xmlns='%s#info'/>" % ML,
                    "<query xmlns='%s#affiliations'/>" % ML, "<query xmlns='%s'/>" % NS_INFO) ==
         ["item-not-found"] * 3,
         "#info, #affiliations and disco#info of a room by a non-occupant: item-not-found")
    r = a.iq("<query xmlns='%s'/>" % NS_INFO, to="dcone@" + SVC)
    t.ok([i.get("name") for i in r.iter(q(NS_INFO, "identity"))] == ["One"],
         "disco#info at a room")
    a.drain(0.3)
    a.send("<presence to='dcone@%s/x'/>" % SVC)
    t.ok(none_more(a, lambda e: (e.get("from") or "").startswith("dcone@"), 0.3),
         "presence to a room is ignored")
    t.ok(cond(a.iq("<query xmlns='urn:example:nothing'/>", to="dcone@" + SVC)) ==
         "service-unavailable", "an unknown IQ at a room: service-unavailable")
    a.close()


def test_restart(t, srv):
    a_j, b_j = users(srv, "rs_a", "rs_b")
    a = up(srv, "rs_a")
    room = "lasting@" + SVC
    create(a, room, [b_j], name="Lasting")
    a.expect(is_event(room, "#affiliations"))
    v = text(affs_get(a, room).find(q(ML + "#affiliations", "query")), ML + "#affiliations",
             "version")
    a.close()
    restart(srv)
    a, b = up(srv, "rs_a"), up(srv, "rs_b")
    r = affs_get(a, room)
    qa = r.find(q(ML + "#affiliations", "query"))
    t.ok(ok(r) and affs_of(qa) == sorted([(a_j, "owner"), (b_j, "member")]) and
         text(qa, ML + "#affiliations", "version") == v,
         "after a restart the room, its affiliations and its version are there")
    b.drain(0.5)
    say(a, room, "still here")
    t.ok(b.expect(is_body("still here")) is not None, "and it carries messages")
    a.close()
    b.close()


def test_stream_management(t, srv):
    """A room's copies written from the shared bytes still enter the
    XEP-0198 queue: unacknowledged ones come again after a resumption."""
    a_j, s_j = users(srv, "sm_a", "sm_s")
    a = up(srv, "sm_a")
    s = Client(srv, "sm_s")
    s.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    previd = s.expect(lambda e: e.tag == q(NS_SM, "enabled"), what="enabled").get("id")
    s.presence()
    s.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == s.jid,
             what="own presence")
    room = "smroom@" + SVC
    create(a, room, [s_j])
    s.expect(is_event(room, "#affiliations"))
    say(a, room, "sm one")
    say(a, room, "sm two")
    got = [s.expect(is_body(b)).get("to") for b in ("sm one", "sm two")]
    t.ok(got == [s_j, s_j], "a client with stream management gets the copies")
    # Acknowledge its presence echo and the notice, not the two messages.
    s.send("<a xmlns='%s' h='2'/>" % NS_SM)
    s.drop()
    time.sleep(0.3)
    c = Client(srv, "sm_s", bind=False)
    c.send("<resume xmlns='%s' previd='%s' h='2'/>" % (NS_SM, previd))
    res = c.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")), what="resumed")
    again = [c.maybe(is_body(b), 3) for b in ("sm one", "sm two")]
    t.ok(res.tag == q(NS_SM, "resumed") and all(e is not None and e.get("to") == s_j and
                                                e.get("from") == room + "/" + a_j
                                                for e in again),
         "after a resumption the unacknowledged copies come again, whole")
    t.ok(none_more(c, is_body("sm one"), 0.3), "once")
    a.close()
    c.close()


def test_account_removed(t, srv):
    """An account removed in-band (XEP-0077) leaves its rooms: the others
    are told as if it had left."""
    a_j, g_j = users(srv, "rm_a", "rm_gone")
    a, g = up(srv, "rm_a"), up(srv, "rm_gone")
    room = "rmroom@" + SVC
    create(a, room, [g_j])
    a.expect(is_event(room, "#affiliations"))
    r = g.iq("<query xmlns='jabber:iq:register'><remove/></query>", "set")
    x = x_of(a.expect(is_event(room, "#affiliations"), timeout=10), "#affiliations")
    t.ok(ok(r) and affs_of(x) == [(g_j, "none")], "the removed account leaves its rooms")
    qa = affs_get(a, room).find(q(ML + "#affiliations", "query"))
    t.ok(affs_of(qa) == [(a_j, "owner")], "and is gone from the member list")
    a.close()


OPEN_MODULES = dict(MODULES, mod_muc_light={"all_can_invite": "true", "all_can_configure": "true",
                                            "promote_on_owner_leave": "false"})


def test_options(t, srv):
    """On a server with all_can_invite, all_can_configure and without
    promote_on_owner_leave (OPEN_MODULES): what members may do then, and
    what stays the owner's (not-allowed, as the protocol names it)."""
    a_j, b_j, c_j, d_j = users(srv, "op_a", "op_b", "op_c", "op_d")
    a, b, c = up(srv, "op_a"), up(srv, "op_b"), up(srv, "op_c")
    room = "open@" + SVC
    create(a, room, [b_j])
    for cl in (a, b):
        cl.expect(is_event(room, "#affiliations"))
    r = affs_set(b, room, (c_j, "member"))
    t.ok(ok(r), "all_can_invite: a member adds a member")
    for cl in (a, b, c):
        cl.expect(is_event(room, "#affiliations"))
    t.ok(cond(affs_set(b, room, (d_j, "owner"))) == "not-allowed",
         "a member naming an owner: not-allowed")
    t.ok(cond(affs_set(b, room, (c_j, "none"))) == "not-allowed",
         "a member removing someone else: not-allowed")
    t.ok(cond(affs_set(b, room, (a_j, "member"))) == "not-allowed",
         "a member demoting the owner: not-allowed")
    t.ok(cond(b.iq("<query xmlns='%s#destroy'/>" % ML, "set", to=room)) == "not-allowed",
         "a member destroying the room: not-allowed")
    r = config_set(b, room, roomname="Renamed")
    t.ok(ok(r), "all_can_configure: a member renames the room")
    for cl in (a, b, c):
        cl.expect(is_event(room, "#configuration"))
    r = affs_set(a, room, (a_j, "none"))
    xb = x_of(b.expect(is_event(room, "#affiliations")), "#affiliations")
    t.ok(ok(r) and affs_of(xb) == [(a_j, "none")],
         "promote_on_owner_leave off: the owner leaves and nobody is promoted")
    r = affs_get(b, room)
    t.ok(affs_of(r.find(q(ML + "#affiliations", "query"))) ==
         sorted([(b_j, "member"), (c_j, "member")]), "the room goes on without an owner")
    for cl in (a, b, c):
        cl.close()
