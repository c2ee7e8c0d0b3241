#!/usr/bin/python3
"""What the server tells about itself: software version (XEP-0092, no OS
unless show_os), entity time (XEP-0202), and entity capabilities
(XEP-0115): the <c/> in the stream features carries the hash of the
disco#info answer, disco#info to NODE#VER answers the same, and the ver
follows modules that stop on SIGHUP. Prints TAP; ignores --tap."""
import base64
import datetime
import hashlib
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_STREAM, Client, Server, Tap, error_condition, q  # noqa: E402

NS_VERSION = "jabber:iq:version"
NS_TIME = "urn:xmpp:time"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_INFO = "http://jabber.org/protocol/disco#info"
CAPS_NODE = "https://meerkat.example/caps"


def caps_ver(query):
    """XEP-0115 section 5.1, computed here from a disco#info <query/>."""
    ids = sorted((i.get("category"), i.get("type"), i.get("{http://www.w3.org/XML/1998/namespace}lang", ""),
                  i.get("name", "")) for i in query.findall(q(NS_INFO, "identity")))
    feats = sorted(f.get("var") for f in query.findall(q(NS_INFO, "feature")))
    s = "".join("%s/%s/%s/%s<" % i for i in ids) + "".join(f + "<" for f in feats)
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


def version(c):
    res = c.iq("<query xmlns='%s'/>" % NS_VERSION, to="localhost")
    return res, res.find(q(NS_VERSION, "query"))


def test_version_time(t, srv):
    srv.register("vic")
    c = Client(srv, "vic")
    res, query = version(c)
    t.ok(res.get("type") == "result" and query is not None and
         query.findtext(q(NS_VERSION, "name")) == "Meerkat" and
         re.match(r"^\d+\.\d+", query.findtext(q(NS_VERSION, "version")) or ""),
         "version: name Meerkat and a version number")
    t.ok(query is not None and query.find(q(NS_VERSION, "os")) is None,
         "version: no <os/> by default")

    res = c.iq("<time xmlns='%s'/>" % NS_TIME, to="localhost")
    tm = res.find(q(NS_TIME, "time"))
    tzo = tm.findtext(q(NS_TIME, "tzo")) if tm is not None else None
    utc = tm.findtext(q(NS_TIME, "utc")) if tm is not None else None
    t.ok(res.get("type") == "result" and tzo == "+05:30",
         "time: tzo is the server's zone offset as [+-]hh:mm (%s)" % tzo)
    ok = False
    if utc and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", utc):
        then = datetime.datetime.strptime(utc[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc)
        ok = abs((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds()) < 120
    t.ok(ok, "time: utc is an XEP-0082 UTC DateTime close to now (%s)" % utc)
    c.close()


def disco_info(c, node=None):
    attr = " node='%s'" % node if node else ""
    res = c.iq("<query xmlns='%s'%s/>" % (NS_INFO, attr), to="localhost")
    return res, res.find(q(NS_INFO, "query"))


def test_caps(t, srv):
    srv.register("cap")
    c = Client(srv, "cap")
    cel = c.features.find(q(NS_CAPS, "c"))
    t.ok(cel is not None and cel.get("hash") == "sha-1" and cel.get("node") == CAPS_NODE,
         "post-auth stream features carry <c hash='sha-1' node='%s'/>" % CAPS_NODE)
    res, query = disco_info(c)
    ver = caps_ver(query)
    t.ok(cel is not None and cel.get("ver") == ver,
         "the ver is the XEP-0115 hash of the disco#info answer (%s, computed %s)"
         % (cel.get("ver") if cel is not None else None, ver))

    res, nq = disco_info(c, "%s#%s" % (CAPS_NODE, ver))
    t.ok(res.get("type") == "result" and nq is not None and
         nq.get("node") == "%s#%s" % (CAPS_NODE, ver) and caps_ver(nq) == ver,
         "disco#info to NODE#VER answers the same identities and features")
    res, _ = disco_info(c, "%s#bogus" % CAPS_NODE)
    t.ok(error_condition(res) == "item-not-found", "another ver: item-not-found")

    # SIGHUP without mod_time: the features change, and so does the ver.
    os.unlink(os.path.join(srv.dir, "conf.d", "mod_time.conf"))
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while time.time() < deadline:
        res, query = disco_info(c)
        if NS_TIME not in {f.get("var") for f in query.findall(q(NS_INFO, "feature"))}:
            break
        time.sleep(0.1)
    new_ver = caps_ver(query)
    c2 = Client(srv, "cap", resource="second")
    cel2 = c2.features.find(q(NS_CAPS, "c"))
    t.ok(new_ver != ver and cel2 is not None and cel2.get("ver") == new_ver,
         "after a module stops on SIGHUP the ver follows (%s)" % new_ver)
    c.close()
    c2.close()


def test_pre_auth_caps(t, srv):
    """The features before authentication carry the same <c/>."""
    c = Client(srv, "nobody", login=False)
    c._pending_sync = []
    c._new_parser()
    from modtest import STREAM_HEADER
    c.send(STREAM_HEADER)
    feats = c._read_sync(lambda e: e.tag == q(NS_STREAM, "features"))
    cel = feats.find(q(NS_CAPS, "c"))
    t.ok(cel is not None and cel.get("node") == CAPS_NODE and cel.get("ver"),
         "pre-auth stream features carry the <c/> too")
    c.sock.close()


def test_show_os(t):
    srv = Server({"mod_version": {"show_os": "true"}})
    try:
        srv.register("osy")
        c = Client(srv, "osy")
        _, query = version(c)
        sysname = os.uname().sysname
        t.ok(query is not None and (query.findtext(q(NS_VERSION, "os")) or "").startswith(
            sysname + " " + os.uname().release),
             "show_os = true: <os/> is uname sysname and release (%s)"
             % (query.findtext(q(NS_VERSION, "os")) if query is not None else None))
        c.close()
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()


def main():
    t = Tap()
    # A zone with minutes, in POSIX form (no tzdata needed): UTC+05:30.
    os.environ["TZ"] = "XST-05:30"
    try:
        srv = Server({"mod_disco": {}, "mod_ping": {}, "mod_version": {}, "mod_time": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_disco, mod_version and mod_time starts")
        t.diag(e)
        t.done()
    try:
        t.run("version and time", test_version_time, srv)
        t.run("pre-auth caps", test_pre_auth_caps, srv)
        t.run("caps", test_caps, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.run("show_os", test_show_os)
    t.done()


if __name__ == "__main__":
    main()
