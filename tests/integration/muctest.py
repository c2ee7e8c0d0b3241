"""Helpers for the mod_muc tests (test-muc*.py): joining, configuring,
waiting for room stanzas with raw XML clients (modtest.Client).
Standard library only."""
import os
import re
import signal
import socket
import subprocess
import time

from modtest import NS_CLIENT, TOP_BUILDDIR, Client, error_condition, q

NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = NS_MUC + "#user"
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"
NS_DATA = "jabber:x:data"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DELAY = "urn:xmpp:delay"
SERVICE = "conference.localhost"


def room_jid(name):
    return "%s@%s" % (name, SERVICE)


def codes(el):
    x = el.find(q(NS_USER, "x"))
    return set(int(s.get("code")) for s in x.findall(q(NS_USER, "status"))) if x is not None \
        else set()


def item(el):
    x = el.find(q(NS_USER, "x"))
    return x.find(q(NS_USER, "item")) if x is not None else None


def is_presence_from(frm, type=None):
    return lambda e: (e.tag == q(NS_CLIENT, "presence") and e.get("from") == frm and
                      e.get("type") == type)


def is_error_from(frm, kind="presence"):
    return lambda e: (e.tag == q(NS_CLIENT, kind) and e.get("from") == frm and
                      e.get("type") == "error")


def is_groupchat(frm, body=None):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and e.get("from") == frm and
                      e.get("type") == "groupchat" and
                      (body is None or e.findtext(q(NS_CLIENT, "body")) == body))


def clients(srv, names, resource="r", presence=False):
    """Logged-in clients; with @presence, each sent initial presence, so
    that messages to its bare JID (invitations) reach it."""
    out = [Client(srv, n, resource=resource) for n in names]
    for c in out if presence else ():
        c.presence()
    return out


def join(c, room, nick, x="", history=None, expect=True):
    """Joins @room as @nick; returns the self-presence (or error presence)."""
    frm = "%s/%s" % (room_jid(room), nick)
    inner = x + (history or "")
    c.send("<presence to='%s'><x xmlns='%s'>%s</x></presence>" % (frm, NS_MUC, inner))
    if not expect:
        return None
    return c.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == frm and
                    (e.get("type") == "error" or 110 in codes(e)), 10, "self-presence " + frm)


def join_error(c, room, nick, x=""):
    el = join(c, room, nick, x)
    return error_condition(el) if el.get("type") == "error" else None


def field(var, *values):
    return "<field var='%s'>%s</field>" % (var, "".join("<value>%s</value>" % v for v in values))


def configure(c, room, fields=()):
    """Submits the owner's form with @fields (tuples var, value)."""
    form = "".join(field(v, *(val if isinstance(val, (list, tuple)) else [val]))
                   for v, val in fields)
    return c.iq("<query xmlns='%s'><x xmlns='%s' type='submit'>%s</x></query>"
                % (NS_OWNER, NS_DATA, form), "set", room_jid(room))


def create(c, room, nick, fields=()):
    """Creates @room (201), configures it and returns the submit's reply."""
    p = join(c, room, nick)
    assert p.get("type") != "error", "join %s: %s" % (room, error_condition(p))
    assert 201 in codes(p), "room %s existed already" % room
    res = configure(c, room, fields)
    assert res.get("type") == "result", "configure %s: %s" % (room, error_condition(res))
    return res


def admin(c, room, items, type="set"):
    return c.iq("<query xmlns='%s'>%s</query>" % (NS_ADMIN, items), type, room_jid(room))


def say(c, room, body):
    c.send("<message to='%s' type='groupchat'><body>%s</body></message>" % (room_jid(room), body))


def leave(c, room, nick):
    frm = "%s/%s" % (room_jid(room), nick)
    c.send("<presence to='%s' type='unavailable'/>" % frm)
    return c.expect(lambda e: e.tag == q(NS_CLIENT, "presence") and e.get("from") == frm and
                    e.get("type") == "unavailable" and 110 in codes(e), 10, "leave " + frm)


def count(c, pred, wait=0.5):
    """How many of what @c received (now and within @wait s) match @pred."""
    n = 0
    while c.maybe(pred, wait) is not None:
        n += 1
    return n


def restart(srv, conf_edit=None):
    """Stops meerkatd with SIGTERM and starts it again on the same state."""
    srv.restart(conf_edit)


def wait_log(srv, pattern, timeout=15):
    """Waits until the server's log has a line matching @pattern."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(srv.log_path, errors="replace") as f:
            if re.search(pattern, f.read(), re.M):
                return True
        time.sleep(0.05)
    return False


def ready(srv, starts=1):
    """Waits until mod_muc counted the stored rooms after the @starts-th
    start of the server's log: rooms are created only from then on."""
    deadline = time.time() + 15
    while time.time() < deadline:
        with open(srv.log_path, errors="replace") as f:
            if len(re.findall(r"mod_muc: \d+ stored rooms counted", f.read())) >= starts:
                return True
        time.sleep(0.05)
    return False
