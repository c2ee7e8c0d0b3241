#!/usr/bin/python3
"""mod_muc_light (MongooseIM's urn:xmpp:muclight:0) on sqlite: rooms,
configuration, affiliations, destruction, blocking, limits, groupchat
fan-out with archive and offline delivery, disco, a restart; then, on a
second server, what all_can_invite, all_can_configure and
promote_on_owner_leave change. Scenarios
in muclighttest.py. Prints TAP; ignores --tap."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import muclighttest as ml  # noqa: E402
from modtest import Server, Tap  # noqa: E402


def main():
    t = Tap()
    srv = Server(ml.MODULES)
    try:
        t.run("create", ml.test_create, srv)
        t.run("configuration", ml.test_config, srv)
        t.run("affiliations", ml.test_affiliations, srv)
        t.run("destroy", ml.test_destroy, srv)
        t.run("blocking", ml.test_blocking, srv)
        t.run("rooms per user", ml.test_rooms_per_user, srv)
        t.run("messages", ml.test_messages, srv)
        t.run("disco", ml.test_disco, srv)
        t.run("stream management", ml.test_stream_management, srv)
        t.run("account removed", ml.test_account_removed, srv)
        t.run("restart", ml.test_restart, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    srv = Server(ml.OPEN_MODULES)
    try:
        t.run("members' rights by configuration", ml.test_options, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
