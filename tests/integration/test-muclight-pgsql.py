#!/usr/bin/python3
"""mod_muc_light's room storage on PostgreSQL: the scenarios of
test-muclight.py (muclighttest.py) that write and read rooms, blocking
lists, the archive and offline copies, and a restart, against one
throwaway PostgreSQL. Skipped without PostgreSQL. Prints TAP."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import muclighttest as ml  # noqa: E402
from pgtest import run  # noqa: E402


def scenarios(t, srv, pg):
    # Accounts go into PostgreSQL through meerkatctl, not into sqlite.
    ctl = os.path.join(ml.TOP_BUILDDIR, "tools", "meerkatctl")
    srv.register = lambda user, password="secret": subprocess.run(
        [ctl, "-c", srv.conf, "register", user, "localhost", password], check=True,
        capture_output=True)
    t.run("create", ml.test_create, srv)
    t.run("configuration", ml.test_config, srv)
    t.run("affiliations", ml.test_affiliations, srv)
    t.run("destroy", ml.test_destroy, srv)
    t.run("blocking", ml.test_blocking, srv)
    t.run("rooms per user", ml.test_rooms_per_user, srv)
    t.run("messages", ml.test_messages, srv)
    t.run("disco", ml.test_disco, srv)
    t.run("stream management", ml.test_stream_management, srv)
    t.run("restart", ml.test_restart, srv)
    t.ok(pg.sql("SELECT COUNT(*) FROM muclight_rooms") != "0", "the rooms are rows in PostgreSQL")


def main():
    run("mod_muc_light", ml.MODULES, scenarios)


if __name__ == "__main__":
    main()
