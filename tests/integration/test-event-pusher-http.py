#!/usr/bin/env python3
"""mod_event_pusher's http backend against a webhook receiver in this test
(Python's http.server on loopback).

- events and their JSON: login, presence, chat_sent, chat_received (with
  offline true/false), logout; each event POSTed exactly once, on a
  kept-alive connection; a long body of odd characters (tab, newline,
  quotes, backslashes, markup, non-ASCII) survives the escaping intact
- a 500 answer is retried (with back-off) and the event arrives once
- the receiver restarts: events after it arrive (connections made anew)
- a hanging receiver: messages still reach their recipient at once; the
  queue stays bounded (http_dropped counted, a "queue full" log line)
- a filter: only chat_received for users with no active session
- http_batch: arrays of events, each once
- https: a self-signed webhook is refused by default (http_failed), and
  reached with http_tls_verify = false
- push_virtual_pubsub_hosts: a notification to an app server on a
  virtual pubsub host reaches the webhook as a "push" event (summary and
  publish-options), once per message, and never as an IQ; an enablement
  of a real app server on the same account still gets its IQ
"""
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import DOMAIN, NS_CLIENT, Client, Server, Tap, free_port, q  # noqa: E402


class Receiver:
    """A webhook: records each JSON body; can answer 500 a few times, or hang."""

    def __init__(self, port=None, tls=None):
        self.port = port or free_port()
        self.tls = tls  # (certfile, keyfile): answer over TLS
        self.events = []
        self.posts = []
        self.connections = 0
        self.open = set()  # connection sockets, closed by stop()
        self.attempts = 0
        self.fail_next = 0
        self.hang = threading.Event()  # set: requests hang until released
        self.release = threading.Event()
        self.cond = threading.Condition()
        self.start()

    def start(self):
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                with rec.cond:
                    rec.connections += 1
                    rec.open.add(self.request)
                BaseHTTPRequestHandler.setup(self)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with rec.cond:
                    rec.attempts += 1
                    fail = rec.fail_next > 0
                    if fail:
                        rec.fail_next -= 1
                if rec.hang.is_set():
                    rec.release.wait(30)
                    return
                code = 500 if fail else 204
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if not fail:
                    doc = json.loads(body.decode())
                    with rec.cond:
                        rec.posts.append(doc)
                        for e in (doc if isinstance(doc, list) else [doc]):
                            rec.events.append((self.headers.get("Content-Type"), e))
                        rec.cond.notify_all()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        """Stops as a process would: the listener and every connection."""
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.cond:
            for sock in self.open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.open.clear()

    def wait(self, pred, timeout=15):
        """Waits until pred(events) is true."""
        deadline = time.time() + timeout
        with self.cond:
            while not pred(self.events):
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def of(self, event, body=None):
        return [e for _, e in self.events
                if e["event"] == event and (body is None or e.get("body") == body)]


def chat(frm, to, body):
    frm.send("<message to='%s' type='chat'><body>%s</body></message>" % (to, body))


def is_msg(body):
    def pred(e):
        b = e.find(q(NS_CLIENT, "body"))
        return e.tag == q(NS_CLIENT, "message") and b is not None and b.text == body
    return pred


def metrics(srv):
    """The counters the server logs on SIGUSR1."""
    with open(srv.log_path, errors="replace") as f:
        before = f.read().count("metric ")
    srv.proc.send_signal(signal.SIGUSR1)
    deadline = time.time() + 10
    while time.time() < deadline:
        with open(srv.log_path, errors="replace") as f:
            text = f.read()
        if text.count("metric ") > before:
            time.sleep(0.2)  # the rest of the dump's lines
            with open(srv.log_path, errors="replace") as f:
                text = f.read()
            return dict((m.group(1), int(m.group(2)))
                        for m in re.finditer(r"metric (\S+) (-?\d+)", text))
        time.sleep(0.05)
    return {}


def test_events(t, srv, rec):
    srv.register("alice")
    srv.register("bob")
    a = Client(srv, "alice")
    a.presence("", extra="<show>away</show><status>lunch</status>")
    b = Client(srv, "bob")
    b.presence()
    a.expect(lambda e: e.tag == q(NS_CLIENT, "presence"), what="own presence")
    b.expect(lambda e: e.tag == q(NS_CLIENT, "presence"), what="own presence")
    chat(b, "alice@%s" % DOMAIN, "hello \"json\" \\ ok")
    a.expect(is_msg("hello \"json\" \\ ok"), what="the message")
    ok = rec.wait(lambda ev: len(rec.of("chat_received")) >= 1 and len(rec.of("chat_sent")) >= 1)
    t.ok(ok, "chat_sent and chat_received arrive")
    sent, recv = rec.of("chat_sent"), rec.of("chat_received")
    t.ok(len(sent) == 1 and sent[0]["user"] == "bob@%s" % DOMAIN and
         sent[0]["from"] == b.jid and sent[0]["to"] == "alice@%s" % DOMAIN and
         sent[0]["body"] == "hello \"json\" \\ ok" and isinstance(sent[0]["timestamp"], int),
         "chat_sent once, with user, from, to, body, timestamp (%s)" % sent)
    t.ok(len(recv) == 1 and recv[0]["user"] == "alice@%s" % DOMAIN and
         recv[0]["offline"] is False, "chat_received once, offline false (%s)" % recv)
    # Longer than the hooks' stack buffer for the JSON (1 KiB): it moves to
    # the heap mid-string.
    odd = "tab\there\nline two \u00e9 \u2713 \U0001F600 </body> & \"q\" \\ " + "x\\\"" * 700
    chat(b, "alice@%s" % DOMAIN, escape(odd))
    a.expect(is_msg(odd), what="the odd message")
    ok = rec.wait(lambda ev: len(rec.of("chat_received", odd)) >= 1 and
                  len(rec.of("chat_sent", odd)) >= 1)
    t.ok(ok and rec.of("chat_sent", odd)[0]["to"] == "alice@%s" % DOMAIN,
         "odd characters and a long body arrive unchanged in chat_sent and chat_received")
    logins = [e["from"] for e in rec.of("login")]
    t.ok(sorted(logins) == sorted([a.jid, b.jid]), "one login each (%s)" % logins)
    pres = [e for e in rec.of("presence") if e["from"] == a.jid]
    t.ok(len(pres) == 1 and pres[0]["available"] is True and pres[0]["show"] == "away" and
         pres[0]["status"] == "lunch", "presence with show and status (%s)" % pres)
    t.ok(all(ct == "application/json" for ct, _ in rec.events), "Content-Type application/json")
    a.close()
    ok = rec.wait(lambda ev: len(rec.of("logout")) >= 1)
    out = rec.of("logout")
    t.ok(ok and out[0]["from"] == a.jid, "logout")
    t.ok(any(e["from"] == a.jid and e["available"] is False for e in rec.of("presence")),
         "unavailable presence")
    chat(b, "alice@%s" % DOMAIN, "offline one")
    ok = rec.wait(lambda ev: len(rec.of("chat_received", "offline one")) >= 1)
    t.ok(ok and rec.of("chat_received", "offline one")[0]["offline"] is True,
         "chat_received to a user without session: offline true")
    # 500 twice, then accepted: once.
    with rec.cond:
        rec.fail_next = 2
        before = rec.attempts
    chat(b, "alice@%s" % DOMAIN, "retried")
    ok = rec.wait(lambda ev: len(rec.of("chat_sent", "retried")) >= 1)
    t.ok(ok and rec.attempts - before >= 3, "a 500 answer is retried (%d attempts for 2 events)"
         % (rec.attempts - before))
    rec.wait(lambda ev: len(rec.of("chat_received", "retried")) >= 1)
    t.ok(len(rec.of("chat_sent", "retried")) == 1 and len(rec.of("chat_received", "retried")) == 1,
         "the retried events arrive once each")
    # Count: 20 messages, 20 + 20 events, none lost or doubled.
    conns = rec.connections
    for i in range(20):
        chat(b, "alice@%s" % DOMAIN, "n%d" % i)
    want = ["n%d" % i for i in range(20)]
    ok = rec.wait(lambda ev: all(rec.of("chat_received", w) and rec.of("chat_sent", w)
                                 for w in want))
    t.ok(ok and all(len(rec.of("chat_received", w)) == 1 and len(rec.of("chat_sent", w)) == 1
                    for w in want), "20 messages: each event exactly once")
    t.ok(rec.connections - conns <= 1, "40 POSTs on kept-alive connections (%d new)"
         % (rec.connections - conns))
    b.close()


def test_restart(t, srv, rec):
    b = Client(srv, "bob", resource="again")
    rec.stop()
    chat(b, "alice@%s" % DOMAIN, "while down")
    # The POSTs fail (refused) and are retried, then dropped after http_retries.
    rec2 = Receiver(rec.port)
    chat(b, "alice@%s" % DOMAIN, "after restart")
    ok = rec2.wait(lambda ev: len(rec2.of("chat_sent", "after restart")) >= 1)
    t.ok(ok, "after the receiver restarted, events arrive again")
    rec2.wait(lambda ev: len(rec2.of("chat_received", "after restart")) >= 1)
    t.ok(len(rec2.of("chat_sent", "after restart")) == 1 and
         len(rec2.of("chat_received", "after restart")) == 1 and
         len(rec2.of("chat_sent", "while down")) <= 1, "none doubled")
    b.close()
    return rec2


def test_hang(t, srv, rec):
    rec.hang.set()
    a = Client(srv, "alice", resource="h")
    a.presence()
    b = Client(srv, "bob", resource="h")
    a.expect(lambda e: e.tag == q(NS_CLIENT, "presence"), what="own presence")
    for i in range(50):
        chat(b, a.jid, "h%d" % i)
    got = 0
    for i in range(50):
        a.expect(is_msg("h%d" % i), timeout=10, what="h%d" % i)
        got += 1
    t.ok(got == 50, "with the webhook hanging, all 50 messages are delivered")
    m = metrics(srv)
    t.ok(m.get("default.mod_event_pusher.http_dropped", 0) > 0,
         "the queue is bounded: http_dropped = %s" % m.get("default.mod_event_pusher.http_dropped"))
    with open(srv.log_path, errors="replace") as f:
        t.ok("backend http: queue full (5 events)" in f.read(), "a log line says the queue is full")
    rec.release.set()
    a.close()
    b.close()


def test_filter(t):
    rec = Receiver()
    srv = Server({"mod_event_pusher": {
        "backends": "http", "http_url": "http://127.0.0.1:%d/hook" % rec.port,
        "http_events": "chat_received", "http_only_offline": "true",
        "http_domains": DOMAIN}})
    try:
        srv.register("carl")
        srv.register("dina")
        c = Client(srv, "carl")
        c.presence()
        d = Client(srv, "dina")
        c.expect(lambda e: e.tag == q(NS_CLIENT, "presence"), what="own presence")
        chat(d, "carl@%s" % DOMAIN, "online")
        c.expect(is_msg("online"), what="online")
        c.close()
        chat(d, "carl@%s" % DOMAIN, "offline")
        ok = rec.wait(lambda ev: len(ev) >= 1)
        t.ok(ok and [e["body"] for _, e in rec.events] == ["offline"] and
             rec.events[0][1]["event"] == "chat_received",
             "filter: only chat_received to offline users (%s)" % rec.events)
        d.close()
    finally:
        srv.stop()
        rec.stop()


def test_batch(t):
    """http_batch = 10: JSON arrays, every event once."""
    rec = Receiver()
    srv = Server({"mod_event_pusher": {
        "backends": "http", "http_url": "http://127.0.0.1:%d/hook" % rec.port,
        "http_events": "chat_sent", "http_batch": 10}})
    try:
        srv.register("eve")
        e = Client(srv, "eve")
        for i in range(40):
            chat(e, "nobody@%s" % DOMAIN, "b%d" % i)
        want = ["b%d" % i for i in range(40)]
        ok = rec.wait(lambda ev: all(rec.of("chat_sent", w) for w in want))
        t.ok(ok and all(len(rec.of("chat_sent", w)) == 1 for w in want) and
             len(rec.events) == 40, "http_batch: each of 40 events once")
        t.ok(all(isinstance(p, list) and 1 <= len(p) <= 10 for p in rec.posts),
             "as JSON arrays of at most 10 (%s)" % [len(p) for p in rec.posts])
        e.close()
    finally:
        srv.stop()
        rec.stop()


NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
PUBLISH_OPTS = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
                "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
                "<field var='device_id'><value>%s</value></field>"
                "<field var='service'><value>fcm</value></field></x>")


def test_virtual(t):
    """Notifications to push.DOMAIN (virtual) become push events."""
    rec = Receiver()
    virtual = "push.%s" % DOMAIN
    srv = Server({"mod_event_pusher": {
        "backends": "http;push", "http_url": "http://127.0.0.1:%d/hook" % rec.port,
        "http_events": "push", "push_virtual_pubsub_hosts": virtual}})
    try:
        for u in ("vera", "walt", "appsrv"):
            srv.register(u)
        app = Client(srv, "appsrv", resource="app")
        v = Client(srv, "vera", resource="phone")
        r1 = v.iq("<enable xmlns='%s' jid='%s' node='dev-1'>%s</enable>"
                  % (NS_PUSH, virtual, PUBLISH_OPTS % "tok-1"), type="set")
        r2 = v.iq("<enable xmlns='%s' jid='%s' node='real'/>" % (NS_PUSH, app.jid), type="set")
        t.ok(r1.get("type") == "result" and r2.get("type") == "result",
             "enable a virtual host's node and a real app server's")
        v.close()
        w = Client(srv, "walt")
        for i in (1, 2):
            chat(w, "vera@%s" % DOMAIN, "v%d" % i)
            # The real app server gets its IQ; answered, so no error counts.
            el = app.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and
                            e.find(".//{%s}publish" % NS_PUBSUB) is not None,
                            what="the real app server's notification")
            app.send("<iq type='result' id='%s' to='%s'/>" % (el.get("id"), el.get("from")))
        ok = rec.wait(lambda ev: len(rec.of("push")) >= 2)
        pushes = rec.of("push")
        t.ok(ok and len(pushes) == 2, "one push event per message (%d)" % len(pushes))
        want = [{"event": "push", "user": "vera@%s" % DOMAIN, "service": virtual,
                 "node": "dev-1", "message_count": n, "last_message_sender": w.jid,
                 "last_message_body": "v%d" % n,
                 "options": {"device_id": "tok-1", "service": "fcm"}} for n in (1, 2)]
        # Two POSTs may be in flight at once: their order is the network's.
        got = sorted((dict((k, e[k]) for k in e if k != "timestamp") for e in pushes),
                     key=lambda e: e.get("message_count", 0))
        t.ok(got == want, "the summary and the publish-options as JSON (%s)" % got)
        t.ok(all(isinstance(e.get("timestamp"), int) for e in pushes), "with a timestamp")
        # Nothing was routed to the virtual host: no bounce, no error.
        chat(w, "appsrv@%s/app" % DOMAIN, "sentinel")
        el = app.expect(lambda e: e.tag == q(NS_CLIENT, "message") or
                        (e.tag == q(NS_CLIENT, "iq") and e.get("type") == "set"),
                        what="the sentinel")
        t.ok(el.tag == q(NS_CLIENT, "message"), "no third notification to the real app server")
        with open(srv.log_path, errors="replace") as f:
            log = f.read()
        t.ok("answered" not in log and virtual + " " not in log,
             "no app server error for the virtual host in the log")
        w.close()
        app.close()
    finally:
        srv.stop()
        rec.stop()


def test_tls(t):
    """https: a self-signed certificate is refused by default, taken with
    http_tls_verify = false."""
    tmp = tempfile.mkdtemp(prefix="mk-hook-tls-")
    crt, key = os.path.join(tmp, "hook.crt"), os.path.join(tmp, "hook.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    rec = Receiver(tls=(crt, key))
    url = "https://localhost:%d/hook" % rec.port
    try:
        for verify in ("true", "false"):
            keys = {"backends": "http", "http_url": url, "http_events": "login",
                    "http_retries": 0, "http_timeout": 5}
            if verify == "false":
                keys["http_tls_verify"] = "false"
            srv = Server({"mod_event_pusher": keys})
            try:
                user = "tls" + verify
                srv.register(user)
                c = Client(srv, user)
                if verify == "true":
                    deadline = time.time() + 20
                    while time.time() < deadline:
                        with open(srv.log_path, errors="replace") as f:
                            if "http: POST %s failed" % url in f.read():
                                break
                        time.sleep(0.1)
                    m = metrics(srv)
                    t.ok(m.get("default.mod_event_pusher.http_failed") == 1 and
                         not rec.of("login"), "verification on by default: the self-signed"
                         " webhook gets nothing, http_failed 1 (%s)"
                         % {k: v for k, v in m.items() if "http_" in k})
                else:
                    ok = rec.wait(lambda ev: rec.of("login"))
                    logins = [e["user"] for e in rec.of("login")]
                    t.ok(ok and logins == ["%s@%s" % (user, DOMAIN)],
                         "http_tls_verify = false: the login arrives over TLS (%s)" % logins)
                c.close()
            finally:
                srv.stop()
    finally:
        rec.stop()
        for f in (crt, key):
            os.unlink(f)
        os.rmdir(tmp)


def main():
    t = Tap()
    rec = Receiver()
    srv = Server({"mod_event_pusher": {
        "backends": "http", "http_url": "http://127.0.0.1:%d/hook" % rec.port,
        "http_retries": 3, "http_retry_ms": 50, "http_timeout": 2, "http_concurrency": 1}})
    try:
        t.run("events", test_events, srv, rec)
        rec = test_restart(t, srv, rec) or rec
    finally:
        srv.stop()
        rec.stop()
    rec = Receiver()
    srv = Server({"mod_event_pusher": {
        "backends": "http", "http_url": "http://127.0.0.1:%d/hook" % rec.port,
        "http_retries": 0, "http_timeout": 2, "http_concurrency": 1, "http_queue_max": 5}})
    try:
        srv.register("alice")
        srv.register("bob")
        t.run("hang", test_hang, srv, rec)
    finally:
        srv.stop()
        rec.release.set()
        rec.stop()
    t.run("filter", test_filter)
    t.run("batch", test_batch)
    t.run("virtual pubsub hosts", test_virtual)
    t.run("TLS verification", test_tls)
    t.done()


if __name__ == "__main__":
    main()
