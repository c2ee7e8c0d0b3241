"""Cluster tests' plumbing: a throwaway redis-server, a throwaway
PostgreSQL (pgtest.Pg) and meerkatd nodes with [cluster] on both, each on
its own free ports of 127.0.0.1. Standard library only.

Node has what modtest.Client needs of a server (.port), so the usual
Client logs in to any node."""
import base64
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from modtest import (DOMAIN, SANITIZER_MARKERS, SERVER_PROBLEMS, TOP_BUILDDIR, Server,
                     _scram_keys, free_port)
from pgtest import Pg

SECRET = "cluster-test-secret-0123456789"


def wait_for(cond, timeout=15, step=0.05):
    """Polls @cond until it is true or @timeout passes; its last value."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v or time.time() > deadline:
            return v
        time.sleep(step)


class Redis:
    """A redis-server on a free loopback port, no persistence."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mk-redis.")
        self.port = free_port()
        self.proc = None
        self.up()

    def up(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "a")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"],
            stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_for(lambda: self._ping(), 10):
            raise RuntimeError("redis-server did not start")

    def _ping(self):
        try:
            return self.cli("PING") == "PONG"
        except OSError:
            return False

    def cli(self, *args):
        """One command over RESP; the reply as text, a list, an int or None."""
        s = socket.create_connection(("127.0.0.1", self.port), 2)
        try:
            out = "*%d\r\n" % len(args)
            for a in args:
                a = str(a).encode()
                out += "$%d\r\n%s\r\n" % (len(a), a.decode())
            s.sendall(out.encode())
            f = s.makefile("rb")
            return self._read(f)
        finally:
            s.close()

    def _read(self, f):
        line = f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:].decode()
        if kind == b"+":
            return rest
        if kind == b"-":
            raise OSError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise OSError("bad reply %r" % line)

    def down(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def stop(self):
        self.down()
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    """A meerkatd with [cluster] (name, node number) on @redis and @pg,
    and an http listener reached with self.http() (as modtest.Server's)."""

    http = Server.http

    def __init__(self, name, number, redis, pg, modules, workers=2, cluster_keys=None,
                 secret=SECRET):
        self.name = name
        self.number = number
        self.dir = tempfile.mkdtemp(prefix="mk-node-%s." % name)
        self.port = free_port()
        self.http_port = free_port()
        self.link_port = free_port()
        self.state = os.path.join(self.dir, "state")
        confd = os.path.join(self.dir, "conf.d")
        os.makedirs(confd)
        os.makedirs(self.state)
        for mod, keys in modules.items():
            with open(os.path.join(confd, mod + ".conf"), "w") as f:
                f.write("[%s]\n" % mod)
                for k, v in (keys or {}).items():
                    f.write("%s = %s\n" % (k, v))
        self.conf = os.path.join(self.dir, "meerkat.conf")
        with open(self.conf, "w") as f:
            f.write("""[general]
hosts = %(domain)s
state_dir = %(state)s
module_dir = %(moddir)s
conf_dir = conf.d
workers = %(workers)d
log_level = debug

[auth]
mechanisms = PLAIN;SCRAM-SHA-1;SCRAM-SHA-256

[storage]
driver = pgsql
host = 127.0.0.1
port = %(pgport)d
user = meerkat
database = meerkat

[listen.c2s]
type = c2s
address = 127.0.0.1
port = %(port)d
tls = none

[cluster]
name = %(name)s
node_number = %(number)d
redis_host = 127.0.0.1
redis_port = %(redis)d
secret = %(secret)s
link_address = 127.0.0.1
link_port = %(link)d
%(extra)s
[metrics]
textfile = metrics.prom

[listen.http]
type = http
address = 127.0.0.1
port = %(http)d
""" % {"domain": DOMAIN, "state": self.state, "workers": workers, "pgport": pg.port,
       "moddir": os.path.join(TOP_BUILDDIR, "modules", ".libs"), "port": self.port,
       "name": name, "number": number, "redis": redis.port, "secret": secret,
       "link": self.link_port, "http": self.http_port,
       "extra": "".join("%s = %s\n" % kv for kv in (cluster_keys or {}).items())})
        self.log_path = os.path.join(self.dir, "meerkatd.log")
        self.proc = None
        self.start()

    def start(self):
        joined = self.log_text(0).count("cluster: joined as")
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [os.path.join(TOP_BUILDDIR, "core", "meerkatd"), "--config", self.conf],
            stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_for(self._listening, 15):
            raise RuntimeError("node %s did not listen:\n%s" % (self.name, self.log_text()))
        # Joined: its heartbeat is in Redis.
        if not wait_for(lambda: self.log_text(0).count("cluster: joined as") > joined, 15):
            raise RuntimeError("node %s did not join:\n%s" % (self.name, self.log_text()))

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("node %s exited with %d:\n%s" % (
                self.name, self.proc.returncode, self.log_text()))
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            socket.create_connection(("127.0.0.1", self.http_port), 0.2).close()
            return True
        except OSError:
            return False

    def metrics(self):
        """The node's metrics, written now (SIGUSR1): {'name{labels}': value}."""
        path = os.path.join(self.state, "metrics.prom")

        def mtime():
            try:
                return os.stat(path).st_mtime_ns
            except OSError:
                return 0
        before = mtime()
        self.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: mtime() != before, 10)
        out = {}
        with open(path) as f:
            for line in f:
                if line.startswith("#") or " " not in line:
                    continue
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def log_text(self, tail=60):
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.readlines()
            return "".join(lines[-tail:] if tail else lines)
        except OSError:
            return ""

    def log_has(self, text, timeout=15):
        return wait_for(lambda: text in self.log_text(0), timeout)

    def kill(self):
        """kill -9: no goodbye."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self, keep=False):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                SERVER_PROBLEMS.append("node %s did not exit within 15 s of SIGTERM" % self.name)
            if self.proc.returncode != 0:
                SERVER_PROBLEMS.append("node %s exited with %d after SIGTERM" % (
                    self.name, self.proc.returncode))
            self.log.close()
        text = self.log_text(0)
        for marker in SANITIZER_MARKERS:
            at = text.find(marker)
            if at >= 0:
                SERVER_PROBLEMS.append("sanitizer report in node %s's log:\n%s" % (
                    self.name, text[max(0, at - 200):at + 3000]))
                break
        if keep:
            return
        if os.environ.get("MK_KEEP_TMP"):
            print("# kept " + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class FakePeer:
    """A node link dialled to @node's link port as node @name with the
    cluster secret (plain TCP; docs/clustering.md, Node links), to put
    frames on a node's link as another node would: send_stanza(target,
    xml) as a peer that still routes to a session @node had."""

    STANZA = 4

    def __init__(self, node, name="zz", secret=SECRET):
        self.sock = socket.create_connection(("127.0.0.1", node.link_port), 5)
        self.sock.settimeout(5)
        self.buf = b""
        typ, fields = self._frame()
        assert typ == 1, "HELLO expected, got %d" % typ
        nonce_a = bytes.fromhex(fields[1].decode())
        nonce_d = os.urandom(32)
        mac = hmac.new(secret.encode(), b"d" + nonce_a + name.encode(), hashlib.sha256)
        self._send(2, [name.encode(), mac.hexdigest().encode(), nonce_d.hex().encode()])
        typ, fields = self._frame()
        want = hmac.new(secret.encode(), b"a" + nonce_d + node.name.encode(),
                        hashlib.sha256).hexdigest()
        assert typ == 3 and fields[0].decode() == want, "OK expected, got %d" % typ

    def _send(self, typ, fields):
        payload = bytes([typ]) + b"\0".join(fields)
        self.sock.sendall(len(payload).to_bytes(4, "big") + payload)

    def _frame(self):
        while True:
            if len(self.buf) >= 4:
                n = int.from_bytes(self.buf[:4], "big")
                if len(self.buf) >= 4 + n:
                    payload, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return payload[0], payload[1:].split(b"\0")
            data = self.sock.recv(4096)
            if not data:
                raise OSError("the node closed the link")
            self.buf += data

    def send_stanza(self, target, xml, session_id=1):
        self._send(self.STANZA, [target.encode(), str(session_id).encode(), xml.encode()])

    def close(self):
        self.sock.close()


def register(pg, user, password="secret"):
    """Writes an account into the shared database (SCRAM keys only)."""
    salt = os.urandom(16)
    it = 4096
    st1, sv1 = _scram_keys(password, salt, it, "sha1")
    st256, sv256 = _scram_keys(password, salt, it, "sha256")
    pg.sql("INSERT INTO users (username, domain, salt, iterations, stored_key_sha1,"
           " server_key_sha1, stored_key_sha256, server_key_sha256, plain_password,"
           " created_at) VALUES ('%s', '%s', '%s', %d, '%s', '%s', '%s', '%s', NULL, %d)" %
           (user, DOMAIN, base64.b64encode(salt).decode(), it, st1, sv1, st256, sv256,
            int(time.time())))
    return "%s@%s" % (user, DOMAIN)


class Certs:
    """A throwaway CA and certificates it signs (openssl, ECDSA P-256), in
    a temporary directory: make(name) -> (certfile, keyfile); a second CA
    (self.other) signs certificates the first does not trust."""

    def __init__(self, dir=None, cn="mk-test-ca"):
        self.dir = dir or tempfile.mkdtemp(prefix="mk-certs.")
        self.ca = os.path.join(self.dir, cn + ".crt")
        self.ca_key = os.path.join(self.dir, cn + ".key")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-subj", "/CN=" + cn,
                      "-days", "2")

    def _openssl(self, *args):
        subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def make(self, name):
        crt = os.path.join(self.dir, name + ".crt")
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                      "-CAcreateserial", "-out", crt, "-days", "2")
        return crt, key

    def link_keys(self, name, ca=None):
        """The keys of a link in TLS (node or region @name) with a new
        certificate of this CA, trusting @ca (default this CA)."""
        crt, key = self.make(name)
        return {"link_tls": "true", "link_certfile": crt, "link_keyfile": key,
                "link_cafile": ca or self.ca}

    def stop(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_nodes(t, nodes, *others):
    """Stops @nodes (Node or modtest.Server; their logs shown when a
    check of @t failed), then @others (Pg, Redis, Certs; None skipped)."""
    for n in nodes:
        if t.failed:
            t.diag("---- node %s" % getattr(n, "name", getattr(n, "region", "")))
            t.diag(n.log_text(40))
        n.stop()
    for o in others:
        if o:
            o.stop()


__all__ = ["Redis", "Node", "Pg", "Certs", "FakePeer", "register", "wait_for", "stop_nodes", "SECRET"]


def run_three_nodes(t, modules, cases):
    """The whole program of a cluster test: one redis-server and one
    PostgreSQL, nodes a, b and c with @modules linked to each other, then
    each (name, func, *extra) of @cases as t.run(name, func, nodes, redis,
    pg, *extra); everything stopped at the end (nodes' logs shown when a
    check failed), and t.done(). Skips without Redis or PostgreSQL."""
    if not shutil.which("redis-server") or not os.path.isdir("/usr/lib/postgresql"):
        print("1..0 # SKIP no redis-server or no PostgreSQL")
        return
    redis = pg = None
    nodes = []
    try:
        redis = Redis()
        pg = Pg()
        for i, name in enumerate("abc"):
            nodes.append(Node(name, i + 1, redis, pg, modules))
        ok = all(wait_for(lambda n=n: n.log_text(0).count("link to") >= 2 and
                          n.log_text(0).count("link from") >= 2, 15) for n in nodes)
        t.ok(ok, "three nodes link to each other")
        for name, func, *extra in cases:
            t.run(name, func, nodes, redis, pg, *extra)
    except Exception as e:
        t.ok(False, "cluster starts: %s" % e)
    finally:
        stop_nodes(t, nodes, pg, redis)
    t.done()
