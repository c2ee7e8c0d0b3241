#!/usr/bin/python3
"""PEP (XEP-0163) through raw stanzas: the account's pubsub/pep identity,
nodes auto-created on first publish with the presence access model or
the publish-options, notifications only to contacts with a presence
subscription whose caps (XEP-0115, learned by mod_disco) name the
node's +notify, the last item when such a contact comes online, the
profiles' access settings (bookmarks 2: whitelist + max_items=max;
OMEMO device list: open), preconditions, and the nodes going with the
account. Prints TAP; ignores --tap."""
import base64
import hashlib
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, Client, Server, Tap, error_condition, online, q,  # noqa: E402
                     subscribe)
from pubsubtest import (NS, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_EVENT, NS_XDATA,  # noqa: E402
                        app_error, is_event, items, publish, publish_options)

NS_CAPS = "http://jabber.org/protocol/caps"
AVATAR = "urn:xmpp:avatar:metadata"
NICK = "http://jabber.org/protocol/nick"
BOOKMARKS = "urn:xmpp:bookmarks:1"
OMEMO = "eu.siacs.conversations.axolotl.devicelist"


def caps_ver(features):
    s = "client/pc//Test<" + "".join(f + "<" for f in sorted(features))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


def caps_online(srv, user, resource, notify):
    """Logs in and sends available presence with caps naming @notify's
    +notify; answers the server's disco#info for them."""
    c = Client(srv, user, resource=resource)
    c.roster_get()
    feats = [NS_DISCO_INFO] + [n + "+notify" for n in notify]
    ver = caps_ver(feats)
    c.presence(extra="<c xmlns='%s' hash='sha-1' node='urn:test' ver='%s'/>" % (NS_CAPS, ver))
    return c, feats, ver


def answer_caps(c, feats, ver, timeout=5):
    """Answers the server's disco#info about our caps (once)."""
    req = c.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("type") == "get" and
                   e.find(q(NS_DISCO_INFO, "query")) is not None, timeout, "the caps query")
    node = req.find(q(NS_DISCO_INFO, "query")).get("node")
    body = "".join("<feature var='%s'/>" % f for f in feats)
    c.send("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s'>"
           "<identity category='client' type='pc' name='Test'/>%s</query></iq>"
           % (req.get("id"), req.get("from"), NS_DISCO_INFO, node, body))
    return node == "urn:test#" + ver


def scenarios(t, srv):
    for u in ("alice", "bob", "carol"):
        srv.register(u)
    a = online(srv, "alice")
    b = online(srv, "bob")
    subscribe(b, a)  # bob receives alice's presence
    b.close()

    res = a.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to="alice@localhost")
    query = res.find(q(NS_DISCO_INFO, "query"))
    ids = [(i.get("category"), i.get("type")) for i in query.findall(q(NS_DISCO_INFO, "identity"))]
    feats = {f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))}
    t.ok(("pubsub", "pep") in ids and ("account", "registered") in ids,
         "the account's disco#info: account/registered and pubsub/pep")
    t.ok(NS + "#publish" in feats and NS + "#filtered-notifications" in feats and
         NS + "#publish-options" in feats, "with PEP's features")

    # bob's client wants avatars and nicks; bob's second resource nothing.
    b, bfeats, bver = caps_online(srv, "bob", "caps", [AVATAR, NICK])
    t.ok(answer_caps(b, bfeats, bver), "mod_disco asks a new client for its caps at node#ver")
    b2, b2feats, b2ver = caps_online(srv, "bob", "plain", [])
    answer_caps(b2, b2feats, b2ver)
    c, cfeats, cver = caps_online(srv, "carol", "caps", [AVATAR])
    answer_caps(c, cfeats, cver)
    # A second client with the same caps: known already, no query.
    b3, _, _ = caps_online(srv, "bob", "same", [AVATAR, NICK])
    t.ok(b3.maybe(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("type") == "get", 1.0) is None,
         "a verified ver is not asked again")
    # A ver that does not hash to the answer serves its session only, and
    # the session's next presence with it is not asked about again.
    bad = Client(srv, "carol", resource="bad")
    bad.presence(extra="<c xmlns='%s' hash='sha-1' node='urn:test' ver='bogus'/>" % NS_CAPS)
    answer_caps(bad, [NS_DISCO_INFO], "bogus")
    bad.presence(extra="<show>away</show><c xmlns='%s' hash='sha-1' node='urn:test'"
                 " ver='bogus'/>" % NS_CAPS)
    t.ok(bad.maybe(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("type") == "get", 1.0) is None,
         "an unverified ver is asked once per session, not at each presence")
    bad.close()
    for x in (b, b2, b3, c):
        x.drain()

    meta = ("<metadata xmlns='%s'><info id='abc' bytes='10' type='image/png' width='1'"
            " height='1'/></metadata>" % AVATAR)
    res = publish(a, AVATAR, meta, "abc", to=None)
    t.ok(res.get("type") == "result", "publishing to a new PEP node creates it")
    ev = b.expect(is_event(AVATAR, "items", "alice@localhost"), what="the avatar notification")
    t.ok(ev.get("to") == "bob@localhost/caps", "a contact whose caps name +notify gets it, "
         "at its full JID")
    t.ok(b3.maybe(is_event(AVATAR), 2) is not None, "so does its other client with those caps")
    t.ok(b2.maybe(is_event(AVATAR), 0.5) is None, "a client without +notify does not")
    t.ok(c.maybe(is_event(AVATAR), 0.5) is None, "a user without a presence subscription does not")
    t.ok(b.maybe(is_event(AVATAR), 0.3) is None, "the contact got it once")

    res, ids = items(b, AVATAR, to="alice@localhost")
    t.ok(ids == ["abc"], "a contact reads the node (presence access)")
    res, ids = items(c, AVATAR, to="alice@localhost")
    t.ok(error_condition(res) == "not-authorized" and
         app_error(res) == "presence-subscription-required",
         "a stranger: not-authorized + presence-subscription-required")
    res = c.iq("<pubsub xmlns='%s'><publish node='x'><item><a xmlns='urn:x'/></item></publish>"
               "</pubsub>" % NS, "set", to="alice@localhost")
    t.ok(error_condition(res) in ("item-not-found", "forbidden"),
         "nobody else creates nodes in an account's PEP")

    # Last item on coming online (XEP-0163 4.3.2).
    b.close()
    b, bfeats, bver = caps_online(srv, "bob", "caps", [AVATAR, NICK])
    ev = b.expect(is_event(AVATAR, "items", "alice@localhost"), what="the last avatar")
    t.ok(ev is not None, "a contact coming online with +notify gets the last item")

    # Bookmarks 2: whitelist and max_items=max by publish-options.
    bm = "<conference xmlns='%s' name='Room' autojoin='true'/>" % BOOKMARKS
    opts = publish_options(persist_items="true", access_model="whitelist", max_items="max",
                           send_last_published_item="never")
    res = publish(a, BOOKMARKS, bm, "room1@muc.localhost", opts, to=None)
    t.ok(res.get("type") == "result", "bookmarks: published with whitelist + max_items=max")
    res = publish(a, BOOKMARKS, bm, "room2@muc.localhost", opts, to=None)
    res, ids = items(a, BOOKMARKS, to=None)
    t.ok(sorted(ids) == ["room1@muc.localhost", "room2@muc.localhost"],
         "bookmarks: max keeps every conference")
    res, ids = items(b, BOOKMARKS, to="alice@localhost")
    t.ok(error_condition(res) == "not-allowed" and app_error(res) == "closed-node",
         "bookmarks: a contact cannot read them (not-allowed + closed-node)")
    res = publish(a, BOOKMARKS, bm, "room3@muc.localhost",
                  publish_options(access_model="presence"), to=None)
    t.ok(error_condition(res) == "conflict" and app_error(res) == "precondition-not-met",
         "publish-options differing from the node: conflict + precondition-not-met")

    # OMEMO device list: open, so anyone fetches it.
    dl = "<list xmlns='eu.siacs.conversations.axolotl'><device id='12345'/></list>"
    res = publish(a, OMEMO, dl, "current", publish_options(access_model="open"), to=None)
    res, ids = items(c, OMEMO, to="alice@localhost")
    t.ok(ids == ["current"], "OMEMO device list with open access: a stranger reads it")
    bundle = ("<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic"
              " signedPreKeyId='1'>AAAA</signedPreKeyPublic></bundle>")
    res = publish(a, OMEMO.replace("devicelist", "bundles:12345"), bundle, "current",
                  publish_options(access_model="open"), to=None)
    res, ids = items(c, OMEMO.replace("devicelist", "bundles:12345"), to="alice@localhost")
    t.ok(ids == ["current"], "OMEMO bundle with open access: a stranger fetches it")

    # Disco at the account with nodes (XEP-0060 5.2-5.5 at a PEP service):
    # what each requester may see.
    def disco_nodes(client, to):
        res = client.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=to)
        return {i.get("node") for i in res.find(q(NS_DISCO_ITEMS, "query"))}
    seen = disco_nodes(b, "alice@localhost")
    t.ok(AVATAR in seen and OMEMO in seen and BOOKMARKS not in seen,
         "disco#items at a contact's account: the nodes it may see, not the whitelist bookmarks")
    seen = disco_nodes(c, "alice@localhost")
    t.ok(OMEMO in seen and AVATAR not in seen, "a stranger: only the open nodes")
    seen = disco_nodes(a, None)
    t.ok({AVATAR, OMEMO, BOOKMARKS} <= seen, "the account itself: all of them")
    res = b.iq("<query xmlns='%s' node='%s'/>" % (NS_DISCO_INFO, AVATAR), to="alice@localhost")
    query = res.find(q(NS_DISCO_INFO, "query"))
    ident = query.find(q(NS_DISCO_INFO, "identity")) if query is not None else None
    form = {f.get("var"): f.findtext(q(NS_XDATA, "value"))
            for f in query.find(q(NS_XDATA, "x")).findall(q(NS_XDATA, "field"))} \
        if query is not None else {}
    t.ok(ident is not None and ident.get("type") == "leaf" and query.get("node") == AVATAR and
         form.get("pubsub#access_model") == "presence",
         "disco#info with a PEP node: pubsub/leaf and its meta-data")
    res = c.iq("<query xmlns='%s' node='%s'/>" % (NS_DISCO_INFO, AVATAR), to="alice@localhost")
    t.ok(error_condition(res) == "item-not-found",
         "disco#info of a node the stranger may not see: item-not-found")
    res = b.iq("<query xmlns='%s' node='urn:none'/>" % NS_DISCO_INFO, to="alice@localhost")
    t.ok(error_condition(res) == "item-not-found", "disco#info of no such node: item-not-found")
    res = b.iq("<query xmlns='%s' node='%s'/>" % (NS_DISCO_ITEMS, AVATAR), to="alice@localhost")
    names = [i.get("name") for i in res.find(q(NS_DISCO_ITEMS, "query"))]
    t.ok(names == ["abc"], "disco#items with a PEP node: its items")
    res = b.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to="nobody@localhost")
    t.ok(error_condition(res) == "service-unavailable",
         "disco#items at no account: service-unavailable")

    # max_nodes (5 here): the account's fifth node is made, a sixth is not.
    res = publish(a, "urn:example:five", "<x xmlns='urn:example'/>", None, to=None)
    t.ok(res.get("type") == "result", "a fifth node is created")
    res = publish(a, "urn:example:six", "<x xmlns='urn:example'/>", None, to=None)
    t.ok(error_condition(res) == "not-allowed" and app_error(res) == "max-nodes-exceeded",
         "past max_nodes: not-allowed + max-nodes-exceeded")

    # Retract with notify reaches the +notify contacts.
    a.iq("<pubsub xmlns='%s'><retract node='%s' notify='true'><item id='abc'/></retract>"
         "</pubsub>" % (NS, AVATAR), "set")
    ev = b.expect(lambda e: is_event(AVATAR, "items")(e) and
                  e.find(q(NS_EVENT, "event")).find(q(NS_EVENT, "items")).find(
                      q(NS_EVENT, "retract")) is not None, what="the retraction")
    t.ok(ev is not None, "a retraction reaches the contact")
    # max_pending (5 here): a burst of 40 publishes in one write; the
    # service holds 5 at a time and refuses the rest, each answered once.
    burst = "".join("<iq type='set' id='burst%d'><pubsub xmlns='%s'><publish node='%s'>"
                    "<item id='%d'>%s</item></publish></pubsub></iq>" % (i, NS, AVATAR, i, meta)
                    for i in range(40))
    a.send(burst)
    got = [a.expect(lambda e, i=i: e.get("id") == "burst%d" % i, 10) for i in range(40)]
    ok = sum(1 for e in got if e.get("type") == "result")
    refused = sum(1 for e in got if error_condition(e) == "resource-constraint")
    t.ok(ok + refused == 40 and refused > 0 and ok >= 5,
         "past max_pending: resource-constraint (%d published, %d refused)" % (ok, refused))
    t.ok(a.maybe(lambda e: (e.get("id") or "").startswith("burst"), 0.5) is None,
         "every request of the burst answered once")
    for x in (a, b, b2, b3, c):
        x.close()

    before = srv.sql("SELECT COUNT(*) FROM pubsub_nodes WHERE service = 'alice@localhost'")[0][0]
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10)
    db.execute("PRAGMA foreign_keys=ON")
    with db:
        db.execute("DELETE FROM users WHERE username = 'alice'")
    db.close()
    after = srv.sql("SELECT COUNT(*) FROM pubsub_nodes WHERE service = 'alice@localhost'")[0][0]
    items_left = srv.sql("SELECT COUNT(*) FROM pubsub_items WHERE service = 'alice@localhost'")[0][0]
    t.ok(before == 5 and after == 0 and items_left == 0,
         "removing the account removes its nodes and items (%d nodes before)" % before)


def main():
    t = Tap()
    try:
        srv = Server({"mod_roster": None, "mod_disco": None, "mod_pubsub": {"host": "", "max_nodes": 5, "max_pending": 5}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_pubsub starts")
        t.diag(e)
        t.done()
    try:
        t.run("pep", scenarios, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
