#!/usr/bin/python3
"""mod_muc on PostgreSQL (a throwaway server from tests/pg-tmp.sh): the
scenarios of test-muc-store.py, persistence over a restart,
hibernation and room MAM, with the rooms in PostgreSQL; the discussion
history written at shutdown and read back after the restart. Skipped
without PostgreSQL. Prints TAP; ignores --tap."""
import importlib.util
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import NS_CLIENT, TOP_BUILDDIR, Client, q  # noqa: E402
from muctest import (NS_DELAY, codes, create, is_groupchat, join, ready, room_jid,  # noqa: E402
                     say)
from pgtest import run  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "muc_store", os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-muc-store.py"))
store = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(store)


def scenarios(t, srv, pg):
    ready(srv, 2)  # the second start: on PostgreSQL
    for u in store.USERS:
        subprocess.run([os.path.join(TOP_BUILDDIR, "tools", "meerkatctl"), "-c", srv.conf,
                        "register", u, "localhost", "secret"], check=True, capture_output=True)
    store.scenarios(t, srv)
    t.ok(pg.sql("SELECT config LIKE '%persistent=true%' FROM muc_rooms WHERE name = 'keep'")
         == "t", "the room's row is in PostgreSQL")
    history_after_restart(t, srv, pg)


def history_after_restart(t, srv, pg):
    """A persistent room's discussion history written at shutdown into
    PostgreSQL and read back by the first join after the restart."""
    bob, carol = Client(srv, "bob"), Client(srv, "carol")
    create(bob, "pgkeep", "B", [("muc#roomconfig_persistentroom", "1")])
    join(carol, "pgkeep", "C")
    say(bob, "pgkeep", "pg one")
    carol.expect(is_groupchat(room_jid("pgkeep") + "/B", "pg one"), 5, "pg one")
    with open(srv.log_path, errors="replace") as f:
        starts = len(re.findall(r"mod_muc: \d+ stored rooms counted", f.read()))
    srv.restart()
    p = carol.maybe(lambda e: e.tag == q(NS_CLIENT, "presence") and
                    e.get("from") == room_jid("pgkeep") + "/C" and
                    e.get("type") == "unavailable", 5)
    t.ok(p is not None and 332 in codes(p), "at shutdown the occupant gets 332")
    t.ok(pg.sql("SELECT history IS NOT NULL FROM muc_rooms WHERE name = 'pgkeep'") == "t",
         "the history is in the room's row in PostgreSQL")
    ready(srv, starts + 1)
    carol = Client(srv, "carol")
    join(carol, "pgkeep", "C")
    e = carol.expect(lambda e: e.tag == q(NS_CLIENT, "message") and
                     e.find(q(NS_DELAY, "delay")) is not None, 10, "history")
    t.ok(e.findtext(q(NS_CLIENT, "body")) == "pg one" and
         e.get("from") == room_jid("pgkeep") + "/B", "the first join after the restart gets it")
    for c in (bob, carol):
        c.close()


if __name__ == "__main__":
    run("mod_muc", store.MODULES, scenarios)
