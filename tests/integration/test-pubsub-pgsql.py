#!/usr/bin/python3
"""mod_pubsub on PostgreSQL (a throwaway server from tests/pg-tmp.sh): the
pgsql migration and every scenario of test-pubsub.py (nodes, items,
subscriptions, affiliations, access models, errors, a restart keeping
nodes and items) on it, then an account's PEP nodes going with
meerkatctl unregister. Skipped without PostgreSQL. Prints TAP; ignores
--tap."""
import importlib.util
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from modtest import TOP_BUILDDIR, Client  # noqa: E402
from pgtest import run  # noqa: E402
from pubsubtest import publish, restart  # noqa: E402

spec = importlib.util.spec_from_file_location("test_pubsub", os.path.join(HERE, "test-pubsub.py"))
service = importlib.util.module_from_spec(spec)
spec.loader.exec_module(service)


def ctl(srv, *args):
    return subprocess.run([os.path.join(TOP_BUILDDIR, "tools", "meerkatctl"), "-c", srv.conf] +
                          list(args), capture_output=True, text=True).returncode


def scenarios(t, srv, pg):
    service.scenarios(t, srv, lambda u: ctl(srv, "register", u, "localhost", "secret"),
                      lambda: restart(srv))
    ctl(srv, "register", "gone", "localhost", "secret")
    g = Client(srv, "gone")
    res = publish(g, "http://jabber.org/protocol/nick",
                  "<nick xmlns='http://jabber.org/protocol/nick'>G</nick>", "current", to=None)
    t.ok(res.get("type") == "result", "PEP on PostgreSQL: a publish creates the node")
    g.close()
    n = int(pg.sql("SELECT COUNT(*) FROM pubsub_items WHERE service = 'gone@localhost'"))
    t.ok(ctl(srv, "unregister", "gone", "localhost") == 0 and n == 1 and
         pg.sql("SELECT COUNT(*) FROM pubsub_nodes WHERE service = 'gone@localhost'") == "0" and
         pg.sql("SELECT COUNT(*) FROM pubsub_items WHERE service = 'gone@localhost'") == "0",
         "meerkatctl unregister removes the account's nodes and items")


if __name__ == "__main__":
    run("mod_pubsub", service.MODULES, scenarios)
