#!/usr/bin/python3
"""mod_muc_light's REST endpoints with the rooms in PostgreSQL: the
scenario of test-muclight-rest.py (its room listing and owner lookups
are joins of their own) against one throwaway PostgreSQL. Skipped
without PostgreSQL. Prints TAP; ignores --tap."""
import asyncio
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from modtest import TOP_BUILDDIR, Server, Tap  # noqa: E402
from pgtest import Pg, on_pgsql  # noqa: E402

_spec = importlib.util.spec_from_file_location("muclight_rest",
                                               os.path.join(HERE, "test-muclight-rest.py"))
mr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mr)


def wait_port(port):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d does not listen" % port)


def main():
    logging.basicConfig(level=logging.CRITICAL)
    t = Tap()
    if not os.path.isdir("/usr/lib/postgresql"):
        print("1..0 # SKIP no PostgreSQL")
        return
    pwdir = tempfile.mkdtemp(prefix="mk-mlrest-pg.")
    pwfile = os.path.join(pwdir, "admin-password")
    with open(pwfile, "w") as f:
        f.write(mr.A[1] + "\n")
    pg = Pg()
    srv = Server({"mod_roster": None, "mod_disco": None, "mod_offline": None,
                  "mod_mam": {"flush_interval_ms": 10},
                  "mod_muc_light": {"rest_admin_password_file": pwfile}}, http={})
    try:
        on_pgsql(srv, pg)
        wait_port(srv.http_port)
        # Accounts go into PostgreSQL through meerkatctl, not into sqlite.
        ctl = os.path.join(TOP_BUILDDIR, "tools", "meerkatctl")
        for n in ("ann", "bob", "cid"):
            subprocess.run([ctl, "-c", srv.conf, "register", n, "localhost", mr.PW], check=True,
                           capture_output=True)
        srv.write_sql = pg.sql

        def run(t):
            asyncio.get_event_loop().run_until_complete(mr.scenario(t, srv))
        t.run("rest on pgsql", run)
        t.ok(pg.sql("SELECT COUNT(*) FROM muclight_rooms") == "3",
             "the three rooms left are rows in PostgreSQL")
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
        pg.stop()
        shutil.rmtree(pwdir, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
