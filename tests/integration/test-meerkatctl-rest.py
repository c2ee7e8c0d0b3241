#!/usr/bin/python3
"""meerkatctl through the running server's admin REST API: status (with
--json), sessions, send, kick (the client gets its stream error), passwd,
unregister (hooks run: the session ends), domains; the server's error
messages with a non-zero exit; and, once the server stopped, status and
the server-only commands exit 3 while unregister falls back to the
database, and the same over HTTPS (tls = direct). Prints TAP; ignores --tap."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import (NS_CLIENT, NS_STREAM, TOP_BUILDDIR, Client, Server, Tap, q,  # noqa: E402
                     stream_error)

CTL = os.path.join(TOP_BUILDDIR, "tools", "meerkatctl")


def ctl(srv, *args):
    p = subprocess.run([CTL, "-c", srv.conf] + list(args), capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def scenario(t, srv):
    srv.register("amy")
    srv.register("ben")
    rc, out, err = ctl(srv, "status")
    t.ok(rc == 0 and "running" in out, "status: 0, running (%r %r)" % (out, err))
    rc, out, _ = ctl(srv, "--json", "status")
    t.ok(rc == 0 and json.loads(out)["running"] is True, "status --json: {running: true}")

    ben = Client(srv, "ben", resource="desk")
    ben.presence()
    rc, out, _ = ctl(srv, "sessions", "localhost")
    t.ok(rc == 0 and out.split() == ["ben@localhost/desk"], "sessions localhost lists ben")
    rc, out, _ = ctl(srv, "--json", "sessions", "localhost")
    t.ok(rc == 0 and json.loads(out) == ["ben@localhost/desk"], "sessions --json: the JSON array")

    rc, _, err = ctl(srv, "send", "amy@localhost", "ben@localhost", "hello from ctl")
    t.ok(rc == 0, "send: 0 (%r)" % err)
    msg = ben.expect(lambda e: e.tag == q(NS_CLIENT, "message"), what="the message")
    t.ok(msg.findtext(q(NS_CLIENT, "body")) == "hello from ctl" and
         msg.get("from") == "amy@localhost", "ben receives it from amy")

    rc, _, err = ctl(srv, "send", "ghost@localhost", "ben@localhost", "x")
    t.ok(rc == 1 and "server: unknown user ghost@localhost (HTTP 400)" in err,
         "a server error: exit 1 with its message (%r)" % err)
    rc, out, err = ctl(srv, "--json", "unregister", "nobody", "localhost")
    t.ok(rc == 1 and json.loads(out).get("error") and "unknown user" in err,
         "unregister of an unknown user: exit 1, the error JSON with --json")

    rc, _, err = ctl(srv, "kick", "ben", "localhost", "desk")
    t.ok(rc == 0, "kick: 0 (%r)" % err)
    el = ben.expect(lambda e: e.tag == q(NS_STREAM, "error"), what="the stream error")
    t.ok(stream_error(el) == "policy-violation", "the kicked client gets policy-violation")

    rc, _, err = ctl(srv, "passwd", "amy", "localhost", "n3w")
    t.ok(rc == 0, "passwd through the API: 0 (%r)" % err)
    amy = Client(srv, "amy", "n3w")
    t.ok(amy.jid is not None, "amy logs in with the new password")
    rc, _, err = ctl(srv, "unregister", "amy", "localhost")
    t.ok(rc == 0 and "unregistered" in err, "unregister through the API: 0")
    el = amy.expect(lambda e: e.tag in (q(NS_STREAM, "error"), q(NS_STREAM, "end-of-stream")),
                    what="the end of amy's session")
    t.ok(stream_error(el) == "not-authorized", "her session ends (the server ran the removal)")

    rc, _, _ = ctl(srv, "add_domain", "extra.example", "default")
    rc2, out, _ = ctl(srv, "domain", "extra.example")
    t.ok(rc == 0 and rc2 == 0 and "host_type default" in out, "add_domain, then domain shows it")
    rc, _, _ = ctl(srv, "remove_domain", "extra.example", "default")
    rc2, _, err = ctl(srv, "domain", "extra.example")
    t.ok(rc == 0 and rc2 == 1 and "unknown domain" in err, "remove_domain: it is gone")


def offline(t, srv):
    srv.register("cid")
    srv.stop(remove=False)
    rc, out, err = ctl(srv, "status")
    t.ok(rc == 3 and "not running" in err, "status with the server stopped: exit 3 (%r)" % err)
    rc, _, _ = ctl(srv, "kick", "cid", "localhost", "r")
    t.ok(rc == 3, "kick with the server stopped: exit 3")
    rc, _, err = ctl(srv, "unregister", "cid", "localhost")
    t.ok(rc == 0 and not srv.sql("SELECT 1 FROM users WHERE username = 'cid'"),
         "unregister falls back to the database (%r)" % err)
    rc, _, err = ctl(srv, "--offline", "sessions", "localhost")
    t.ok(rc == 2, "a server-only command with --offline: usage error")


def over_https(t, pwfile):
    srv = Server({"mod_rest_admin": {"password_file": pwfile}}, http={"tls": "direct"})
    try:
        srv.register("dee")
        rc, out, err = ctl(srv, "--json", "status")
        t.ok(rc == 0 and json.loads(out)["running"], "status over HTTPS (%r)" % err)
        rc, _, err = ctl(srv, "unregister", "dee", "localhost")
        t.ok(rc == 0 and not srv.sql("SELECT 1 FROM users WHERE username = 'dee'"),
             "unregister through the API over HTTPS (%r)" % err)
    finally:
        srv.stop()


def main():
    t = Tap()
    pwdir = tempfile.mkdtemp(prefix="mk-ctl.")
    pwfile = os.path.join(pwdir, "admin-password")
    with open(pwfile, "w") as f:
        f.write("ctl-pw\n")
    srv = Server({"mod_rest_admin": {"password_file": pwfile}, "mod_roster": {}}, http={})
    try:
        t.run("through the API", scenario, srv)
        t.run("offline", offline, srv)
    finally:
        srv.stop()
    t.run("https", over_https, pwfile)
    shutil.rmtree(pwdir, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
