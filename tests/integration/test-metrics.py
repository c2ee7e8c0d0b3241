#!/usr/bin/python3
"""Metrics: SIGUSR1 makes meerkatd log every counter as "metric NAME VALUE",
with the values counted so far, and shutting down logs them once more.
Prints TAP; ignores --tap."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Client, Server, Tap  # noqa: E402

NS_PRIVATE = "jabber:iq:private"


def metric_lines(srv):
    with open(srv.log_path, errors="replace") as f:
        return re.findall(r"metric (\S+) (-?\d+)$", f.read(), re.M)


def wait_for(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    return pred()


def test_metrics(t, srv):
    srv.register("alice")
    a = Client(srv, "alice")
    for _ in range(3):
        a.iq("<query xmlns='%s'><prefs xmlns='urn:example:prefs'/></query>" % NS_PRIVATE)
    a.close()
    srv.proc.send_signal(signal.SIGUSR1)
    lines = wait_for(lambda: [m for m in metric_lines(srv) if m[0].endswith(".mod_private.gets")])
    t.ok(lines == [("default.mod_private.gets", "3")],
         "SIGUSR1 logs the counter of three private-storage gets once, as 3 (%s)" % lines)
    srv.proc.send_signal(signal.SIGTERM)
    srv.proc.wait(10)
    lines = [m for m in metric_lines(srv) if m[0] == "default.mod_private.gets"]
    t.ok(srv.proc.returncode == 0 and len(lines) == 2 and lines[1][1] == "3",
         "shutting down logs it again (%s, exit %d)" % (lines, srv.proc.returncode))


def main():
    t = Tap()
    try:
        srv = Server({"mod_private": {}})
    except Exception as e:
        t.ok(False, "meerkatd with mod_private starts")
        t.diag(e)
        t.done()
    try:
        t.run("metrics", test_metrics, srv)
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.done()


if __name__ == "__main__":
    main()
