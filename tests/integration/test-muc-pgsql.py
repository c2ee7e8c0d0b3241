#!/usr/bin/python3
"""mod_muc on PostgreSQL (a throwaway server from tests/pg-tmp.sh): the
scenarios of test-muc-store.py, persistence over a restart,
hibernation and room MAM, with the rooms in PostgreSQL. Skipped
without PostgreSQL. Prints TAP; ignores --tap."""
import importlib.util
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import TOP_BUILDDIR  # noqa: E402
from muctest import ready  # noqa: E402
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


if __name__ == "__main__":
    run("mod_muc", store.MODULES, scenarios)
