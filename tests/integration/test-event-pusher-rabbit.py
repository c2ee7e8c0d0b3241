#!/usr/bin/env python3
"""mod_event_pusher's rabbit backend against Debian's rabbitmq-server,
started once by this test on loopback (its own data directory, node name,
AMQP, distribution and epmd ports) and stopped by it; a pika consumer in
the test reads what meerkatd published.

- chat_sent / chat_received on the chat exchange, login and presence on
  the presence exchange, routing key USER.EVENT, the JSON
- 30 messages: each event exactly once
- the broker restarts: meerkatd reconnects; the events of messages sent
  while it was down arrive once each afterwards
Skipped (with a message) only where rabbitmq-server or python3-pika is
not installed.
"""
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
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("rabbitmq-server exited with %d" % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.2)
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


def main():
    if not os.path.exists(RABBIT) or pika is None:
        print("1..0 # SKIP rabbitmq-server or python3-pika is not installed")
        return
    t = Tap()
    broker = Broker()
    cons = None
    try:
        cons = Consumer(broker)
        srv = Server({"mod_event_pusher": {"backends": "rabbit", "rabbit_port": broker.port}})
        try:
            t.ok(wait_log(srv, "mod_event_pusher: rabbit: connected"), "meerkatd connects")
            t.run("events", test_events, srv, broker, cons)
            t.run("broker restart", test_restart, srv, broker, cons)
        finally:
            srv.stop()
    finally:
        if cons:
            cons.close()
        broker.close()
    t.done()


if __name__ == "__main__":
    main()
