#!/usr/bin/python3
"""Prometheus metrics ([metrics] textfile, docs/metrics.md) against a real
meerkatd driven by slixmpp clients: a failed and two good logins, presence,
a delivered message, an offline one and a bounce. The file is parsed with
prometheus_client's own text parser (Debian's python3-prometheus-client),
and the counters must move by exactly what the clients did and saw: the
stanzas each client sent and received by kind, the router's outcomes, the
auth attempts by mechanism and result, connections and sessions back to
zero at the end. promtool (Debian's prometheus) checks the file too when
it is installed. A second server shows the file refreshed by its timer,
and a bad key stops the start with the key named.
Prints TAP; ignores --tap."""
import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import Server, Tap  # noqa: E402

import slixmpp  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

KINDS = ("message", "presence", "iq")
CONF = "\n[metrics]\ntextfile = metrics.prom\ntextfile_interval = %d\n"


class Client(slixmpp.ClientXMPP):
    """Counts every stanza it sends and receives, by kind."""

    def __init__(self, jid, password="secret"):
        super().__init__(jid, password)
        self.sent = dict.fromkeys(KINDS, 0)
        self.got = dict.fromkeys(KINDS, 0)
        self.messages = []
        self.own_presence = asyncio.Event()
        self.started = asyncio.Event()
        self.auth_failed = asyncio.Event()
        self.add_filter("out", self.count_out)
        self.add_filter("in", self.count_in)
        self.add_event_handler("session_start", lambda _: self.started.set())
        self.add_event_handler("failed_all_auth", lambda _: self.auth_failed.set())
        self.add_event_handler("message", self.messages.append)
        self.add_event_handler("presence_available", self.on_available)

    def count_out(self, st):
        if st.name in self.sent:
            self.sent[st.name] += 1
        return st

    def count_in(self, st):
        if st.name in self.got:
            self.got[st.name] += 1
        return st

    def on_available(self, pres):
        if pres["from"] == self.boundjid:
            self.own_presence.set()

    def start(self, srv):
        self.connect(("127.0.0.1", srv.port), force_starttls=False, disable_starttls=True)


def scrape(srv, signal_it=True):
    """Asks for a fresh file (SIGUSR1) and parses it: {(name, labels): value}."""
    path = os.path.join(srv.state, "metrics.prom")
    if os.path.exists(path):
        os.unlink(path)
    if signal_it:
        srv.proc.send_signal(signal.SIGUSR1)
    deadline = time.time() + 10
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.02)
    with open(path) as f:
        text = f.read()
    values = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return values, text


def v(values, name, **labels):
    return values.get((name, tuple(sorted(labels.items()))), 0)


def delta(after, before, name, **labels):
    return v(after, name, **labels) - v(before, name, **labels)


async def until(pred, what, timeout=20):
    deadline = time.time() + timeout
    while not pred():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        await asyncio.sleep(0.02)


async def scenario(t, srv):
    m0, text = scrape(srv)
    info = [val for k, val in m0.items() if k[0] == "meerkat_build_info"]
    t.ok(v(m0, "meerkat_connections", listener="c2s", type="c2s") == 0 and info == [1],
         "the first scrape parses: no connections yet, build info 1 (%s)" % info)
    t.ok(v(m0, "process_resident_memory_bytes") > 0 and v(m0, "process_open_fds") > 0 and
         v(m0, "process_start_time_seconds") > time.time() - 600 and
         v(m0, "process_max_fds") > 0 and "process_cpu_seconds_total" in text,
         "process RSS, open fds, max fds, start time and CPU are there")

    # A wrong password: one SCRAM-SHA-256 failure, nothing else.
    bad = Client("alice@localhost/bad", "wrong")
    bad.start(srv)
    await asyncio.wait_for(bad.auth_failed.wait(), 20)
    bad.disconnect()
    await asyncio.wait_for(bad.disconnected, 10)
    m1, _ = scrape(srv)
    t.ok(delta(m1, m0, "meerkat_auth_attempts_total", mechanism="SCRAM-SHA-256",
               result="failure") == 1 and
         sum(delta(m1, m0, k[0], **dict(k[1])) for k in m1
             if k[0] == "meerkat_auth_attempts_total") == 1,
         "a wrong password counts one failure, under SCRAM-SHA-256, and nothing else")

    a, b = Client("alice@localhost/a"), Client("bob@localhost/b")
    for c in (a, b):
        c.start(srv)
    await asyncio.wait_for(asyncio.gather(a.started.wait(), b.started.wait()), 30)
    m2, _ = scrape(srv)
    t.ok(delta(m2, m1, "meerkat_auth_attempts_total", mechanism="SCRAM-SHA-256",
               result="success") == 2 and
         delta(m2, m1, "meerkat_auth_attempts_total", mechanism="SCRAM-SHA-256",
               result="failure") == 0,
         "two logins count two successes")
    await until(lambda: v(scrape(srv)[0], "meerkat_connections", listener="c2s",
                          type="c2s") == 2, "two connections")
    m2, _ = scrape(srv)
    t.ok(v(m2, "meerkat_connections", listener="c2s", type="c2s") == 2 and
         v(m2, "meerkat_sessions", host_type="default") == 2,
         "two connections on listener c2s and two sessions of host type default")

    # Initial presence: each gets its own back (no roster module).
    for c in (a, b):
        c.send_presence()
    await asyncio.wait_for(asyncio.gather(a.own_presence.wait(), b.own_presence.wait()), 10)

    # Delivered, offline, bounced.
    a.send_message(mto="bob@localhost", mbody="hello", mtype="chat")
    await until(lambda: any(m["body"] == "hello" for m in b.messages), "bob's message")
    a.send_message(mto="carol@localhost", mbody="later", mtype="chat")
    await until(lambda: delta(scrape(srv)[0], m2, "meerkat_routed_stanzas_total",
                              outcome="offline") >= 1, "the offline message")
    a.send_message(mto="dave@elsewhere.example", mbody="lost", mtype="chat")
    await until(lambda: any(m["type"] == "error" for m in a.messages), "the bounce")
    # The offline row is written on a storage thread after the router
    # counted it: wait for the write, then read everything at once.
    await until(lambda: delta(scrape(srv)[0], m2, "meerkat_mod_offline_stored_total",
                              host_type="default") >= 1, "the offline row written")
    m3, _ = scrape(srv)
    # Delivered: the message to bob, and the bounce's error back to alice.
    t.ok(delta(m3, m2, "meerkat_routed_stanzas_total", outcome="delivered") == 2 and
         delta(m3, m2, "meerkat_routed_stanzas_total", outcome="offline") == 1 and
         delta(m3, m2, "meerkat_routed_stanzas_total", outcome="bounced") == 1,
         "the router counts two delivered (one an error), one offline, one bounced (%s)" %
         [delta(m3, m2, "meerkat_routed_stanzas_total", outcome=o)
          for o in ("delivered", "offline", "bounced")])
    t.ok(delta(m3, m2, "meerkat_mod_offline_stored_total", host_type="default") == 1,
         "mod_offline's counter is exported with its host type: one stored")

    clients = (bad, a, b)
    for kind in KINDS:
        sent = sum(c.sent[kind] for c in clients)
        got = sum(c.got[kind] for c in clients)
        t.ok(v(m3, "meerkat_stanzas_received_total", kind=kind) == sent and
             v(m3, "meerkat_stanzas_sent_total", kind=kind) == got,
             "%s stanzas: received %d as the clients sent, sent %d as the clients got" %
             (kind, v(m3, "meerkat_stanzas_received_total", kind=kind),
              v(m3, "meerkat_stanzas_sent_total", kind=kind)))
    t.ok(a.sent["message"] == 3 and b.got["message"] == 1 and a.got["message"] == 1,
         "alice sent three messages; bob got one, alice the one error")
    t.ok(v(m3, "meerkat_db_query_duration_seconds_count", driver="sqlite3") > 0 and
         v(m3, "meerkat_db_query_duration_seconds_bucket", driver="sqlite3", le="+Inf") ==
         v(m3, "meerkat_db_query_duration_seconds_count", driver="sqlite3") and
         v(m3, "meerkat_db_query_errors_total", driver="sqlite3") == 0,
         "the database histogram counts the queries, +Inf equal to _count, no errors")
    t.ok(v(m3, "meerkat_worker_mailbox_jobs", worker="0") >= 0 and
         ("meerkat_worker_mailbox_jobs", (("worker", "1"),)) in m3 and
         ("meerkat_jobpool_queued_jobs", (("pool", "auth"),)) in m3 and
         ("meerkat_jobpool_queued_jobs", (("pool", "storage"),)) in m3,
         "mailbox depth of both workers and the queues of both pools are there")

    for c in (a, b):
        c.disconnect()
    await asyncio.wait_for(asyncio.gather(a.disconnected, b.disconnected), 10)
    await until(lambda: v(scrape(srv)[0], "meerkat_sessions", host_type="default") == 0 and
                v(scrape(srv)[0], "meerkat_connections", listener="c2s", type="c2s") == 0,
                "sessions and connections back to 0")
    t.ok(True, "after the logouts: 0 sessions, 0 connections")

    if shutil.which("promtool"):
        path = os.path.join(srv.state, "metrics.prom")
        r = subprocess.run(["promtool", "check", "metrics"], stdin=open(path), text=True,
                           capture_output=True)
        t.ok(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
             "promtool check metrics finds nothing (%s%s)" % (r.stdout, r.stderr))
    else:
        t.ok(True, "# SKIP promtool is not installed")


def test_timer(t):
    srv = Server({}, extra_conf=CONF % 1)
    try:
        first, _ = scrape(srv, signal_it=False)  # written at start, then every second
        t.ok(("meerkat_connections", (("listener", "c2s"), ("type", "c2s"))) in first,
             "without a signal, the timer writes the file again")
    finally:
        srv.stop()


def test_bad_key(t):
    try:
        srv = Server({}, extra_conf=CONF % 0)
        srv.stop()
        t.ok(False, "textfile_interval = 0 is refused")
    except RuntimeError as e:
        t.ok("textfile_interval" in str(e) and "metrics" in str(e),
             "textfile_interval = 0 stops the start, naming [metrics] and the key")


def main():
    logging.basicConfig(level=logging.CRITICAL)
    t = Tap()
    srv = Server({"mod_offline": None}, auth={"mechanisms": "SCRAM-SHA-256"},
                 extra_conf=CONF % 3600)
    try:
        srv.register("alice")
        srv.register("bob")
        srv.register("carol")
        t.run("slixmpp", lambda t: asyncio.get_event_loop().run_until_complete(
            scenario(t, srv)))
    finally:
        if t.failed:
            t.diag(srv.log_text())
        srv.stop()
    t.run("timer", test_timer)
    t.run("bad key", test_bad_key)
    t.done()


if __name__ == "__main__":
    main()
