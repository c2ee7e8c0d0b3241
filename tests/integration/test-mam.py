#!/usr/bin/python3
"""mod_mam (XEP-0313, XEP-0359, XEP-0424): archiving 1:1 messages in
both archives under one stanza ID, what is not archived, queries with
every filter and paging edge, bad requests, another user's archive,
preferences, retraction, ordering under concurrent senders,
read-your-writes, the account's removal, the writer riding out a locked
database, and SIGTERM flushing the queue. Prints TAP; ignores --tap."""
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mamv1  # noqa: E402
from modtest import (NS_CLIENT, TOP_BUILDDIR, Client, Server, Tap, error_condition,  # noqa: E402
                     online, q)

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_DATA = "jabber:x:data"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_RETRACT = "urn:xmpp:message-retract:1"

MODULES = {"mod_disco": None, "mod_roster": None, "mod_offline": None}


def up(srv, user, resource="r"):
    """online(), and back once the server has made the resource available
    (its own presence came back): messages sent to it after that are
    delivered, not stored offline."""
    c = online(srv, user, resource)
    c.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == c.jid and
             e.get("type") is None, timeout=10, what="own presence")
    return c


def stanza_ids(el):
    return [(s.get("by"), s.get("id")) for s in el.findall(q(NS_SID, "stanza-id"))]


def is_chat(body):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and
                      e.findtext(q(NS_CLIENT, "body")) == body)


def field(var, *values):
    return "<field var='%s'>%s</field>" % (var, "".join("<value>%s</value>" % v for v in values))


def query(c, form="", rsm="", extra="", to=None, qid=None):
    """Runs one archive query: (iq reply, [result elements], fin)."""
    qid = qid or c.new_id("q")
    body = "<query xmlns='%s' queryid='%s'>" % (NS_MAM, qid)
    if form:
        body += ("<x xmlns='%s' type='submit'>%s%s</x>" %
                 (NS_DATA, field("FORM_TYPE", NS_MAM), form))
    if rsm:
        body += "<set xmlns='%s'>%s</set>" % (NS_RSM, rsm)
    body += extra + "</query>"
    reply = c.iq(body, type="set", to=to, timeout=10)
    results = []
    if reply.get("type") == "result":
        # Every result came before the reply: they are in the backlog now.
        for el in list(c.backlog):
            r = el.find(q(NS_MAM, "result"))
            if r is not None and r.get("queryid") == qid:
                results.append(r)
                c.backlog.remove(el)
    return reply, results, reply.find(q(NS_MAM, "fin"))


def bodies(results):
    return [r.find("%s/%s/%s" % (q(NS_FWD, "forwarded"), q(NS_CLIENT, "message"),
                                 q(NS_CLIENT, "body"))).text for r in results]


def rsm_text(fin, name):
    return fin.findtext("%s/%s" % (q(NS_RSM, "set"), q(NS_RSM, name)))


def send_chat(frm, to, body, extra=""):
    frm.send("<message to='%s' type='chat' id='%s'><body>%s</body>%s</message>" %
             (to, frm.new_id("m"), body, extra))


def test_disco(t, srv):
    a = up(srv, "alice")
    r = a.iq("<query xmlns='%s'/>" % NS_INFO, to=a.bare)
    vars_ = [f.get("var") for f in r.iter(q(NS_INFO, "feature"))]
    for v in (NS_MAM, NS_MAM + "#extended", NS_SID):
        t.ok(v in vars_, "the account's disco#info lists " + v)
    a.close()


def test_both_archives(t, srv):
    a, b = up(srv, "alice"), up(srv, "bob")
    send_chat(a, b.bare, "hello bob", "<stanza-id xmlns='%s' by='%s' id='forged'/>"
              "<origin-id xmlns='%s' id='o-1'/>" % (NS_SID, b.bare, NS_SID))
    m = b.expect(is_chat("hello bob"))
    ids = stanza_ids(m)
    mine = [i for by, i in ids if by == b.bare]
    t.ok(len(mine) == 1 and mine[0] != "forged",
         "the recipient sees one stanza-id by its bare JID, the client's forged one removed")
    t.ok(m.find(q(NS_SID, "origin-id")) is not None, "the origin-id is kept")
    # Read-your-writes: queried at once, before any flush interval.
    _, ra, _ = query(a, form=field("with", b.bare))
    _, rb, _ = query(b, form=field("with", a.bare))
    t.ok(bodies(ra) == ["hello bob"], "the sender's archive has the message at once")
    t.ok(bodies(rb) == ["hello bob"], "the recipient's archive has it at once")
    t.ok(ra and rb and ra[0].get("id") == rb[0].get("id") == mine[0],
         "both copies share the ID the recipient saw")
    fwd = rb[0].find(q(NS_FWD, "forwarded")) if rb else None
    t.ok(fwd is not None and fwd.find(q(NS_DELAY, "delay")) is not None and
         fwd.find(q(NS_DELAY, "delay")).get("stamp", "").endswith("Z"),
         "a result carries <forwarded> with an XEP-0203 delay stamp")
    # Both copies are stored as one text, without the recipient's own tag:
    # each archive shows the message as its owner got it.
    fwd_a = ra[0].find("%s/%s" % (q(NS_FWD, "forwarded"), q(NS_CLIENT, "message"))) if ra else None
    fwd_b = fwd.find(q(NS_CLIENT, "message")) if fwd is not None else None
    t.ok(fwd_a is not None and stanza_ids(fwd_a) == [(a.bare, mine[0])],
         "the sender's copy carries the sender's stanza-id only")
    t.ok(fwd_b is not None and stanza_ids(fwd_b) == stanza_ids(m) == [(a.bare, mine[0]),
                                                                     (b.bare, mine[0])],
         "the recipient's copy carries both stanza-ids, as it was delivered")
    a.close()
    b.close()


def test_not_archived(t, srv):
    a, b = up(srv, "alice"), up(srv, "carol")
    a.send("<message to='%s' type='chat'><body>secret</body>"
           "<no-store xmlns='urn:xmpp:hints'/></message>" % b.bare)
    m = b.expect(is_chat("secret"))
    t.ok(not stanza_ids(m), "a no-store message carries no stanza-id")
    a.send("<message to='%s' type='headline'><body>news</body></message>" % b.bare)
    b.expect(is_chat("news"))
    a.send("<message to='%s' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/>"
           "</message>" % b.bare)
    a.send("<message to='%s' type='chat'><body>kept</body></message>" % b.bare)
    b.expect(is_chat("kept"))
    _, rb, _ = query(b, form=field("with", a.bare))
    t.ok(bodies(rb) == ["kept"], "no-store, headline and a chat state alone are not archived")
    a.close()
    b.close()


def test_paging(t, srv):
    a, b = up(srv, "dave"), up(srv, "erin")
    for i in range(25):
        send_chat(a, b.bare, "p%02d" % i)
    b.expect(is_chat("p24"))
    want = ["p%02d" % i for i in range(25)]
    reply, r1, fin = query(b, rsm="<max>10</max>")
    t.ok(bodies(r1) == want[:10], "the first page: the 10 oldest, in order")
    t.ok(fin is not None and fin.get("complete") != "true", "the first page is not complete")
    t.ok(rsm_text(fin, "first") == r1[0].get("id") and rsm_text(fin, "last") == r1[-1].get("id"),
         "<first> and <last> name the page's ends")
    _, r2, fin2 = query(b, rsm="<max>10</max><after>%s</after>" % rsm_text(fin, "last"))
    _, r3, fin3 = query(b, rsm="<max>10</max><after>%s</after>" % rsm_text(fin2, "last"))
    t.ok(bodies(r2) == want[10:20] and bodies(r3) == want[20:], "paging forward with <after>")
    t.ok(fin3.get("complete") == "true", "the last page is complete")
    _, r4, fin4 = query(b, rsm="<max>10</max><after>%s</after>" % rsm_text(fin3, "last"))
    t.ok(r4 == [] and fin4.get("complete") == "true" and rsm_text(fin4, "first") is None,
         "after the last message: an empty, complete page")
    _, rl, finl = query(b, rsm="<max>10</max><before/>")
    t.ok(bodies(rl) == want[15:], "an empty <before/>: the last page, in order")
    _, rb2, finb = query(b, rsm="<max>10</max><before>%s</before>" % rsm_text(finl, "first"))
    _, rb3, finb3 = query(b, rsm="<max>10</max><before>%s</before>" % rsm_text(finb, "first"))
    t.ok(bodies(rb2) == want[5:15] and bodies(rb3) == want[:5], "paging backward with <before>")
    t.ok(finb3.get("complete") == "true" and finb.get("complete") != "true",
         "backward: complete only at the oldest message")
    _, rc, finc = query(b, rsm="<max>0</max>")
    t.ok(rc == [] and rsm_text(finc, "count") == "25", "<max>0</max>: the count only")
    _, rpart, finpart = query(b, rsm="<max>20</max>")
    t.ok(len(rpart) == 20 and rsm_text(finpart, "count") is None and
         finpart.get("complete") != "true",
         "a page of a larger set: no count (it would cost a scan), not complete")
    _, rbig, _ = query(b, rsm="<max>500</max>")
    t.ok(len(rbig) == 20, "a page over max_result_limit is cut to it")
    _, rf, _ = query(b, rsm="<max>5</max>", extra="<flip-page/>")
    t.ok(bodies(rf) == list(reversed(want[:5])), "<flip-page/> reverses the page")
    _, ri, fini = query(b, rsm="<max>5</max><index>7</index>")
    t.ok(bodies(ri) == want[7:12], "<index> skips into the result set")
    first = fini.find("%s/%s" % (q(NS_RSM, "set"), q(NS_RSM, "first")))
    t.ok(first is not None and first.get("index") == "7", "<first index='7'>")
    empty_user = up(srv, "frank")
    _, re_, fine = query(empty_user)
    t.ok(re_ == [] and fine.get("complete") == "true" and rsm_text(fine, "count") == "0",
         "an empty archive: no results, complete, count 0")
    empty_user.close()
    a.close()
    b.close()


def test_filters(t, srv):
    a, b, c = up(srv, "gina", resource="phone"), up(srv, "hank"), up(srv, "ivan")
    send_chat(a, b.bare, "from gina 1")
    b.expect(is_chat("from gina 1"))
    time.sleep(0.01)  # distinct microseconds for the time bounds below
    send_chat(c, b.bare, "from ivan")
    m = b.expect(is_chat("from ivan"))
    middle = [i for by, i in stanza_ids(m) if by == b.bare][0]
    send_chat(a, b.bare, "from gina 2")
    b.expect(is_chat("from gina 2"))
    _, r, _ = query(b, form=field("with", a.bare))
    t.ok(bodies(r) == ["from gina 1", "from gina 2"], "'with' a bare JID")
    _, r, _ = query(b, form=field("with", a.bare + "/phone"))
    t.ok(bodies(r) == ["from gina 1", "from gina 2"], "'with' a full JID")
    _, r, _ = query(b, form=field("with", a.bare + "/laptop"))
    t.ok(r == [], "'with' another resource: nothing")
    _, r, _ = query(b, form=field("after-id", middle))
    t.ok(bodies(r) == ["from gina 2"], "after-id")
    _, r, _ = query(b, form=field("before-id", middle))
    t.ok(bodies(r) == ["from gina 1"], "before-id")
    _, r, _ = query(b, form=field("ids", middle))
    t.ok(bodies(r) == ["from ivan"], "ids")
    _, r, _ = query(b, form=field("start", "2000-01-01T00:00:00Z") +
                    field("end", "2001-01-01T00:00:00Z"))
    t.ok(r == [], "start/end in the past: nothing")
    _, r, _ = query(b, form=field("start", "2000-01-01T00:00:00Z"))
    t.ok(len(r) == 3, "start in the past: everything")
    _, r, fin = query(b, rsm="<max>10</max>")
    t.ok(len(r) == 3 and rsm_text(fin, "count") == "3" and fin.get("complete") == "true",
         "one page holding everything: count and complete")
    _, r, _ = query(b, form=field("end", "2000-01-01T00:00:00+02:00"))
    t.ok(r == [], "end in the past (with a zone offset): nothing")
    a.close()
    b.close()
    c.close()


def test_bad_requests(t, srv):
    a = up(srv, "judy")
    cases = [
        (field("colour", "red"), "", "bad-request", "colour"),
        (field("start", "yesterday"), "", "bad-request", "start"),
        (field("with", "@@"), "", "bad-request", "with"),
        (field("after-id", "not-an-id"), "", "bad-request", "after-id"),
        ("", "<max>-3</max>", "bad-request", "max"),
        (field("after-id", "0000000000001"), "", "item-not-found", None),
        (field("before-id", "0000000000001"), "", "item-not-found", None),
        ("", "<after>0000000000001</after>", "item-not-found", None),
    ]
    for form, rsm, cond, names in cases:
        reply, _, _ = query(a, form=form, rsm=rsm)
        text = reply.findtext(".//{urn:ietf:params:xml:ns:xmpp-stanzas}text") or ""
        t.ok(reply.get("type") == "error" and error_condition(reply) == cond and
             (names is None or names in text),
             "%s %s: %s%s" % (form or rsm, "", cond, " naming " + names if names else ""))
    b = up(srv, "kate")
    reply, _, _ = query(a, to=b.bare)
    t.ok(reply.get("type") == "error" and error_condition(reply) == "forbidden",
         "another user's archive: forbidden")
    form = a.iq("<query xmlns='%s'/>" % NS_MAM)
    vars_ = [f.get("var") for f in form.iter(q(NS_DATA, "field"))]
    t.ok(all(v in vars_ for v in ("FORM_TYPE", "with", "start", "end", "before-id", "after-id",
                                  "ids")), "the query form lists every field")
    a.close()
    b.close()


def test_prefs(t, srv):
    a, b, c = up(srv, "liam"), up(srv, "mona"), up(srv, "ned")
    r = a.iq("<prefs xmlns='%s'/>" % NS_MAM)
    p = r.find(q(NS_MAM, "prefs"))
    t.ok(p is not None and p.get("default") == "always", "default preferences: always")
    r = a.iq("<prefs xmlns='%s' default='never'><always><jid>%s</jid></always><never/></prefs>"
             % (NS_MAM, c.bare), type="set")
    p = r.find(q(NS_MAM, "prefs"))
    t.ok(p is not None and p.get("default") == "never" and
         [j.text for j in p.iter(q(NS_MAM, "jid"))] == [c.bare], "preferences set and echoed")
    send_chat(b, a.bare, "not kept")
    m = a.expect(is_chat("not kept"))
    t.ok(not [1 for by, _ in stanza_ids(m) if by == a.bare], "default never: no stanza-id by me")
    send_chat(c, a.bare, "kept always")
    m = a.expect(is_chat("kept always"))
    t.ok([1 for by, _ in stanza_ids(m) if by == a.bare], "a JID in <always>: tagged")
    _, r, _ = query(a)
    t.ok(bodies(r) == ["kept always"], "only the <always> JID's message is archived")
    _, rb, _ = query(b)
    t.ok(bodies(rb) == ["not kept"], "the sender's own archive follows the sender's preferences")
    r = a.iq("<prefs xmlns='%s' default='sometimes'/>" % NS_MAM, type="set")
    t.ok(error_condition(r) == "bad-request", "a bad default: bad-request")
    r = a.iq("<prefs xmlns='%s'/>" % NS_MAM)
    t.ok(r.find(q(NS_MAM, "prefs")).get("default") == "never", "preferences read back")
    a.close()
    b.close()
    c.close()


def test_prefs_roster(t, srv):
    a, inside, outside = up(srv, "rosa"), up(srv, "ines"), up(srv, "otto")
    r = a.iq("<query xmlns='jabber:iq:roster'><item jid='%s'/></query>" % inside.bare,
             type="set")
    t.ok(r.get("type") == "result", "a contact in the roster")
    r = a.iq("<prefs xmlns='%s' default='roster'/>" % NS_MAM, type="set")
    t.ok(r.find(q(NS_MAM, "prefs")).get("default") == "roster", "default roster set")

    def tagged(frm, body):
        send_chat(frm, a.bare, body)
        m = a.expect(is_chat(body))
        return bool([1 for by, _ in stanza_ids(m) if by == a.bare])
    t.ok(tagged(inside, "from a contact"), "roster mode: a contact's message is archived")
    t.ok(not tagged(outside, "from a stranger"), "roster mode: a stranger's is not")
    r = a.iq("<query xmlns='jabber:iq:roster'><item jid='%s'/></query>" % outside.bare,
             type="set")
    t.ok(r.get("type") == "result", "the stranger added to the roster")
    t.ok(tagged(outside, "now a contact"), "after the roster change: archived")
    _, got, _ = query(a)
    t.ok(bodies(got) == ["from a contact", "now a contact"], "the archive holds exactly those")
    a.close()
    inside.close()
    outside.close()


def test_retraction(t, srv):
    a, b = up(srv, "olga"), up(srv, "pete")
    send_chat(a, b.bare, "oops", "<origin-id xmlns='%s' id='orig-7'/>" % NS_SID)
    b.expect(is_chat("oops"))
    send_chat(a, b.bare, "stays")
    b.expect(is_chat("stays"))
    a.send("<message to='%s' type='chat'><retract xmlns='%s' id='orig-7'/>"
           "<body>retracted</body></message>" % (b.bare, NS_RETRACT))
    b.expect(lambda e: e.find(q(NS_RETRACT, "retract")) is not None)

    def tombstoned(c):
        deadline = time.time() + 5
        while time.time() < deadline:
            _, r, _ = query(c)
            inner = [x.find("%s/%s" % (q(NS_FWD, "forwarded"), q(NS_CLIENT, "message")))
                     for x in r]
            if (len(inner) == 2 and inner[0].find(q(NS_RETRACT, "retracted")) is not None and
                    inner[0].findtext(q(NS_CLIENT, "body")) is None and
                    inner[1].findtext(q(NS_CLIENT, "body")) == "stays"):
                return True
            time.sleep(0.05)
        return False
    t.ok(tombstoned(a), "retraction: a tombstone in the sender's archive, the rest kept")
    t.ok(tombstoned(b), "retraction: a tombstone in the recipient's archive")
    # Someone else cannot retract it.
    send_chat(b, a.bare, "mine", "<origin-id xmlns='%s' id='orig-8'/>" % NS_SID)
    a.expect(is_chat("mine"))
    a.send("<message to='%s' type='chat'><retract xmlns='%s' id='orig-8'/></message>" %
           (b.bare, NS_RETRACT))
    b.expect(lambda e: e.find(q(NS_RETRACT, "retract")) is not None)
    _, r, _ = query(b, form=field("with", a.bare))
    t.ok("mine" in bodies([x for x in r if x.find(".//" + q(NS_CLIENT, "body")) is not None]),
         "only the original sender retracts")
    a.close()
    b.close()


def test_concurrent(t, srv):
    sink = up(srv, "quinn")
    senders = [up(srv, "s%d" % i) for i in range(3)]
    n = 40

    def blast(c):
        for i in range(n):
            send_chat(c, sink.bare, "%s-%03d" % (c.user, i))
    threads = [threading.Thread(target=blast, args=(c,)) for c in senders]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for c in senders:
        sink.expect(is_chat("%s-%03d" % (c.user, n - 1)), timeout=10)
    got, after = [], None
    while True:
        rsm = "<max>50</max>" + ("<after>%s</after>" % after if after else "")
        _, r, fin = query(sink, rsm=rsm)
        got += [(x.get("id"), b) for x, b in zip(r, bodies(r))]
        if fin.get("complete") == "true":
            break
        after = rsm_text(fin, "last")
    ids = [i for i, _ in got]
    t.ok(len(got) == 3 * n and len(set(ids)) == 3 * n, "concurrent senders: %d archived, "
         "each once (got %d, %d distinct)" % (3 * n, len(got), len(set(ids))))
    t.ok(ids == sorted(ids), "IDs increase through the archive")
    for c in senders:
        mine = [b for _, b in got if b.startswith(c.user + "-")]
        t.ok(mine == ["%s-%03d" % (c.user, i) for i in range(n)],
             "%s's messages in the order sent" % c.user)
    for c in senders + [sink]:
        c.close()


def test_offline_recipient(t, srv):
    a = up(srv, "rita")
    srv.register("sam")
    send_chat(a, "sam@localhost", "while away")
    a.close()
    b = up(srv, "sam")
    b.presence()
    m = b.expect(is_chat("while away"))
    tag = [i for by, i in stanza_ids(m) if by == b.bare]
    _, r, _ = query(b)
    t.ok(len(tag) == 1 and [x.get("id") for x in r] == tag,
         "an offline recipient: archived once, the offline copy carries its stanza-id")
    b.close()


def test_removal(t, srv):
    a, b = up(srv, "tina"), up(srv, "uma")
    send_chat(a, b.bare, "bye")
    b.expect(is_chat("bye"))
    query(b)  # written
    before = srv.sql("SELECT COUNT(*) FROM mam_user_message WHERE username = 'uma'")[0][0]
    b.close()
    subprocess.run([os.path.join(TOP_BUILDDIR, "tools", "meerkatctl"), "-c", srv.conf,
                    "unregister", "uma", "localhost"], check=True, capture_output=True)
    after = srv.sql("SELECT COUNT(*) FROM mam_user_message WHERE username = 'uma'")[0][0]
    t.ok(before == 1 and after == 0, "the archive goes with the account (%d -> %d)" %
         (before, after))
    a.close()


def test_removal_texts(t, srv):
    """A text no other archive lists goes with the account; one that
    another local archive lists stays for it."""
    a, b = up(srv, "ida"), up(srv, "oleg")
    send_chat(b, "far@remote.example", "only oleg's")
    send_chat(b, a.bare, "shared with ida")
    a.expect(is_chat("shared with ida"))
    query(b)
    query(a)

    def texts(body):
        return srv.sql("SELECT COUNT(*) FROM mam_message WHERE xml LIKE '%%%s%%'" % body)[0][0]
    before = (texts("only oleg"), texts("shared with ida"))
    b.close()
    subprocess.run([os.path.join(TOP_BUILDDIR, "tools", "meerkatctl"), "-c", srv.conf,
                    "unregister", "oleg", "localhost"], check=True, capture_output=True)
    after = (texts("only oleg"), texts("shared with ida"))
    _, r, _ = query(a)
    t.ok(before == (1, 1) and after == (0, 1) and "shared with ida" in bodies(r),
         "removal: oleg's own texts go, the one ida's archive lists stays (%s -> %s)" %
         (before, after))
    a.close()


def test_locked_database(t, srv):
    a, b = up(srv, "vera"), up(srv, "walt")
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10,
                         isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    for i in range(5):
        send_chat(a, b.bare, "locked %d" % i)
    got = [b.maybe(is_chat("locked %d" % i), timeout=10) is not None for i in range(5)]
    t.ok(all(got), "messages are delivered while the archive cannot be written")
    deadline = time.time() + 15
    while time.time() < deadline and "failed_batches" not in srv.log_text(400) \
            and "writing" not in srv.log_text(400):
        time.sleep(0.05)
    db.execute("COMMIT")
    db.close()
    deadline = time.time() + 30
    n = 0
    while time.time() < deadline:
        n = srv.sql("SELECT COUNT(*) FROM mam_user_message WHERE username = 'walt'")[0][0]
        if n == 5:
            break
        time.sleep(0.1)
    t.ok(n == 5, "after the lock: every message is in the archive (%d of 5)" % n)
    _, r, _ = query(b)
    t.ok(bodies(r) == ["locked %d" % i for i in range(5)], "in order, each once")
    a.close()
    b.close()


def room_module_dir():
    """modules/.libs plus the stub room module, in a temporary folder."""
    d = tempfile.mkdtemp(prefix="mk-mam-mods.")
    libs = os.path.join(TOP_BUILDDIR, "modules", ".libs")
    for name in os.listdir(libs):
        if name.endswith(".so"):
            os.symlink(os.path.join(libs, name), os.path.join(d, name))
    os.symlink(os.path.join(TOP_BUILDDIR, "tests", "integration", ".libs", "mod_testroom.so"),
               os.path.join(d, "mod_testroom.so"))
    return d


def test_room_archive(t):
    """The core's archive service, used by a stub room module as MUC will."""
    mods = room_module_dir()
    srv = Server(dict(MODULES, mod_mam={"flush_interval_ms": 200}, mod_testroom=None),
                 module_dir=mods)
    try:
        for u in ("romeo", "juliet"):
            srv.register(u)
        a, b = up(srv, "romeo"), up(srv, "juliet")
        room = "lounge@rooms.localhost"
        ids = []
        for c, body in ((a, "room one"), (b, "room two"), (a, "room three")):
            c.send("<message to='%s' type='groupchat'><body>%s</body></message>" % (room, body))
            echo = c.expect(is_chat(body))
            tags = [i for by, i in stanza_ids(echo) if by == room]
            t.ok(echo.get("from") == "%s/%s" % (room, c.user) and len(tags) == 1,
                 "a room message comes back from room/nick tagged by the room")
            ids += tags
        _, r, fin = query(b, to=room)
        t.ok(bodies(r) == ["room one", "room two", "room three"] and
             [x.get("id") for x in r] == ids, "the room's archive, queried at the room's JID")
        inner = [x.find("%s/%s" % (q(NS_FWD, "forwarded"), q(NS_CLIENT, "message"))).get("from")
                 for x in r]
        t.ok(inner == [room + "/romeo", room + "/juliet", room + "/romeo"],
             "each archived room message is from room/nick")
        t.ok(fin.get("complete") == "true", "the room archive's page is complete")
        _, r, _ = query(b, to=room, form=field("with", room + "/juliet"))
        t.ok(bodies(r) == ["room two"], "'with' room/nick filters a room archive")
        _, mine, _ = query(a)
        t.ok(all(x not in bodies(mine) for x in ("room one", "room three")),
             "groupchat does not enter the user's own archive")
        a.close()
        b.close()
    finally:
        srv.stop()
        shutil.rmtree(mods, ignore_errors=True)


def test_sigterm_flush(t):
    srv = Server(dict(MODULES, mod_mam={"flush_interval_ms": 60000, "batch_size": 1000}))
    try:
        for u in ("xena", "yuri"):
            srv.register(u)
        a, b = up(srv, "xena"), up(srv, "yuri")
        for i in range(7):
            send_chat(a, b.bare, "term %d" % i)
        b.expect(is_chat("term 6"))
        n0 = srv.sql("SELECT COUNT(*) FROM mam_user_message")[0][0]
        a.close()
        b.close()
        srv.proc.terminate()
        srv.proc.wait(20)
        n1 = srv.sql("SELECT COUNT(*) FROM mam_user_message")[0][0]
        t.ok(n0 == 0 and n1 == 14, "SIGTERM writes the queued rows (%d before, %d after)" %
             (n0, n1))
    finally:
        srv.stop()


def test_upgrade(t):
    """A database of schema 1 (two rows per message, keyed by names) is
    upgraded at start and its archives are found as before."""
    srv = Server(dict(MODULES, mod_mam={"flush_interval_ms": 200}))
    try:
        for u in ("ann", "bea"):
            srv.register(u)

        def downgrade():
            db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), isolation_level=None)
            for stmt in mamv1.downgrade(False):
                db.execute(stmt)
            db.close()
        srv.restart(between=downgrade)
        t.ok("mod_mam schema migrated to version 2" in srv.log_text(400),
             "schema 1 is migrated at start")
        a, b = up(srv, "ann"), up(srv, "bea")
        _, ra, _ = query(a)
        _, rb, _ = query(b)
        t.ok(bodies(ra) == ["old one", "old two"] and bodies(rb) == ["old one", "old three"],
             "both archives as they were (%s, %s)" % (bodies(ra), bodies(rb)))
        t.ok(ra[0].get("id") == rb[0].get("id"), "the shared message keeps one ID")
        _, rw, _ = query(a, form=field("with", "bea@localhost"))
        t.ok(bodies(rw) == ["old one"], "'with' finds the upgraded rows")
        n = srv.sql("SELECT COUNT(*) FROM mam_message")[0][0]
        t.ok(n == 3, "three messages, stored once each (%d)" % n)
        t.ok("mod_mam schema migrated to version 3" in srv.log_text(400),
             "and on to schema 3 (numbered room archives)")
        rooms = srv.sql("SELECT e.id, e.with_resource, r.room FROM mam_room_entry e"
                        " JOIN mam_room r ON r.number = e.archive")
        t.ok([tuple(x) for x in rooms] == [(mamv1.ID_ONE, "ann", mamv1.ROOM)],
             "a room's archived message is kept under the room's number (%s)" % (rooms,))
        send_chat(a, b.bare, "new one")
        b.expect(is_chat("new one"))
        _, rb, _ = query(b)
        t.ok(bodies(rb) == ["old one", "old three", "new one"], "new messages come after them")
        a.close()
        b.close()
    finally:
        srv.stop()


def main():
    t = Tap()
    srv = Server(dict(MODULES, mod_mam={"flush_interval_ms": 200,
                                                          "max_result_limit": 20}))
    try:
        for u in ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivan",
                  "judy", "kate", "liam", "mona", "ned", "olga", "pete", "quinn", "s0", "s1",
                  "s2", "rita", "tina", "uma", "vera", "walt", "rosa", "ines", "otto",
                  "ida", "oleg"):
            srv.register(u)
        t.run("disco", test_disco, srv)
        t.run("both archives", test_both_archives, srv)
        t.run("not archived", test_not_archived, srv)
        t.run("paging", test_paging, srv)
        t.run("filters", test_filters, srv)
        t.run("bad requests", test_bad_requests, srv)
        t.run("preferences", test_prefs, srv)
        t.run("preferences: roster", test_prefs_roster, srv)
        t.run("retraction", test_retraction, srv)
        t.run("concurrent senders", test_concurrent, srv)
        t.run("offline recipient", test_offline_recipient, srv)
        t.run("account removal", test_removal, srv)
        t.run("account removal: texts", test_removal_texts, srv)
        t.run("locked database", test_locked_database, srv)
    finally:
        srv.stop()
    t.run("sigterm", test_sigterm_flush)
    t.run("room archive", test_room_archive)
    t.run("schema 1 upgrade", test_upgrade)
    t.done()


if __name__ == "__main__":
    main()
