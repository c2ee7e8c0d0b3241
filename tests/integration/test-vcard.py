#!/usr/bin/python3
"""mod_vcard: vcard-temp (XEP-0054) get/set of one's own vCard, another
user reading it, only the owner writing it, the size limit, the vCard going
away with the account; and the XEP-0153 photo hash the server adds to the
user's presence, as a subscribed contact sees it. Prints TAP; ignores --tap."""
import base64
import hashlib
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Client, Server, Tap, error_condition, is_presence, q  # noqa: E402

NS_VCARD = "vcard-temp"
NS_UPDATE = "vcard-temp:x:update"
PHOTO = bytes(range(256)) * 4
PHOTO_B64 = base64.b64encode(PHOTO).decode()
# Line breaks inside BINVAL, as clients write them, must not change the hash.
PHOTO_B64_WRAPPED = "\n".join(PHOTO_B64[i:i + 76] for i in range(0, len(PHOTO_B64), 76))
PHOTO_SHA1 = hashlib.sha1(PHOTO).hexdigest()


def vcard_of(res):
    return res.find(q(NS_VCARD, "vCard"))


def subscribe(a, b):
    """@a subscribes to @b's presence (the RFC 6121 handshake)."""
    a.presence("subscribe", b.bare)
    b.expect(is_presence("subscribe", a.bare), what="subscribe from " + a.bare)
    b.presence("subscribed", a.bare)
    a.expect(is_presence("subscribed", b.bare), what="subscribed from " + b.bare)


def photo_of(presence):
    x = presence.find(q(NS_UPDATE, "x"))
    if x is None:
        return None
    photo = x.find(q(NS_UPDATE, "photo"))
    return None if photo is None else (photo.text or "")


def test_roundtrip(t, srv):
    srv.register("alice")
    srv.register("bob")
    a = Client(srv, "alice")
    b = Client(srv, "bob")

    res = a.iq("<vCard xmlns='%s'/>" % NS_VCARD)
    v = vcard_of(res)
    t.ok(res.get("type") == "result" and v is not None and len(v) == 0,
         "no vCard yet: an empty <vCard/>")

    res = a.iq("<vCard xmlns='%s'><FN>Alice Liddell</FN><NICKNAME>al</NICKNAME></vCard>"
               % NS_VCARD, "set")
    t.ok(res.get("type") == "result", "setting the own vCard: result")
    res = a.iq("<vCard xmlns='%s'/>" % NS_VCARD)
    v = vcard_of(res)
    t.ok(v is not None and v.findtext(q(NS_VCARD, "FN")) == "Alice Liddell" and
         v.findtext(q(NS_VCARD, "NICKNAME")) == "al", "the own vCard reads back")

    res = b.iq("<vCard xmlns='%s'/>" % NS_VCARD, to="alice@localhost")
    v = vcard_of(res)
    t.ok(res.get("type") == "result" and res.get("from") == "alice@localhost" and
         v is not None and v.findtext(q(NS_VCARD, "FN")) == "Alice Liddell",
         "another user reads alice's vCard through her bare JID")

    res = b.iq("<vCard xmlns='%s'><FN>Mallory</FN></vCard>" % NS_VCARD, "set",
               to="alice@localhost")
    t.ok(error_condition(res) == "forbidden", "setting someone else's vCard: forbidden")
    res = b.iq("<vCard xmlns='%s'/>" % NS_VCARD, to="alice@localhost")
    t.ok(vcard_of(res).findtext(q(NS_VCARD, "FN")) == "Alice Liddell",
         "alice's vCard is unchanged")

    res = a.iq("<vCard xmlns='%s'><FN>Updated</FN></vCard>" % NS_VCARD, "set",
               to="alice@localhost")
    t.ok(res.get("type") == "result", "a set to the own bare JID is the owner's")
    res = b.iq("<vCard xmlns='%s'/>" % NS_VCARD, to="alice@localhost")
    v = vcard_of(res)
    t.ok(v.findtext(q(NS_VCARD, "FN")) == "Updated" and v.find(q(NS_VCARD, "NICKNAME")) is None,
         "a set replaces the whole vCard")

    res = a.iq("<vCard xmlns='%s'><DESC>%s</DESC></vCard>" % (NS_VCARD, "x" * 3000), "set")
    t.ok(error_condition(res) == "not-acceptable", "a vCard over max_size: not-acceptable")

    res = a.iq("<card xmlns='%s'><FN>x</FN></card>" % NS_VCARD, "set")
    t.ok(error_condition(res) == "bad-request", "a set of another element than <vCard/>: "
         "bad-request")

    res = a.iq("<vCard xmlns='%s'/>" % NS_VCARD, to="nobody@localhost")
    t.ok(error_condition(res) == "service-unavailable",
         "the vCard of a JID that is no account: service-unavailable")
    a.close()
    b.close()


def test_photo_in_presence(t, srv):
    srv.register("carol")
    srv.register("dave")
    c = Client(srv, "carol", resource="phone")
    d = Client(srv, "dave")
    c.presence()
    d.presence()
    subscribe(d, c)  # dave sees carol's presence
    d.drain()

    c.presence()
    p = d.expect(is_presence(None, "carol@localhost"), what="carol's presence")
    t.ok(photo_of(p) == "", "no photo stored: the server adds an empty <photo/> (%s)"
         % photo_of(p))

    res = c.iq("<vCard xmlns='%s'><FN>Carol</FN><PHOTO><TYPE>image/png</TYPE>"
               "<BINVAL>%s</BINVAL></PHOTO></vCard>" % (NS_VCARD, PHOTO_B64_WRAPPED), "set")
    t.ok(res.get("type") == "result", "carol stores a vCard with a photo")
    c.presence(extra="<status>with photo</status>")
    p = d.expect(is_presence(None, "carol@localhost"), what="carol's next presence")
    t.ok(photo_of(p) == PHOTO_SHA1,
         "the next presence carries the SHA-1 of the photo (%s)" % photo_of(p))

    # The client's own update element is left as it is.
    c.presence(extra="<x xmlns='%s'><photo>0123456789abcdef</photo></x>" % NS_UPDATE)
    p = d.expect(is_presence(None, "carol@localhost"), what="presence with client's photo")
    t.ok(photo_of(p) == "0123456789abcdef" and len(p.findall(q(NS_UPDATE, "x"))) == 1,
         "a photo element the client sent is not overwritten")
    c.presence(extra="<x xmlns='%s'/>" % NS_UPDATE)
    p = d.expect(is_presence(None, "carol@localhost"), what="presence with an empty x")
    t.ok(photo_of(p) is None, "an <x/> without <photo/> (client not ready) is not filled in")

    # A new login after all sessions ended loads the hash from storage.
    c.close()
    d.expect(is_presence("unavailable", "carol@localhost"), what="carol's logout")
    c = Client(srv, "carol", resource="laptop")
    c.iq("<vCard xmlns='%s'/>" % NS_VCARD)  # clients fetch their own vCard first
    c.presence()
    p = d.expect(is_presence(None, "carol@localhost/laptop"), what="carol's new session")
    t.ok(photo_of(p) == PHOTO_SHA1, "a new session's presence carries the stored hash")

    res = c.iq("<vCard xmlns='%s'><FN>Carol</FN></vCard>" % NS_VCARD, "set")
    c.presence()
    p = d.expect(is_presence(None, "carol@localhost/laptop"), what="presence after removal")
    t.ok(photo_of(p) == "", "after the photo is removed the presence says so (empty <photo/>)")
    c.close()
    d.close()


def test_account_removal(t, srv):
    srv.register("gone")
    g = Client(srv, "gone")
    g.iq("<vCard xmlns='%s'><FN>Gone</FN></vCard>" % NS_VCARD, "set")
    g.close()
    before = srv.sql("SELECT COUNT(*) FROM vcards WHERE username = 'gone'")[0][0]
    db = sqlite3.connect(os.path.join(srv.state, "meerkat.db"), timeout=10)
    db.execute("PRAGMA foreign_keys=ON")
    with db:
        db.execute("DELETE FROM users WHERE username = 'gone'")
    db.close()
    after = srv.sql("SELECT COUNT(*) FROM vcards WHERE username = 'gone'")[0][0]
    t.ok(before == 1 and after == 0, "removing the account removes its vCard")


def main():
    t = Tap()
    try:
        srv = Server({"mod_roster": {}, "mod_vcard": {"max_size": 2048}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_vcard starts")
        t.diag(e)
        t.done()
    try:
        t.run("round trip", test_roundtrip, srv)
        t.run("photo in presence", test_photo_in_presence, srv)
        t.run("account removal", test_account_removal, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
