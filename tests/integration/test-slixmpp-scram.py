#!/usr/bin/python3
"""A default slixmpp (1.8.3, Debian's python3-slixmpp) against the
default configuration over STARTTLS logs in with SCRAM-SHA-256 (issue
10, section 2). slixmpp binds only with tls-unique: over TLS 1.3 its
SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS are refused (the stream has
tls-exporter), then its
SCRAM-SHA-256 carries the gs2 flag 'y', which the listener's default
scram_y_flag = tls13 accepts. With scram_y_flag = refuse it falls back
to PLAIN, as before. The server log gives each failure's reason.
Prints TAP; ignores --tap."""
import asyncio
import logging
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Server, Tap  # noqa: E402

import slixmpp  # noqa: E402


class Login(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        # The test server's certificate is self-signed.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.mechanism = None
        self.failures = 0
        self.add_event_handler("session_start", self.started)
        self.add_event_handler("failed_auth", self.failed)
        self.add_event_handler("failed_all_auth", lambda *_: self.disconnect())

    def failed(self, *_):
        self.failures += 1

    async def started(self, _):
        self.mechanism = self["feature_mechanisms"].mech.name
        self.disconnect()


def login(srv, user, password):
    """Returns (mechanism or None, failed attempts)."""

    c = Login("%s@localhost" % user, password)
    c.connect(("127.0.0.1", srv.port))  # STARTTLS, as by default
    try:
        c.loop.run_until_complete(asyncio.wait_for(c.disconnected, 30))
    except asyncio.TimeoutError:
        pass

    return c.mechanism, c.failures


def log_text(srv):
    with open(srv.log_path, errors="replace") as f:
        return f.read()


def test_default(t):
    # The default [auth] mechanisms (with -PLUS) and STARTTLS optional on
    # loopback: what a quickstart server offers.
    srv = Server({}, auth={"mechanisms": None}, listen={"tls": "optional"})
    try:
        srv.register("alice", "right pw")
        mech, failures = login(srv, "alice", "right pw")
        t.ok(mech == "SCRAM-SHA-256", "default slixmpp logs in with SCRAM-SHA-256 (%s)" % mech)
        t.ok(failures == 2, "after its two -PLUS attempts with tls-unique were refused (%d)" %
             failures)
        log = log_text(srv)
        t.ok("authenticated as alice@localhost (SCRAM-SHA-256)" in log,
             "the server log names the mechanism")
        t.ok("unsupported channel binding type tls-unique (this stream has tls-exporter)" in log,
             "the server log gives the reason of the -PLUS failure")
        mech, failures = login(srv, "alice", "wrong pw")
        t.ok(mech is None, "a wrong password does not log in")
        t.ok("wrong password (client proof) for alice" in log_text(srv),
             "the server log says: wrong password")
        t.ok("wrong pw" not in log_text(srv), "the password is not in the log")
    finally:
        srv.stop()


def test_refuse(t):
    srv = Server({}, auth={"mechanisms": None},
                 listen={"tls": "optional", "scram_y_flag": "refuse"})
    try:
        srv.register("alice", "right pw")
        mech, failures = login(srv, "alice", "right pw")
        t.ok(mech == "PLAIN", "scram_y_flag = refuse: slixmpp ends up with PLAIN (%s)" % mech)
        t.ok("flag 'y' while -PLUS with tls-exporter was offered" in log_text(srv),
             "the server log gives the reason of the 'y' refusal")
    finally:
        srv.stop()


def main():
    logging.basicConfig(level=logging.CRITICAL)
    t = Tap()
    t.run("default", test_default)
    t.run("refuse", test_refuse)
    t.done()


if __name__ == "__main__":
    main()
