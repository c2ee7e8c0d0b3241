#!/usr/bin/python3
"""meerkat-bench's register scenario (XEP-0077 in-band registration, used
by tools/bench/bench-peers to provision the peers) against a meerkatd with
mod_register: 20 accounts are created, a second pass counts the existing
ones (conflict) as done, the accounts then log in; a wrong password does
not. A smoke test: no timing is checked. Prints TAP; ignores --tap."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import TOP_BUILDDIR, Server, Tap  # noqa: E402

N = 20


def bench(srv, *args):
    """Runs the generator; returns its JSON summary ({} if none)."""
    cmd = [os.path.join(TOP_BUILDDIR, "tools", "bench", "meerkat-bench"), "--port", str(srv.port),
           "--users", str(N), "--rate", "200", "--settle", "0", "--login-timeout", "20"]
    p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"stderr": p.stderr}


def main():
    t = Tap()
    try:
        # registration_limit 0: the generator registers N accounts from
        # four source addresses, more than the default 5 per address.
        srv = Server({"mod_register": {"allow_registration": "true",
                                       "registration_limit": 0},
                      "mod_roster": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_register starts")
        t.diag(e)
        t.done()
    try:
        r = bench(srv, "--scenario", "register")
        t.ok(r.get("sessions") == N and r.get("failed") == 0, "register: %d accounts made" % N)
        t.diag(r)
        r = bench(srv, "--scenario", "register")
        t.ok(r.get("sessions") == N and r.get("failed") == 0,
             "register again: the existing accounts (conflict) count as done")
        t.diag(r)
        r = bench(srv)
        t.ok(r.get("sessions") == N and r.get("failed") == 0, "the registered accounts log in")
        t.diag(r)
        r = bench(srv, "--password", "wrong")
        t.ok(r.get("sessions") == 0 and r.get("failed") == N, "a wrong password does not")
        t.diag(r)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
