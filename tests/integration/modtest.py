"""A small raw-XML XMPP test client and server launcher for the module
integration tests (test-roster.py, test-subscriptions.py, test-disco.py,
test-ping.py). Standard library only.

Server() starts a private meerkatd on loopback (no TLS) with the modules
asked for, loaded from the build tree (BUILDDIR/modules/.libs). Accounts
are written straight into its sqlite database with SCRAM keys derived as
the core derives them, so no registration tool is needed.

Client() logs in with SASL PLAIN, binds a resource, then collects every
top-level element the server sends; tests wait for the ones they expect.
Client.unauthenticated() opens a stream and stops before SASL (in-band
registration): its features are the pre-authentication ones.
"""
import base64
import hashlib
import hmac
import os
import queue
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ET

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZA_ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_ROSTER = "jabber:iq:roster"
DOMAIN = "localhost"

TOP_BUILDDIR = os.environ.get(
    "MK_TOP_BUILDDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TOP_SRCDIR = os.environ.get(
    "MK_TOP_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


def q(ns, name):
    return "{%s}%s" % (ns, name)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- TAP ---------------------------------------------------------------

class Tap:
    """TAP output: one line per check, a plan at the end."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%sok %d - %s" % ("" if cond else "not ", self.n, name), flush=True)
        return cond

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)

    def run(self, name, func, *args):
        """Runs one scenario; an exception is one failed check."""
        try:
            func(self, *args)
        except Exception:
            self.ok(False, name + ": raised")
            self.diag(traceback.format_exc())

    def done(self):
        # Every server the test started must have ended cleanly: an ASan or
        # UBSan report inside meerkatd would otherwise go unnoticed.
        self.ok(not SERVER_PROBLEMS, "every meerkatd exited cleanly (status 0, no sanitizer report)")
        for p in SERVER_PROBLEMS:
            self.diag(p)
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed else 0)


# What went wrong in a server's exit, filled by Server.stop(), read by Tap.done().
SERVER_PROBLEMS = []
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


# ---- the server --------------------------------------------------------

def _scram_keys(password, salt, iterations, algo):
    salted = hashlib.pbkdf2_hmac(algo, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", algo).digest()
    stored = hashlib.new(algo, client_key).digest()
    server = hmac.new(salted, b"Server Key", algo).digest()
    return base64.b64encode(stored).decode(), base64.b64encode(server).decode()


class Server:
    """A private meerkatd with the given modules ({"mod_ping": {"ping_interval": 1}, ...})."""

    def __init__(self, modules, workers=2, auth=None, listen=None, nofile=None,
                 module_dir=None, extra_conf="", http=None):
        """auth, listen: keys of [auth] and [listen.c2s] that replace the
        defaults below (a value None drops the key: the server's default).
        nofile: the server's RLIMIT_NOFILE. module_dir: where the modules are
        loaded from (default: this build's modules/.libs). extra_conf: text
        appended to meerkat.conf (more sections). http: keys of an extra
        [listen.http] (type = http on a free port; {} for defaults), reached
        with self.http()."""
        self.dir = tempfile.mkdtemp(prefix="mk-modtest.")
        self.port = free_port()
        self.http_port = free_port() if http is not None else None
        self.state = os.path.join(self.dir, "state")
        confd = os.path.join(self.dir, "conf.d")
        os.makedirs(confd)
        os.makedirs(self.state)
        for name, keys in modules.items():
            with open(os.path.join(confd, name + ".conf"), "w") as f:
                f.write("[%s]\n" % name)
                for k, v in (keys or {}).items():
                    f.write("%s = %s\n" % (k, v))
        auth_keys = {"mechanisms": "PLAIN;SCRAM-SHA-1;SCRAM-SHA-256"}
        auth_keys.update(auth or {})
        listen_keys = {"type": "c2s", "address": "127.0.0.1", "port": self.port, "tls": "none"}
        listen_keys.update(listen or {})
        section = lambda keys: "".join("%s = %s\n" % kv for kv in keys.items() if kv[1] is not None)
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
%(auth)s
[storage]
driver = sqlite3
database = meerkat.db

[listen.c2s]
%(listen)s""" % {"domain": DOMAIN, "state": self.state, "workers": workers,
                 "moddir": module_dir or os.path.join(TOP_BUILDDIR, "modules", ".libs"),
                 "auth": section(auth_keys), "listen": section(listen_keys)})
            f.write(extra_conf)
            if http is not None:
                http_keys = {"type": "http", "address": "127.0.0.1", "port": self.http_port}
                http_keys.update(http)
                f.write("\n[listen.http]\n" + section(http_keys))
        self.log_path = os.path.join(self.dir, "meerkatd.log")
        self.log = open(self.log_path, "w")
        self.nofile = nofile
        self.launch()

    def launch(self, timeout=30):
        """Starts meerkatd on this configuration and state; returns once it
        listens (a busy machine may need seconds: a deadline, no sleep)."""
        nofile = self.nofile
        self.proc = subprocess.Popen(
            [os.path.join(TOP_BUILDDIR, "core", "meerkatd"), "--config", self.conf],
            stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
            if nofile else None)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("meerkatd exited with %d:\n%s" % (self.proc.returncode,
                                                                     self.log_text()))
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                if self.http_port:
                    socket.create_connection(("127.0.0.1", self.http_port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("meerkatd did not listen:\n" + self.log_text())

    def restart(self, conf_edit=None, between=None):
        """Stops meerkatd cleanly (SIGTERM) and starts it again on the same
        state; conf_edit(text) -> text rewrites meerkat.conf in between,
        between() runs while it is down."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        if conf_edit:
            with open(self.conf) as f:
                text = f.read()
            with open(self.conf, "w") as f:
                f.write(conf_edit(text))
        if between:
            between()
        self.launch()

    def http(self, method, path, body=None, auth=None, headers=None, raw=None, tls=False):
        """One request on a new connection to the http listener: (status,
        headers dict with lower-case names, JSON-decoded body or text).
        body: an object sent as JSON; raw: bytes sent as they are; auth:
        (user, password) for Basic auth."""
        import http.client
        import json
        import ssl
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", self.http_port, timeout=20,
                                               context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=20)
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if auth:
            hdrs["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % auth).encode()).decode()
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            rh = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        if rh.get("content-type", "").startswith("application/json") and text:
            return resp.status, rh, json.loads(text)
        return resp.status, rh, text

    def log_text(self, tail=60):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-tail:])
        except OSError:
            return ""

    def register(self, user, password="secret"):
        """Writes an account as mk_auth_register would (SCRAM keys only)."""
        salt = os.urandom(16)
        it = 4096
        st1, sv1 = _scram_keys(password, salt, it, "sha1")
        st256, sv256 = _scram_keys(password, salt, it, "sha256")
        db = sqlite3.connect(os.path.join(self.state, "meerkat.db"), timeout=10)
        with db:
            db.execute(
                "INSERT INTO users (username, domain, salt, iterations, stored_key_sha1,"
                " server_key_sha1, stored_key_sha256, server_key_sha256, plain_password,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                (user, DOMAIN, base64.b64encode(salt).decode(), it, st1, sv1, st256, sv256,
                 int(time.time())))
        db.close()
        return "%s@%s" % (user, DOMAIN)

    def sql(self, statement, *args):
        db = sqlite3.connect(os.path.join(self.state, "meerkat.db"), timeout=10)
        try:
            return db.execute(statement, args).fetchall()
        finally:
            db.close()

    def stop(self, remove=True):
        """Stops meerkatd (once) and, unless @remove is False, deletes its
        files; a later stop() deletes them."""
        if getattr(self, "stopped", False):
            if remove:
                shutil.rmtree(self.dir, ignore_errors=True)
            return
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                SERVER_PROBLEMS.append("meerkatd did not exit within 10 s of SIGTERM")
            if self.proc.returncode != 0:
                SERVER_PROBLEMS.append("meerkatd exited with %d after SIGTERM" % self.proc.returncode)
        self.log.close()
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        for marker in SANITIZER_MARKERS:
            at = text.find(marker)
            if at >= 0:
                SERVER_PROBLEMS.append("sanitizer report in the server log:\n" + text[max(0, at - 200):at + 3000])
                break
        if os.environ.get("MK_KEEP_TMP"):
            print("# kept " + self.dir)
        elif remove:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---- a client ----------------------------------------------------------

STREAM_HEADER = ("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client'"
                 " xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>" % DOMAIN)


class Client:
    """A logged-in, bound client. Every top-level element the server sends
    lands in a queue; expect() takes the first one matching a predicate
    and keeps the others for later expects."""

    def __init__(self, server, user, password="secret", resource="r", login=True, bind=True):
        self.server = server
        self.user = user
        self.bare = "%s@%s" % (user, DOMAIN)
        self.jid = None
        self.sock = socket.create_connection(("127.0.0.1", server.port), 5)
        self.sock.settimeout(10)
        self.backlog = []
        self.send_lock = threading.Lock()
        self.queue = queue.Queue()
        self.closed = threading.Event()
        self.next_id = 0
        self.auto_pong = False  # answer server pings from the reader thread
        self.pings = []
        if login:
            self._login(password, resource if bind else None)
            self.reader = threading.Thread(target=self._read_loop, daemon=True)
            self.reader.start()

    @classmethod
    def unauthenticated(cls, server):
        """A stream that does not log in: self.features holds the features
        offered before SASL; IQs and expects work as on a bound stream."""
        c = cls(server, "(none)", login=False)
        c._pending_sync = []
        c._new_parser()
        c.send(STREAM_HEADER)
        c.features = c._read_sync(lambda e: e.tag == q(NS_STREAM, "features"))
        for el in c._pending_sync:
            c.queue.put(el)
        c.reader = threading.Thread(target=c._read_loop, daemon=True)
        c.reader.start()
        return c

    # -- stream plumbing

    def _new_parser(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.root = None

    def _feed(self, data):
        """Feeds bytes; returns the complete top-level elements."""
        out = []
        self.parser.feed(data)
        for event, el in self.parser.read_events():
            if event == "start":
                self.depth += 1
                if self.depth == 1:
                    self.root = el
            else:
                self.depth -= 1
                if self.depth == 1:
                    out.append(el)
                    self.root.remove(el)
                elif self.depth == 0:
                    out.append(ET.Element("{%s}end-of-stream" % NS_STREAM))
        return out

    def _read_sync(self, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for el in self._pending_sync:
                if pred(el):
                    self._pending_sync.remove(el)
                    return el
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("connection closed during login")
            self._pending_sync.extend(self._feed(data))
        raise RuntimeError("timed out during login")

    def _login(self, password, resource):
        self._pending_sync = []
        self._new_parser()
        self.send(STREAM_HEADER)
        self._read_sync(lambda e: e.tag == q(NS_STREAM, "features"))
        # The authzid is the account itself (allowed, RFC 6120 6.3.8).
        token = base64.b64encode(("%s\0%s\0%s" % (self.bare, self.user, password))
                                 .encode()).decode()
        self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
        res = self._read_sync(lambda e: e.tag in (q(NS_SASL, "success"), q(NS_SASL, "failure")))
        if res.tag != q(NS_SASL, "success"):
            raise RuntimeError("authentication failed for " + self.user)
        self._pending_sync = []
        self._new_parser()
        self.send(STREAM_HEADER)
        # The features offered after SASL, for tests of module features.
        self.features = self._read_sync(lambda e: e.tag == q(NS_STREAM, "features"))
        if resource is None:
            # Authenticated but unbound (bind=False): the test binds, or
            # resumes a session (XEP-0198), itself.
            for el in self._pending_sync:
                self.queue.put(el)
            return
        self.send("<iq type='set' id='bind'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
                  % (NS_BIND, resource))
        res = self._read_sync(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "bind")
        jid = res.find("%s/%s" % (q(NS_BIND, "bind"), q(NS_BIND, "jid")))
        if res.get("type") != "result" or jid is None:
            raise RuntimeError("bind failed: " + ET.tostring(res).decode())
        self.jid = jid.text
        for el in self._pending_sync:
            self.queue.put(el)

    def _read_loop(self):
        try:
            self.sock.settimeout(None)
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                for el in self._feed(data):
                    if (self.auto_pong and el.tag == q(NS_CLIENT, "iq") and
                            el.get("type") == "get" and
                            el.find(q("urn:xmpp:ping", "ping")) is not None):
                        self.pings.append(el)
                        self.send("<iq type='result' id='%s' to='%s'/>" % (
                            el.get("id"), el.get("from")))
                        continue
                    self.queue.put(el)
        except (OSError, ET.ParseError):
            pass
        self.closed.set()
        self.queue.put(None)

    def bind(self, resource):
        """Binds @resource on a stream made with bind=False; returns the reply."""
        res = self.iq("<bind xmlns='%s'><resource>%s</resource></bind>" % (NS_BIND, resource),
                      type="set")
        jid = res.find("%s/%s" % (q(NS_BIND, "bind"), q(NS_BIND, "jid")))
        if jid is not None:
            self.jid = jid.text
        return res

    def drop(self):
        """Drops the TCP connection without closing the stream (a reset)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.sock.shutdown(socket.SHUT_RD)  # wakes the reader, sends nothing
            self.sock.close()  # with linger 0: a reset
        except OSError:
            pass
        self.closed.wait(3)

    def send(self, text):
        with self.send_lock:
            self.sock.sendall(text.encode())

    def new_id(self, prefix="t"):
        self.next_id += 1
        return "%s%d" % (prefix, self.next_id)

    # -- waiting for what the server sends

    def expect(self, pred, timeout=5, what="a stanza"):
        for el in self.backlog:
            if pred(el):
                self.backlog.remove(el)
                return el
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("%s: timed out waiting for %s; got meanwhile: %s" % (
                    self.jid, what, [dump(e) for e in self.backlog][-5:]))
            try:
                el = self.queue.get(timeout=left)
            except queue.Empty:
                continue
            if el is None:
                self.queue.put(None)  # stays closed for the next call
                raise AssertionError("%s: stream closed while waiting for %s; got: %s" % (
                    self.jid, what, [dump(e) for e in self.backlog][-5:]))
            if pred(el):
                return el
            self.backlog.append(el)

    def maybe(self, pred, timeout=1.0):
        """The first matching element within @timeout, or None."""
        try:
            return self.expect(pred, timeout)
        except AssertionError:
            return None

    def drain(self, wait=0.3):
        """Forgets everything received so far (after @wait seconds)."""
        time.sleep(wait)
        self.backlog = []
        while True:
            try:
                el = self.queue.get_nowait()
            except queue.Empty:
                return
            if el is None:
                self.queue.put(None)
                return

    def iq(self, body, type="get", to=None, timeout=5):
        """Sends an IQ and returns its result or error element."""
        id = self.new_id("iq")
        self.send("<iq type='%s' id='%s'%s>%s</iq>" % (
            type, id, " to='%s'" % to if to else "", body))
        return self.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == id and
                           e.get("type") in ("result", "error"), timeout, "iq " + id)

    # -- roster conveniences

    def roster_get(self, ver=None):
        attr = " ver='%s'" % ver if ver is not None else ""
        return self.iq("<query xmlns='%s'%s/>" % (NS_ROSTER, attr))

    def expect_push(self, contact, timeout=5):
        """A roster push about @contact; answered as a client must."""
        el = self.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("type") == "set" and
                         roster_item(e, contact) is not None, timeout, "a push for " + contact)
        self.send("<iq type='result' id='%s'/>" % el.get("id"))
        return roster_item(el, contact), el

    def presence(self, type=None, to=None, extra=""):
        attrs = ""
        if type:
            attrs += " type='%s'" % type
        if to:
            attrs += " to='%s'" % to
        self.send("<presence%s>%s</presence>" % (attrs, extra))

    def close(self):
        try:
            self.send("</stream:stream>")
        except OSError:
            pass
        self.closed.wait(3)
        try:
            self.sock.close()
        except OSError:
            pass


def online(srv, user, resource="r"):
    """Logs in, asks for the roster (so pushes come), sends initial presence."""
    c = Client(srv, user, resource=resource)
    c.roster_get()
    c.presence()
    return c


def subscribe(contact, user):
    """@contact subscribes to @user's presence and @user approves; both
    online and interested in roster pushes (online())."""
    contact.presence("subscribe", user.bare)
    contact.expect_push(user.bare)
    user.expect(is_presence("subscribe", contact.bare))
    user.presence("subscribed", contact.bare)
    user.expect_push(contact.bare)
    contact.expect_push(user.bare)


def dump(el):
    return ET.tostring(el).decode() if el is not None else "None"


def roster_item(el, contact):
    query = el.find(q(NS_ROSTER, "query"))
    if query is None:
        return None
    for item in query.findall(q(NS_ROSTER, "item")):
        if item.get("jid") == contact:
            return item
    return None


def is_presence(type=None, frm=None, to_bare=None):
    """A predicate for presence of @type (None = available) from @frm (a bare
    JID matches any resource of it)."""
    def pred(e):
        if e.tag != q(NS_CLIENT, "presence") or e.get("type") != type:
            return False
        f = e.get("from") or ""
        if frm and f != frm and f.split("/")[0] != frm:
            return False
        return True
    return pred


def stream_error(el):
    """The condition of a <stream:error/>, or None for anything else."""
    if el is None or el.tag != q(NS_STREAM, "error"):
        return None
    for child in el:
        if child.tag.startswith("{%s}" % NS_STREAMS_ERR) and not child.tag.endswith("}text"):
            return child.tag.split("}")[1]
    return None


def error_condition(el):
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{%s}" % NS_STANZA_ERR) and not child.tag.endswith("}text"):
            return child.tag.split("}")[1]
    return None
