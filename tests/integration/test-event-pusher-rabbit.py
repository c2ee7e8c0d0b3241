#!/usr/bin/env python3
"""mod_event_pusher's rabbit backend against Debian's rabbitmq-server,
started once by this test on loopback (its own data directory, node name,
AMQP, distribution and epmd ports) and stopped by it; a pika consumer in
the test reads what meerkatd published.

- chat_sent / chat_received on the chat exchange, login and presence on
  the presence exchange, routing key USER.EVENT, the JSON
- groupchat_sent / groupchat_received on the groupchat exchange
- 30 messages: each event exactly once (one write per batch)
- the broker restarts: meerkatd reconnects; the events of messages sent
  while it was down arrive once each afterwards
- rabbit and http backends at once, each with its own filter (rabbit:
  chat_received to offline users only; http: chat_sent and login only)
Skipped (with a message) only where rabbitmq-server or python3-pika is
not installed.
"""
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modtest import DOMAIN, NS_CLIENT, Client, Server, Tap, free_port, q  # noqa: E402

RABBIT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
try:
    import pika
except ImportError:
    # Debian's python3-pika (pure Python) when another python3 comes first
    # in PATH.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import pika
    except ImportError:
        pika = None


class Broker:
    """A private RabbitMQ node."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mk-rabbit.")
        self.port = free_port()
        self.epmd_port = free_port()
        self.env = dict(os.environ)
        self.env.update({
            "HOME": self.dir,
            "RABBITMQ_NODENAME": "mktest%d@localhost" % self.port,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(self.dir, "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(self.dir, "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "pid"),
        })
        with open(self.env["RABBITMQ_ENABLED_PLUGINS_FILE"], "w") as f:
            f.write("[].\n")
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "broker.log"), "a")
        self.proc = subprocess.Popen([RABBIT], env=self.env, stdout=self.log, cwd=self.dir,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 240  # Erlang boots slowly on a busy machine
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("rabbitmq-server exited with %d" % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.2)
        self.close()  # nothing of it left behind
        raise RuntimeError("rabbitmq-server did not listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def close(self):
        self.stop()
        # The epmd daemon this node started on its own port.
        subprocess.call(["epmd", "-kill"], env=self.env, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


class Consumer:
    """A durable queue bound to the chat and presence exchanges."""

    def __init__(self, broker):
        self.broker = broker
        self.got = []
        self.connect()

    def connect(self):
        deadline = time.time() + 30
        while True:
            try:
                self.conn = pika.BlockingConnection(pika.ConnectionParameters(
                    "127.0.0.1", self.broker.port, connection_attempts=1))
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        ch = self.conn.channel()
        for ex in ("presence", "chat_msg", "groupchat_msg"):
            ch.exchange_declare(ex, exchange_type="topic", durable=True)
            ch.queue_declare("mktest", durable=True)
            ch.queue_bind("mktest", ex, routing_key="#")
        self.ch = ch

    def wait(self, pred, timeout=20):
        deadline = time.time() + timeout
        while not pred(self.got):
            if time.time() > deadline:
                return False
            method, props, body = self.ch.basic_get("mktest", auto_ack=True)
            if method is None:
                self.conn.sleep(0.05)
                continue
            self.got.append((method.exchange, method.routing_key, json.loads(body.decode())))
        return True

    def of(self, event, body=None):
        return [(ex, key, e) for ex, key, e in self.got
                if e["event"] == event and (body is None or e.get("body") == body)]

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass


def chat(frm, to, body):
    frm.send("<message to='%s' type='chat'><body>%s</body></message>" % (to, body))


def wait_log(srv, text, n=1, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(srv.log_path, errors="replace") as f:
            if f.read().count(text) >= n:
                return True
        time.sleep(0.1)
    return False


def test_events(t, srv, broker, cons):
    srv.register("alice")
    srv.register("bob")
    a = Client(srv, "alice")
    a.presence()
    b = Client(srv, "bob")
    a.expect(lambda e: e.tag == q(NS_CLIENT, "presence"), what="own presence")
    chat(b, "alice@%s" % DOMAIN, "r1")
    ok = cons.wait(lambda g: cons.of("chat_sent", "r1") and cons.of("chat_received", "r1"))
    t.ok(ok, "chat_sent and chat_received reach the consumer")
    (ex, key, e), = cons.of("chat_sent", "r1")
    t.ok(ex == "chat_msg" and key == "bob@%s.chat_sent" % DOMAIN and e["from"] == b.jid and
         e["to"] == "alice@%s" % DOMAIN, "chat_sent: exchange chat_msg, key USER.EVENT, JSON (%s %s %s)"
         % (ex, key, e))
    (ex, key, e), = cons.of("chat_received", "r1")
    t.ok(ex == "chat_msg" and key == "alice@%s.chat_received" % DOMAIN and e["offline"] is False,
         "chat_received: key and offline false")
    cons.wait(lambda g: [x for x in cons.of("login") if x[2]["from"] == a.jid] and
              [x for x in cons.of("presence") if x[2]["from"] == a.jid])
    logins = [x for x in cons.of("login") if x[2]["from"] == a.jid]
    pres = [x for x in cons.of("presence") if x[2]["from"] == a.jid]
    t.ok(len(logins) == 1 and logins[0][0] == "presence" and
         logins[0][1] == "alice@%s.login" % DOMAIN, "login on the presence exchange")
    t.ok(len(pres) == 1 and pres[0][2]["available"] is True, "presence on the presence exchange")
    b.send("<message to='%s' type='groupchat'><body>g1</body></message>" % a.jid)
    ok = cons.wait(lambda g: cons.of("groupchat_sent", "g1") and cons.of("groupchat_received", "g1"))
    gs, gr = cons.of("groupchat_sent", "g1"), cons.of("groupchat_received", "g1")
    t.ok(ok and len(gs) == 1 and len(gr) == 1 and gs[0][0] == "groupchat_msg" and
         gs[0][1] == "bob@%s.groupchat_sent" % DOMAIN and gr[0][0] == "groupchat_msg" and
         gr[0][1] == "alice@%s.groupchat_received" % DOMAIN and gr[0][2]["to"] == a.jid,
         "groupchat_sent and groupchat_received once each on groupchat_msg (%s %s)" % (gs, gr))
    for i in range(30):
        chat(b, "alice@%s" % DOMAIN, "c%d" % i)
    want = ["c%d" % i for i in range(30)]
    ok = cons.wait(lambda g: all(cons.of("chat_sent", w) and cons.of("chat_received", w)
                                 for w in want))
    t.ok(ok and all(len(cons.of("chat_sent", w)) == 1 and len(cons.of("chat_received", w)) == 1
                    for w in want), "30 messages: each event exactly once")
    a.close()
    b.close()


def test_restart(t, srv, broker, cons):
    b = Client(srv, "bob", resource="r2")
    cons.close()
    broker.stop()
    for i in range(5):
        chat(b, "alice@%s" % DOMAIN, "down%d" % i)
    t.ok(wait_log(srv, "; reconnecting"), "meerkatd notices the broker is gone")
    broker.start()
    t.ok(wait_log(srv, "mod_event_pusher: rabbit: connected", 2, timeout=60),
         "meerkatd reconnects to the restarted broker")
    cons.connect()
    want = ["down%d" % i for i in range(5)]
    ok = cons.wait(lambda g: all(cons.of("chat_sent", w) for w in want), timeout=30)
    t.ok(ok and all(len(cons.of("chat_sent", w)) == 1 for w in want),
         "events of messages sent while the broker was down arrive once each (%s)"
         % [len(cons.of("chat_sent", w)) for w in want])
    chat(b, "alice@%s" % DOMAIN, "later")
    t.ok(cons.wait(lambda g: cons.of("chat_sent", "later")) and
         len(cons.of("chat_sent", "later")) == 1, "and new ones as before")
    b.close()


def load_receiver():
    """The webhook receiver of test-event-pusher-http.py."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-event-pusher-http.py")
    spec = importlib.util.spec_from_file_location("event_pusher_http", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Receiver


def test_filters(t, broker, cons):
    """Two backends, each with its own filter, at once."""
    rec = load_receiver()()
    srv = Server({"mod_event_pusher": {
        "backends": "rabbit;http", "rabbit_port": broker.port,
        "rabbit_events": "chat_received", "rabbit_only_offline": "true",
        "http_url": "http://127.0.0.1:%d/hook" % rec.port,
        "http_events": "chat_sent;login", "http_domains": DOMAIN}})
    try:
        for u in ("fx", "fy", "fz"):
            srv.register(u)
        z = Client(srv, "fz")
        z.presence()
        z.expect(lambda e: e.tag == q(NS_CLIENT, "presence"), what="own presence")
        x = Client(srv, "fx")
        chat(x, "fy@%s" % DOMAIN, "to-offline")
        chat(x, "fz@%s" % DOMAIN, "to-online")
        z.expect(lambda e: e.tag == q(NS_CLIENT, "message"), what="the message")
        chat(x, "fy@%s" % DOMAIN, "sentinel")
        ok = cons.wait(lambda g: cons.of("chat_received", "sentinel"))
        mine = [(e["event"], e.get("body")) for _, _, e in cons.got
                if e.get("user", "").startswith("f")]
        t.ok(ok and mine == [("chat_received", "to-offline"), ("chat_received", "sentinel")],
             "rabbit: only chat_received to the offline user (%s)" % mine)
        ok = rec.wait(lambda ev: len(rec.of("chat_sent")) >= 3 and len(rec.of("login")) >= 2)
        got = sorted((e["event"], e.get("body") or e["user"]) for _, e in rec.events)
        want = sorted([("login", "fz@%s" % DOMAIN), ("login", "fx@%s" % DOMAIN),
                       ("chat_sent", "to-offline"), ("chat_sent", "to-online"),
                       ("chat_sent", "sentinel")])
        t.ok(ok and got == want, "http: only chat_sent and login, each once (%s)" % got)
        x.close()
        z.close()
    finally:
        srv.stop()
        rec.stop()


def main():
    if not os.path.exists(RABBIT) or pika is None:
        print("1..0 # SKIP rabbitmq-server or python3-pika is not installed")
        return
    t = Tap()
    broker = None
    cons = None
    try:
        broker = Broker()
        cons = Consumer(broker)
        srv = Server({"mod_event_pusher": {"backends": "rabbit", "rabbit_port": broker.port}})
        try:
            t.ok(wait_log(srv, "mod_event_pusher: rabbit: connected"), "meerkatd connects")
            t.run("events", test_events, srv, broker, cons)
            t.run("broker restart", test_restart, srv, broker, cons)
        finally:
            srv.stop()
        t.run("a filter per backend", test_filters, broker, cons)
    finally:
        if cons:
            cons.close()
        if broker:
            broker.close()
    t.done()


if __name__ == "__main__":
    main()
