#!/usr/bin/python3
"""Per-user storage caps (docs/security.md, "Stanzas and per-user
storage"), driven by a raw-XML client as a hostile user would:

- mod_roster: max_text_length and max_groups (not-acceptable, RFC 6121
  2.3.3), max_items and max_bytes (policy-violation) for roster sets,
  for a stranger's subscription request and for the user's own request
  to a new contact; updates that do not grow pass a full roster; a
  max_bytes that would let a roster result outgrow a connection's 8 MiB
  is refused at start.
- mod_private: max_total_size over every namespace (policy-violation);
  a replaced fragment is not counted twice.
- mod_privacy: max_items per list (bad-request) and max_lists per user
  (resource-constraint); a list set reuses the roster the user's cached state holds
  instead of reading it again; a roster change in between still counts.

Prints TAP; ignores --tap."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (Client, Server, Tap, error_condition, is_presence, online,  # noqa: E402
                     q, roster_item)

NS_ROSTER = "jabber:iq:roster"
NS_PRIVATE = "jabber:iq:private"
ROSTER = {"max_items": 5, "max_groups": 2, "max_text_length": 100, "max_bytes": 1024}


def roster_set(c, jid, name=None, groups=(), remove=False):
    attrs = " jid='%s'" % jid
    if name is not None:
        attrs += " name='%s'" % name
    if remove:
        attrs += " subscription='remove'"
    body = "".join("<group>%s</group>" % g for g in groups)
    return c.iq("<query xmlns='%s'><item%s>%s</item></query>" % (NS_ROSTER, attrs, body), "set")


def outcome(res):
    return "result" if res.get("type") == "result" else error_condition(res)


def rows(srv, user):
    return srv.sql("SELECT COUNT(*) FROM roster_items WHERE username = ?", user)[0][0]


def test_lengths(t, srv):
    srv.register("lena")
    c = Client(srv, "lena")
    t.ok(outcome(roster_set(c, "x@localhost", name="n" * 101)) == "not-acceptable",
         "a name of 101 bytes (max_text_length 100): not-acceptable")
    t.ok(outcome(roster_set(c, "x@localhost", groups=["g" * 101])) == "not-acceptable",
         "a group of 101 bytes: not-acceptable")
    t.ok(outcome(roster_set(c, "x@localhost", groups=["a", "b", "c"])) == "not-acceptable",
         "three groups (max_groups 2): not-acceptable")
    t.ok(rows(srv, "lena") == 0, "nothing was stored")
    t.ok(outcome(roster_set(c, "x@localhost", name="n" * 100, groups=["a", "b"])) == "result",
         "a name of 100 bytes and two groups: result")
    c.close()


def test_items(t, srv):
    srv.register("alice")
    srv.register("carol")
    a = online(srv, "alice")
    for i in range(5):
        res = roster_set(a, "c%d@localhost" % i)
        if not t.ok(outcome(res) == "result", "item %d of 5: result" % (i + 1)):
            return
    res = roster_set(a, "c5@localhost")
    t.ok(outcome(res) == "policy-violation", "a sixth item (max_items 5): policy-violation")
    t.ok(rows(srv, "alice") == 5, "the roster still holds 5 rows")
    t.ok(outcome(roster_set(a, "c0@localhost", name="zero")) == "result",
         "renaming an item of the full roster: result")

    # A stranger's request would add a row: refused, never delivered.
    a.drain()
    c = online(srv, "carol")
    c.presence("subscribe", "alice@localhost")
    t.ok(a.maybe(is_presence("subscribe", "carol@localhost"), 1.5) is None,
         "a subscription request to the full roster does not reach alice")
    t.ok(rows(srv, "alice") == 5, "and is not stored")

    # Her own request to a new contact would add a row too.
    a.presence("subscribe", "newbie@localhost")
    err = a.expect(lambda e: e.tag.endswith("}presence") and e.get("type") == "error",
                   what="a presence error")
    t.ok(error_condition(err) == "policy-violation" and err.get("from") == "newbie@localhost",
         "alice's subscribe to a new contact: presence error policy-violation")
    t.ok(roster_item(a.roster_get(), "newbie@localhost") is None, "no item for it")

    t.ok(outcome(roster_set(a, "c4@localhost", remove=True)) == "result", "removing an item")
    t.ok(outcome(roster_set(a, "c5@localhost")) == "result", "makes room for another")
    a.close()
    c.close()


def test_bytes(t, srv):
    srv.register("dave")
    d = Client(srv, "dave")
    big = ["a" * 100, "b" * 100]
    # Each of these costs about 80 + 14 + 2 * (15 + 100) = 324 of 1024.
    for i in range(3):
        t.ok(outcome(roster_set(d, "big%d@localhost" % i, groups=big)) == "result",
             "a large item %d of 3: result" % (i + 1))
    res = roster_set(d, "big3@localhost", groups=big)
    t.ok(outcome(res) == "policy-violation",
         "a fourth large item (max_bytes 1024, max_items 5): policy-violation")
    t.ok(outcome(roster_set(d, "big0@localhost", groups=["a" * 100])) == "result",
         "shrinking an item of the full roster: result")
    query = d.roster_get().find(q(NS_ROSTER, "query"))
    t.ok(query is not None and len(query) == 3, "the roster holds the three items")
    d.close()


def test_private(t, srv):
    srv.register("pia")
    c = Client(srv, "pia")
    blob = "x" * 600

    def put(ns, text):
        return c.iq("<query xmlns='%s'><d xmlns='%s'>%s</d></query>" % (NS_PRIVATE, ns, text),
                    "set")

    t.ok(outcome(put("urn:a", blob)) == "result", "600 bytes in one namespace: result")
    t.ok(outcome(put("urn:b", blob)) == "policy-violation",
         "600 more in another (max_total_size 1024): policy-violation")
    res = c.iq("<query xmlns='%s'><d xmlns='urn:b'/></query>" % NS_PRIVATE)
    stored = res.find(q(NS_PRIVATE, "query")).find(q("urn:b", "d"))
    t.ok(stored is not None and not (stored.text or ""), "and nothing was stored for it")
    t.ok(outcome(put("urn:a", "y" * 900)) == "result",
         "replacing the first with 900 bytes: result (the old fragment is not counted)")
    c.close()


def test_privacy_roster(t, srv):
    srv.register("jo")
    srv.register("kim")
    j = Client(srv, "jo")
    j.presence()
    k = Client(srv, "kim")
    roster_set(j, "kim@localhost", groups=["A"])
    roster_set(j, "other@localhost", groups=["B"])
    deny_b = ("<query xmlns='jabber:iq:privacy'><list name='l'><item type='group' value='B'"
              " action='deny' order='%d'><message/></item></list></query>")
    t.ok(outcome(j.iq(deny_b % 1, "set")) == "result", "a list denying messages from group B")
    j.iq("<query xmlns='jabber:iq:privacy'><active name='l'/></query>", "set")
    k.send("<message to='jo@localhost/r' type='chat' id='k1'><body>1</body></message>")
    t.ok(j.maybe(lambda e: e.get("id") == "k1", 3) is not None, "kim (group A) gets through")
    # kim moves to B, and at once the list is set again: the new state must
    # carry the new roster, not the one the previous state shared.
    roster_set(j, "kim@localhost", groups=["B"])
    t.ok(outcome(j.iq(deny_b % 2, "set")) == "result", "the list set again")
    k.send("<message to='jo@localhost/r' type='chat' id='k2'><body>2</body></message>")
    t.ok(j.maybe(lambda e: e.get("id") == "k2", 1.5) is None,
         "kim, now in group B, is denied")
    j.close()
    k.close()


def test_privacy_caps(t, srv):
    srv.register("pat")
    c = Client(srv, "pat")

    def put(name, n):
        items = "".join("<item type='jid' value='x%d@localhost' action='deny' order='%d'/>"
                        % (i, i + 1) for i in range(n))
        return outcome(c.iq("<query xmlns='jabber:iq:privacy'><list name='%s'>%s</list></query>"
                            % (name, items), "set"))

    t.ok(put("a", 4) == "bad-request", "a list of 4 items (max_items 3): bad-request")
    t.ok(put("a", 3) == "result" and put("b", 1) == "result", "two lists (max_lists 2)")
    t.ok(put("c", 1) == "resource-constraint", "a third list: resource-constraint")
    t.ok(put("b", 3) == "result", "editing a list when at the cap: result")
    c.close()


def test_startup_bound(t):
    try:
        srv = Server({"mod_roster": {"max_bytes": 2000000}})
    except RuntimeError as e:
        t.ok("max_bytes" in str(e), "max_bytes above 1310720 is refused at start, naming the key")
        return
    srv.stop()
    t.ok(False, "max_bytes above 1310720 is refused at start")


def main():
    t = Tap()
    try:
        srv = Server({"mod_roster": ROSTER, "mod_private": {"max_total_size": 1024},
                      "mod_privacy": {"max_lists": 2, "max_items": 3}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_roster and mod_private starts")
        t.diag(e)
        t.done()
    try:
        t.run("roster lengths and groups", test_lengths, srv)
        t.run("roster items", test_items, srv)
        t.run("roster bytes", test_bytes, srv)
        t.run("private storage total", test_private, srv)
        t.run("privacy lists and the roster", test_privacy_roster, srv)
        t.run("privacy caps", test_privacy_caps, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.run("the 8 MiB bound", test_startup_bound)
    t.done()


if __name__ == "__main__":
    main()
